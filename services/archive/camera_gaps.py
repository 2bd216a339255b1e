"""Why a camera's recording has holes, from ingest's camera status events.

Ingest publishes `<prefix>.events.camera.status` (CameraStatusChanged) whenever a camera's status
changes. One durable JetStream consumer ("archive-camera-status"), shared by the archive
replicas, turns them into `archive_gaps` records, which the timeline uses to name its gaps:

- a camera going offline opens a gap at the event's `since_us`, its reason from ingest's words:
  "authorisation_expired" (no authorisation in force), "camera_maintenance" (taken out of service
  by a person) or "camera_offline" (the camera or its network failed), the words kept as detail;
- a camera restarting because its source settings changed (ingest's "restarting: main_url
  changed") opens one too: "camera_reconfigured", the hole until its first image again;
- the camera streaming again (online, degraded or non-compliant) closes it at that event's `since_us`;
- a camera going non-compliant (its stream measured below its profile or the norms, recorded all
  the same) opens a mark (timeline.NON_COMPLIANT) with ingest's words, which any other status
  closes but "connecting" (a reconnect within one finding is one span);
- an open gap's end is OPEN_END_US: the timeline clips it to the range asked, so "offline since"
  shows up to now. Going offline again while a gap is open keeps the first one (flapping is one
  hole, not many); a redelivered event finds its work done.

Events are acked only once stored: a status change published while every archive is down is
applied when one comes back.
"""

import asyncio

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from sqlalchemy import Engine
from sqlmodel import col, select

from services.archive.models import Gap
from services.archive.timeline import NON_COMPLIANT
from services.common import bus
from services.common.clock import Clock, to_us
from services.common.db import session
from services.common.log import get_logger
from services.common.pb.csu.v1.events_pb2 import CameraStatusChanged

log = get_logger(__name__)
DURABLE = "archive-camera-status"
KIND = "camera.status"
# Far beyond any footage: the gap lasts until the camera comes back.
OPEN_END_US = 2**62
STATUS_REASONS = ("camera_offline", "camera_maintenance", "authorisation_expired", "camera_reconfigured")
# How ingest words a restart for a changed configuration (services/ingest/node.py _apply_change).
RESTARTING = "restarting"


def reason_of(words: str) -> str:
    """The gap reason for ingest's status reason (services/ingest/registry.py recording_refusal)."""
    lowered = words.lower()
    if lowered.startswith(RESTARTING):
        return "camera_reconfigured"
    if "authorisation" in lowered:
        return "authorisation_expired"
    if lowered.startswith("camera is "):  # "camera is in maintenance", "camera is decommissioned"
        return "camera_maintenance"
    return "camera_offline"


def apply(engine: Engine, event: CameraStatusChanged, now_us: int) -> str:
    """Open or close the camera's status gap and non-compliance mark; what was done ("" for nothing)."""
    with session(engine) as s:
        status_gap = col(Gap.reason).in_(STATUS_REASONS)
        open_gap, open_mark = (
            s.exec(
                select(Gap).where(
                    Gap.camera_id == event.camera_id, Gap.stream == "main", Gap.end_us == OPEN_END_US, which
                )
            ).first()
            for which in (status_gap, Gap.reason == NON_COMPLIANT)
        )
        done: list[str] = []
        if open_mark is not None and event.status not in ("non_compliant", "connecting"):
            open_mark.end_us = max(event.since_us, open_mark.start_us)
            s.add(open_mark)
            done.append("unmarked")
        if event.status == "offline" or (event.status == "connecting" and event.reason.startswith(RESTARTING)):
            if open_gap is None:
                s.add(_record(event, reason_of(event.reason), now_us))
                done.append("opened")
        elif event.status in ("online", "degraded", "non_compliant") and open_gap is not None:
            open_gap.end_us = max(event.since_us, open_gap.start_us)
            s.add(open_gap)
            done.append("closed")
        if event.status == "non_compliant" and open_mark is None:
            s.add(_record(event, NON_COMPLIANT, now_us))
            done.append("marked")
        s.commit()
        return " ".join(done)


def _record(event: CameraStatusChanged, reason: str, now_us: int) -> Gap:
    return Gap(
        camera_id=event.camera_id,
        stream="main",
        start_us=event.since_us,
        end_us=OPEN_END_US,
        reason=reason,
        detail=event.reason[:512],
        created_us=now_us,
    )


async def consume(js: JetStreamContext, prefix: str, engine: Engine, clock: Clock, stop: asyncio.Event) -> None:
    """Apply every camera status event, then ack it; until stopped."""

    async def handle(message: Msg) -> None:
        try:
            event = CameraStatusChanged.FromString(message.data)
        except Exception:  # noqa: BLE001 - a malformed event must not block the ones behind it
            log.warning("malformed camera status event dropped", subject=message.subject)
            return
        done = await asyncio.to_thread(apply, engine, event, to_us(clock.now()))  # raises: retried
        if done:
            log.info("camera gap or mark: " + done, camera=event.camera_id, status=event.status, reason=event.reason)

    await bus.consume_events(js, prefix, KIND, DURABLE, handle, stop)
