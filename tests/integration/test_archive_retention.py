"""Retention against the S3 server and the test database, time moved with ManualClock.

After the sweep nothing older than a camera's retention can be listed, fetched, played or
extracted, through any ArchiveService path; its objects are gone from the bucket, its rows from
the index, and a deletion proof per camera and hour says what went (count, bytes, times, hashes).
No camera keeps anything beyond 30 days, whatever its configuration says.
"""

import hashlib
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest

from services.archive import index
from services.archive.sweeper import Sweeper
from services.common.clock import from_us, to_us
from services.common.pb.csu.v1 import archive_pb2, ingest_pb2
from tests.support.archive import CAMERAS_15_AND_90, T0_US, ArchiveHarness, harness, local_store, running_archive
from tests.support.servers import S3Server

HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US


@pytest.fixture
async def archive(tmp_path: Path, database_url: str, s3: S3Server) -> AsyncIterator[ArchiveHarness]:
    async with running_archive(tmp_path, database_url, s3, CAMERAS_15_AND_90) as h:
        yield h


async def refused(call, code: grpc.StatusCode) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.aio.AioRpcError) as error:
        result = call()
        if hasattr(result, "read"):
            await result.read()
        else:
            await result
    assert error.value.code() == code, error.value
    return error.value.details() or ""


async def test_sweeper_at_15_and_31_days(archive: ArchiveHarness) -> None:
    h = archive
    stub = h.stub
    # T0 is an hour before the clock; two hours of each camera recorded 3 s at a time, plus a
    # recording a day later that must survive the 15-day sweep.
    old = {cam: [] for cam in ("cam-15", "cam-90")}
    for cam in old:
        for offset in (0, 1800, 3600 + 60):
            old[cam] += await h.record(cam, T0_US + offset * 1_000_000, 3)
    h.clock.advance(timedelta(days=1))
    later = await h.record("cam-15", T0_US + DAY_US, 3)
    verified = await stub.Verify(archive_pb2.VerifyRequest(camera_id="cam-15"))
    assert verified.ok, verified

    sweeper = Sweeper(h.engine, h.store, h.clock, h.retention, batch=2)  # small batches: several per hour
    assert sweeper.sweep().deleted == 0

    # +15 days (and a few minutes) after the first day's recordings: they are past retention.
    h.clock.advance(timedelta(days=14, minutes=5))
    now_us = to_us(h.clock.now())
    assert now_us - 15 * DAY_US > old["cam-15"][-1].start_us
    old_ids = [s.id for s in old["cam-15"]]
    # Even before the sweeper runs, nothing past retention is served.
    for segment_id in old_ids:
        await refused(
            lambda i=segment_id: stub.GetSegment(archive_pb2.GetSegmentRequest(segment_id=i)), grpc.StatusCode.NOT_FOUND
        )

    result = sweeper.sweep()
    assert result.deleted == len(old["cam-15"])
    await _nothing_served(h, "cam-15", old["cam-15"])
    # The later recording and the 30-day camera are untouched.
    for seg in later + old["cam-90"]:
        assert (await stub.GetSegment(archive_pb2.GetSegmentRequest(segment_id=seg.id))).sha256 == seg.sha256
    _proofs_match(h, "cam-15", old["cam-15"], retention_days=15)
    proofs = await stub.ListDeletionProofs(archive_pb2.DeletionProofsRequest(camera_id="cam-15"))
    assert [p.count for p in proofs.proofs] == [4, 2]  # hours T0 (two 3-s recordings) and T0 + 1 h
    assert sum(p.bytes for p in proofs.proofs) == sum(s.bytes for s in old["cam-15"])
    # Auditors' view through the admin CLI.
    code, listed = await h.cli("proofs", "cam-15")
    assert code == 0 and [p["count"] for p in listed] == [4, 2]
    assert listed[0]["sha256s"] == [s.sha256 for s in old["cam-15"][:4]]
    window = [
        "--start",
        from_us(later[0].start_us - HOUR_US).isoformat(),
        "--end",
        from_us(later[-1].end_us).isoformat(),
    ]
    code, timeline = await h.cli("timeline", "cam-15", *window)
    assert code == 0 and len(timeline["covered"]) == 1 and timeline["gaps"][0]["reason"] == ""
    code, segments = await h.cli("list", "cam-15", *window)
    assert code == 0 and [s["id"] for s in segments] == [s.id for s in later]
    # The chain is still whole: its first link points into a deletion proof.
    verified = await stub.Verify(archive_pb2.VerifyRequest(camera_id="cam-15"))
    assert verified.ok and verified.segments_checked == len(later), verified

    # +31 days: cam-90 said 90 days; the law says 30 and the sweeper enforces it.
    h.clock.advance(timedelta(days=16))
    result = sweeper.sweep()
    assert {p.camera_id for p in result.proofs} == {"cam-15", "cam-90"}
    await _nothing_served(h, "cam-90", old["cam-90"])
    await _nothing_served(h, "cam-15", later)
    _proofs_match(h, "cam-90", old["cam-90"], retention_days=30)
    assert index.count(h.engine) == 0
    assert list(h.store.list("cam/")) == []


