"""Hash chains for append-only records (the audit trail, the register of extractions).

Each entry's hash is SHA-256 over the previous entry's hash followed by the canonical JSON of the
entry's own fields, so changing, inserting or removing an entry breaks every hash after it. The
first entry links to GENESIS. Canonical JSON: keys sorted, no spaces, ASCII only — the same bytes
on every platform, so anyone can recompute a hash (and check a signature made over it).
Design: docs/design/audit.md
"""

import hashlib
import json
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def link_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    """The hash of an entry with these fields following an entry whose hash is prev_hash."""
    return hashlib.sha256((prev_hash + canonical_json(fields)).encode()).hexdigest()


@dataclass(frozen=True)
class Verdict:
    """What walking a chain found: ok, how many entries were checked, and the first bad one and why.

    `signed_through`: the last entry a valid signed checkpoint or published head vouches for (those
    after it are the unsigned tail, anchoring.py); `anchored_through`: the last one a head published
    outside the database vouches for."""

    ok: bool
    entries: int
    first_bad_seq: int | None = None
    problem: str | None = None
    signed_through: int | None = None
    anchored_through: int | None = None
