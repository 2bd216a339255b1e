"""The reconcile pass on the S3 server and the test database, on the states a crash or an outage
leaves: an object stored without its row, a row whose object is gone, objects planted by others."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.archive import index
from services.archive.keys import segment_key
from services.archive.metadata import object_metadata
from services.archive.reconcile import reconcile
from services.common.clock import to_us
from services.common.pb.csu.v1 import archive_pb2
from tests.support.archive import T0_US, ArchiveHarness, record, running_archive
from tests.support.servers import S3Server

HOUR_US = 3_600_000_000


@pytest.fixture
async def archive(tmp_path: Path, database_url: str, s3: S3Server) -> AsyncIterator[ArchiveHarness]:
    async with running_archive(tmp_path, database_url, s3) as h:
        yield h


async def test_reconcile_indexes_orphan_objects_and_drops_rows_without_objects(archive: ArchiveHarness) -> None:
    h = archive
    segments = await h.record("cam-r", T0_US, 8)
    # The process died after storing the next segment's object, before writing its row.
    orphan = record(h.spool.root, "cam-r", segments[-1].end_us, 2)[0]
    orphan_key = segment_key("cam-r", orphan.start_us)
    h.store.put_file(orphan_key, orphan.media_path(h.spool.root), object_metadata(orphan, segments[-1].sha256))
    # An indexed segment whose object disappeared.
    lost = segments[1]
    h.store.delete(segment_key("cam-r", lost.start_us))
    # Objects that are not ours: no segment metadata; segment metadata over other bytes.
    junk_key = segment_key("cam-r", T0_US + 30_000_000)
    h.store.put(junk_key, b"junk", {"camera-id": "cam-r"})
    forged = record(h.spool.root, "cam-r", T0_US + 40_000_000, 2)[0]
    forged_key = segment_key("cam-r", forged.start_us)
    h.store.put(forged_key, b"not the recorded bytes", object_metadata(forged, orphan.sha256))

    now_us = to_us(h.clock.now())
    report = reconcile(h.engine, h.store, ["cam-r"], now_us - 24 * HOUR_US, now_us + HOUR_US, now_us)
    assert report.indexed == [orphan_key]
    assert [r.id for r in report.removed] == [lost.id]
    assert sorted(report.refused) == sorted([junk_key, forged_key])

    # No row points to a missing object; every object of ours has its row.
    rows = index.overlapping(h.engine, "cam-r", "main", T0_US, T0_US + 60_000_000)
    assert [r.id for r in rows] == [s.id for s in segments if s.id != lost.id] + [orphan.id]
    assert all(h.store.exists(r.object_key) for r in rows)
    adopted = next(r for r in rows if r.id == orphan.id)
    assert (adopted.sha256, adopted.prev_sha256, adopted.frames) == (orphan.sha256, segments[-1].sha256, orphan.frames)
    # Running it again changes nothing.
    again = reconcile(h.engine, h.store, ["cam-r"], now_us - 24 * HOUR_US, now_us + HOUR_US, now_us)
    assert (again.indexed, again.removed) == ([], [])

    # The loss is a gap with its reason on the timeline...
    timeline = await h.stub.GetTimeline(
        archive_pb2.TimelineRequest(camera_id="cam-r", start_us=T0_US, end_us=orphan.end_us)
    )
    assert [(g.start_us, g.end_us, g.reason) for g in timeline.gaps] == [(lost.start_us, lost.end_us, "object_missing")]
    assert lost.id in timeline.gaps[0].detail
    # ...and verify still accounts for it and for the two planted objects.
    report_v = await h.stub.Verify(archive_pb2.VerifyRequest(camera_id="cam-r"))
    found = {(p.kind, p.segment_id or p.object_key) for p in report_v.problems}
    assert found == {("missing", segments[2].id), ("unexpected", junk_key), ("unexpected", forged_key)}
