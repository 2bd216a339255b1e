"""A camera's timeline: what was recorded and where the holes are, from the index alone.

Segments that touch (or nearly: `join_us`, below a frame interval) merge into one covered
interval. Everything in the asked range that no interval covers is a gap; a gap takes the reason
of the `archive_gaps` records it overlaps (the longest overlap wins), or "" when nobody knows why
(the camera sent nothing while ingest still counted it online). Camera status events name the
offline, maintenance and authorisation gaps (camera_gaps.py).
Some records mark recorded time instead of explaining a hole (MARK_REASONS: a stream measured below
its profile or the norms, recorded all the same): they are returned as `marks`, clipped to the
range, and never name a gap.
Segments not yet in the store (being written, or waiting in the spool) are covered too, flagged
`in_spool`, so the last minutes show as recorded while they are still being written.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field

JOIN_US = 250_000
# The stream was recorded while measured below its declared profile or the arrêté of 3 August 2007.
NON_COMPLIANT = "stream_non_compliant"
MARK_REASONS = (NON_COMPLIANT,)


@dataclass(frozen=True)
class Covered:
    start_us: int
    end_us: int
    in_spool: bool = False


@dataclass(frozen=True)
class KnownGap:
    start_us: int
    end_us: int
    reason: str
    detail: str = ""


@dataclass(frozen=True)
class Timeline:
    start_us: int
    end_us: int
    covered: list[Covered]
    gaps: list[KnownGap]
    marks: list[KnownGap] = field(default_factory=list)


def build(
    start_us: int,
    end_us: int,
    stored: Sequence[tuple[int, int]],
    spooled: Sequence[tuple[int, int]],
    known_gaps: Sequence[KnownGap],
    join_us: int = JOIN_US,
) -> Timeline:
    pieces = sorted(
        [(max(a, start_us), min(b, end_us), False) for a, b in stored if b > start_us and a < end_us]
        + [(max(a, start_us), min(b, end_us), True) for a, b in spooled if b > start_us and a < end_us]
    )
    covered: list[Covered] = []
    for a, b, spool in pieces:
        if b <= a:
            continue
        if covered and a - covered[-1].end_us <= join_us and covered[-1].in_spool == spool:
            last = covered[-1]
            covered[-1] = Covered(last.start_us, max(last.end_us, b), spool)
        elif covered and a < covered[-1].end_us:
            # Overlap between a stored segment and its spool copy (it was stored meanwhile).
            last = covered[-1]
            covered[-1] = Covered(last.start_us, max(last.end_us, b), last.in_spool and spool)
        else:
            covered.append(Covered(a, b, spool))
    holes: list[tuple[int, int]] = []
    cursor = start_us
    for c in covered:
        if c.start_us - cursor > join_us:
            holes.append((cursor, c.start_us))
        cursor = max(cursor, c.end_us)
    if end_us - cursor > join_us:
        holes.append((cursor, end_us))
    reasons = [g for g in known_gaps if g.reason not in MARK_REASONS]
    gaps = [KnownGap(a, b, *_reason(a, b, reasons)) for a, b in holes]
    marks = [
        KnownGap(max(g.start_us, start_us), min(g.end_us, end_us), g.reason, g.detail)
        for g in sorted(known_gaps, key=lambda g: g.start_us)
        if g.reason in MARK_REASONS and g.end_us > start_us and g.start_us < end_us
    ]
    return Timeline(start_us, end_us, covered, gaps, marks)


def _reason(start_us: int, end_us: int, known: Sequence[KnownGap]) -> tuple[str, str]:
    best: KnownGap | None = None
    best_overlap = 0
    for gap in known:
        overlap = min(end_us, gap.end_us) - max(start_us, gap.start_us)
        if overlap > best_overlap:
            best, best_overlap = gap, overlap
    return (best.reason, best.detail) if best else ("", "")