async def _nothing_served(h: ArchiveHarness, camera_id: str, deleted: list) -> None:  # type: ignore[type-arg]
    stub = h.stub
    start_us, end_us = deleted[0].start_us, deleted[-1].end_us
    for seg in deleted:
        request = archive_pb2.GetSegmentRequest(segment_id=seg.id)
        assert "unknown segment" in await refused(lambda r=request: stub.GetSegment(r), grpc.StatusCode.NOT_FOUND)
        read = archive_pb2.ReadSegmentRequest(segment_id=seg.id)
        await refused(lambda r=read: stub.ReadSegment(r), grpc.StatusCode.NOT_FOUND)
    assert index.expired(h.engine, camera_id, "main", end_us, 100) == []
    assert not [o for o in h.store.list(f"cam/{camera_id}/") if o.key in {s_key(s) for s in deleted}]
    listing = archive_pb2.ListSegmentsRequest(camera_id=camera_id, start_us=start_us, end_us=end_us)
    assert "retention" in await refused(lambda: stub.ListSegments(listing), grpc.StatusCode.INVALID_ARGUMENT)
    clip = archive_pb2.ClipRequest(camera_id=camera_id, start_us=start_us, end_us=end_us)
    assert "retention" in await refused(lambda: stub.OpenClip(clip), grpc.StatusCode.INVALID_ARGUMENT)
    timeline = archive_pb2.TimelineRequest(camera_id=camera_id, start_us=start_us, end_us=end_us)
    assert "retention" in await refused(lambda: stub.GetTimeline(timeline), grpc.StatusCode.INVALID_ARGUMENT)
    extract = archive_pb2.ExtractRangeRequest(
        camera_id=camera_id, start_us=start_us, end_us=end_us, target_bucket="csu-extract-test"
    )
    assert "retention" in await refused(lambda: stub.ExtractRange(extract), grpc.StatusCode.INVALID_ARGUMENT)


def s_key(seg) -> str:  # type: ignore[no-untyped-def]
    from services.archive.keys import segment_key

    return segment_key(seg.camera_id, seg.start_us)


def _proofs_match(h: ArchiveHarness, camera_id: str, deleted: list, retention_days: int) -> None:  # type: ignore[type-arg]
    proofs = index.proofs(h.engine, camera_id)
    by_hour: dict[int, list] = {}  # type: ignore[type-arg]
    for seg in deleted:
        by_hour.setdefault(seg.start_us - seg.start_us % HOUR_US, []).append(seg)
    relevant = [p for p in proofs if p.hour_start_us in by_hour]
    assert len(relevant) == len(by_hour)
    for proof in relevant:
        segs = sorted(by_hour[proof.hour_start_us], key=lambda s: s.start_us)
        assert proof.count == len(segs)
        assert proof.bytes == sum(s.bytes for s in segs)
        assert proof.sha256s.split() == [s.sha256 for s in segs]
        assert (proof.first_us, proof.last_us) == (segs[0].start_us, segs[-1].end_us)
        assert proof.retention_days == retention_days
        canonical = "|".join(
            str(v)
            for v in (
                camera_id,
                "main",
                proof.hour_start_us,
                proof.count,
                proof.bytes,
                proof.first_us,
                proof.last_us,
                proof.sha256s,
            )
        )
        assert proof.digest == hashlib.sha256(canonical.encode()).hexdigest()


