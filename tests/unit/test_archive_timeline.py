"""Pure parts of the archive: timeline merging and gap reasons, range rules, retention clamp,
timestamp cues, deletion-proof digests."""

import hashlib

import pytest

from services.archive import timeline
from services.archive.clips import cue_text
from services.archive.index import proof_digest
from services.archive.models import DeletionProof
from services.archive.ranges import RangeError, check_range
from services.archive.retention import RetentionPolicy
from services.common.clock import to_us
from services.common.pb.csu.v1 import ingest_pb2

S = 1_000_000
H = 3600 * S
D = 24 * H


def test_touching_segments_merge_and_holes_become_gaps_with_known_reasons() -> None:
    stored = [(0, 60 * S), (60 * S, 120 * S), (120 * S + 100_000, 180 * S), (300 * S, 360 * S)]
    spooled = [(360 * S, 400 * S)]
    known = [
        timeline.KnownGap(170 * S, 310 * S, "archive_restart", "stopped"),
        timeline.KnownGap(190 * S, 200 * S, "storage_outage"),
    ]
    result = timeline.build(0, 500 * S, stored, spooled, known)
    assert [(c.start_us, c.end_us, c.in_spool) for c in result.covered] == [
        (0, 180 * S, False),
        (300 * S, 360 * S, False),
        (360 * S, 400 * S, True),
    ]
    # The longest overlapping record names the reason; a hole nobody explains has none.
    assert [(g.start_us, g.end_us, g.reason) for g in result.gaps] == [
        (180 * S, 300 * S, "archive_restart"),
        (400 * S, 500 * S, ""),
    ]


def test_timeline_is_clipped_to_the_range() -> None:
    result = timeline.build(30 * S, 90 * S, [(0, 60 * S), (80 * S, 140 * S)], [], [])
    assert [(c.start_us, c.end_us) for c in result.covered] == [(30 * S, 60 * S), (80 * S, 90 * S)]
    assert [(g.start_us, g.end_us) for g in result.gaps] == [(60 * S, 80 * S)]
    empty = timeline.build(0, 10 * S, [], [], [])
    assert empty.covered == [] and [(g.start_us, g.end_us) for g in empty.gaps] == [(0, 10 * S)]


def test_non_compliant_spans_are_marks_not_gap_reasons() -> None:
    known = [
        timeline.KnownGap(0, 50 * S, timeline.NON_COMPLIANT, "picture 320x240 below the declared 704x576"),
        timeline.KnownGap(45 * S, 55 * S, "camera_offline", "Connection refused"),
        timeline.KnownGap(70 * S, 2**62, timeline.NON_COMPLIANT, "frame rate below the declared 10 fps"),
    ]
    result = timeline.build(10 * S, 100 * S, [(0, 45 * S), (55 * S, 200 * S)], [], known)
    # The hole takes the offline reason though the longer mark overlaps it too.
    assert [(g.start_us, g.end_us, g.reason) for g in result.gaps] == [(45 * S, 55 * S, "camera_offline")]
    assert [(m.start_us, m.end_us, m.reason) for m in result.marks] == [
        (10 * S, 50 * S, timeline.NON_COMPLIANT),
        (70 * S, 100 * S, timeline.NON_COMPLIANT),
    ]
    # A hole under a mark alone stays unexplained: the mark says the stream was poor, not why it stopped.
    alone = timeline.build(0, 100 * S, [(0, 20 * S), (30 * S, 100 * S)], [], known[:1])
    assert [g.reason for g in alone.gaps] == [""]


NOW = 100 * D


@pytest.mark.parametrize(
    ("start", "end", "strict", "fragment"),
    [
        (NOW - H, NOW - 2 * H, False, "start must be before end"),
        (NOW - H, NOW - H, True, "start must be before end"),
        (NOW - 25 * H, NOW, False, "wider than the maximum of 24 hours"),
        (NOW + H, NOW + 2 * H, False, "starts in the future"),
        (NOW - H, NOW + H, True, "ends in the future"),
        (NOW - 20 * D, NOW - 20 * D + H, False, "15-day retention"),
        (NOW - 15 * D - H, NOW - 15 * D + H, True, "15-day retention"),
    ],
)
def test_bad_ranges_are_refused_with_the_reason(start: int, end: int, strict: bool, fragment: str) -> None:
    with pytest.raises(RangeError) as error:
        check_range(start, end, NOW, NOW - 15 * D, 15, 24, strict)
    assert fragment in str(error.value)


def test_lenient_ranges_are_clipped_to_retention_and_now() -> None:
    checked = check_range(NOW - 15 * D - H, NOW - 15 * D + H, NOW, NOW - 15 * D, 15, 24, strict=False)
    assert (checked.start_us, checked.end_us) == (NOW - 15 * D, NOW - 15 * D + H)
    checked = check_range(NOW - H, NOW + H, NOW, NOW - 15 * D, 15, 24, strict=False)
    assert checked.end_us < NOW + H


def test_retention_comes_from_ingest_with_a_fallback_and_never_exceeds_30_days() -> None:
    policy = RetentionPolicy(15)
    assert policy.days_for("unknown") == 15
    policy.update([ingest_pb2.Camera(id="a", name="A", retention_days=7), ingest_pb2.Camera(id="b", retention_days=99)])
    assert (policy.days_for("a"), policy.days_for("b"), policy.longest_days()) == (7, 30, 30)
    assert policy.name_for("a") == "A" and policy.name_for("b") == "b"
    assert RetentionPolicy(45).days_for("x") == 30


def test_cues_show_utc_and_paris_time_across_daylight_saving() -> None:
    from datetime import UTC, datetime

    winter = cue_text("Cam 1", to_us(datetime(2026, 1, 10, 12, 0, 5, tzinfo=UTC)))
    summer = cue_text("Cam 1", to_us(datetime(2026, 7, 10, 12, 0, 5, tzinfo=UTC)))
    assert winter == "Cam 1\\N2026-01-10 12:00:05 UTC \u00b7 10/01/2026 13:00:05 Paris"
    assert "14:00:05 Paris" in summer


def test_proof_digest_is_recomputable_from_its_fields() -> None:
    proof = DeletionProof(
        camera_id="c",
        stream="main",
        hour_start_us=H,
        count=2,
        bytes=30,
        first_us=H,
        last_us=H + 60 * S,
        sha256s="aa bb",
        digest="",
        swept_us=0,
        retention_days=15,
    )
    text = f"c|main|{H}|2|30|{H}|{H + 60 * S}|aa bb"
    assert proof_digest(proof) == hashlib.sha256(text.encode()).hexdigest()
