"""NATS subject and JetStream names, in one place so the privacy boundary is easy to audit.

    <prefix>.raw.<camera>.<stream>      unmasked packets: ingest publishes, ONLY masking subscribes
    <prefix>.masked.<camera>.<stream>   masked packets: archive and gateway subscribe
    <prefix>.events.<kind>...           durable events, held by the JetStream stream events_stream()

The masked main streams are also kept for a bounded window by the JetStream stream masked_stream(),
which the archive records from (raw frames are never kept anywhere).

The prefix is "csu" in production; tests use their own so runs on a shared server never meet.
Design: docs/design/architecture.md
"""

import re

CAMERA_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
STREAMS = ("main", "sub")


def check_camera_id(camera_id: str) -> str:
    """Camera ids become subject tokens and object-key parts: a closed alphabet keeps both safe."""
    if not CAMERA_ID.fullmatch(camera_id):
        raise ValueError(f"invalid camera id {camera_id!r}: use 1-64 letters, digits, '-' or '_'")
    return camera_id


def raw(prefix: str, camera_id: str = "*", stream: str = "main") -> str:
    return f"{prefix}.raw.{camera_id}.{stream}"


def masked(prefix: str, camera_id: str = "*", stream: str = "main") -> str:
    return f"{prefix}.masked.{camera_id}.{stream}"


def event(prefix: str, kind: str) -> str:
    return f"{prefix}.events.{kind}"


def events_stream(prefix: str) -> str:
    """Name of the JetStream stream capturing <prefix>.events.>."""
    return f"{prefix.upper().replace('-', '_')}_EVENTS"


def masked_stream(prefix: str) -> str:
    """Name of the JetStream stream keeping the last minutes of <prefix>.masked.*.main (the archive's buffer)."""
    return f"{prefix.upper().replace('-', '_')}_MASKED"