async def test_requested_ranges_are_checked_against_the_clock_and_retention(archive: ArchiveHarness) -> None:
    stub = archive.stub
    now_us = to_us(archive.clock.now())

    async def bad(request, fragment: str) -> None:  # type: ignore[no-untyped-def]
        details = await refused(lambda: stub.OpenClip(request), grpc.StatusCode.INVALID_ARGUMENT)
        assert fragment in details, details

    clip = lambda a, b: archive_pb2.ClipRequest(camera_id="cam-15", start_us=a, end_us=b)  # noqa: E731
    await bad(clip(now_us - HOUR_US, now_us - 2 * HOUR_US), "start must be before end")
    await bad(clip(now_us + HOUR_US, now_us + 2 * HOUR_US), "future")
    await bad(clip(now_us - 16 * DAY_US, now_us - 16 * DAY_US + HOUR_US), "15-day retention")
    await bad(clip(now_us - 30 * HOUR_US, now_us - HOUR_US), "wider than the maximum of 24 hours")
    await bad(
        archive_pb2.ClipRequest(camera_id="../etc", start_us=now_us - HOUR_US, end_us=now_us), "invalid camera id"
    )
    missing = archive_pb2.ClipRequest(camera_id="cam-15", start_us=now_us - 2 * HOUR_US, end_us=now_us - HOUR_US)
    assert "nothing was recorded" in await refused(lambda: stub.OpenClip(missing), grpc.StatusCode.NOT_FOUND)
    unknown = archive_pb2.GetSegmentRequest(segment_id="0123456789abcdef0123456789abcdef")
    await refused(lambda: stub.GetSegment(unknown), grpc.StatusCode.NOT_FOUND)


async def test_local_store_backstop_applies_the_lifecycle_rule(tmp_path: Path, database_url: str) -> None:
    """The local directory has no lifecycle engine: the sweeper applies the recorded rule."""
    from services.archive import lifecycle

    store = local_store(tmp_path)
    h = harness(tmp_path, database_url, store)
    await h.start()
    try:
        assert lifecycle.ensure_rule(store, 15) is True
        indexed = await h.record("cam-l", T0_US, 3)
        # An object the index does not know (the index lost it, or someone planted it): only the
        # lifecycle rule can remove it.
        store.put("cam/cam-l/2025/11/24/16/stray.mp4", b"stray", {})
        sweeper = Sweeper(h.engine, store, h.clock, h.retention)
        h.clock.advance(timedelta(days=15, minutes=5))
        result = sweeper.sweep()
        assert result.deleted == len(indexed)
        assert [o.key for o in store.list("cam/")] == ["cam/cam-l/2025/11/24/16/stray.mp4"]
        h.clock.advance(timedelta(days=1, hours=2))  # past the rule's retention + 1 day
        assert sweeper.sweep().backstop_deleted == 1
        assert list(store.list("cam/")) == []
    finally:
        await h.stop()


def test_known_retention_survives_a_restart_without_ingest(database_url: str) -> None:
    """A camera kept 7 days must not fall back to the 15-day default because ingest is away."""
    from services.archive.retention import RetentionPolicy
    from services.common import db
    from services.common.settings import Settings

    engine = db.make_engine(Settings(database_url=database_url))  # type: ignore[call-arg]
    db.migrate("archive", engine)
    first = RetentionPolicy(15, engine=engine)
    first.update([ingest_pb2.Camera(id="cam-7", name="Court", retention_days=7)])
    restarted = RetentionPolicy(15, ingest=None, engine=engine)
    assert restarted.days_for("cam-7") == 15  # before loading: what a forgetful archive would do
    restarted.load()
    assert restarted.days_for("cam-7") == 7 and restarted.name_for("cam-7") == "Court"
    assert restarted.days_for("never-seen") == 15
    engine.dispose()
