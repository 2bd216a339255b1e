"""The per-camera hash chain and `verify`, on the S3 server: a deleted, an altered and an injected
object are each reported; a clean chain is not; the CLI gives the same answer."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.archive.keys import segment_key
from services.common.pb.csu.v1 import archive_pb2
from tests.support.archive import T0_US, ArchiveHarness, running_archive
from tests.support.servers import S3Server


@pytest.fixture
async def archive(tmp_path: Path, database_url: str, s3: S3Server) -> AsyncIterator[ArchiveHarness]:
    async with running_archive(tmp_path, database_url, s3) as h:
        yield h


async def test_chain_links_every_segment_to_the_previous_one(archive: ArchiveHarness) -> None:
    segments = await archive.record("cam-v", T0_US, 8)
    rows = (
        await archive.stub.ListSegments(
            archive_pb2.ListSegmentsRequest(camera_id="cam-v", start_us=T0_US, end_us=T0_US + 60_000_000)
        )
    ).segments
    assert [r.sha256 for r in rows] == [s.sha256 for s in segments]
    assert [r.prev_sha256 for r in rows] == ["", *[s.sha256 for s in segments[:-1]]]
    # The object carries the chain too (the index can be rebuilt from the store).
    info = archive.store.stat(rows[1].object_key)
    assert info.metadata is not None and info.metadata["prev-sha256"] == rows[0].sha256
    report = await archive.stub.Verify(archive_pb2.VerifyRequest(camera_id="cam-v"))
    assert report.ok and report.segments_checked == len(segments) == report.objects_checked
    assert list(report.problems) == []


async def test_verify_reports_deleted_altered_and_injected_objects(archive: ArchiveHarness) -> None:
    segments = await archive.record("cam-v", T0_US, 12)
    store = archive.store
    deleted, altered = segments[1], segments[3]
    store.delete(segment_key("cam-v", deleted.start_us))
    original = store.get(segment_key("cam-v", altered.start_us))
    tampered = bytearray(original)
    tampered[len(tampered) // 2] ^= 0xFF
    meta = store.stat(segment_key("cam-v", altered.start_us)).metadata
    store.put(segment_key("cam-v", altered.start_us), bytes(tampered), meta, "video/mp4")
    injected = segment_key("cam-v", T0_US + 5_500_000)
    store.put(injected, original, meta, "video/mp4")

    report = await archive.stub.Verify(archive_pb2.VerifyRequest(camera_id="cam-v"))
    assert not report.ok
    found = {(p.kind, p.segment_id or p.object_key) for p in report.problems}
    assert found == {("missing", deleted.id), ("altered", altered.id), ("unexpected", injected)}, report
    alteration = next(p for p in report.problems if p.kind == "altered")
    assert alteration.expected_sha256 == altered.sha256 and alteration.actual_sha256 != altered.sha256

    # A range check sees only what is in the range.
    window = archive_pb2.VerifyRequest(camera_id="cam-v", start_us=segments[3].start_us, end_us=segments[4].end_us)
    ranged = await archive.stub.Verify(window)
    assert {p.kind for p in ranged.problems} == {"altered", "unexpected"}

    # The admin CLI: same findings, exit status 1.
    code, document = await archive.cli("verify", "cam-v")
    assert code == 1, document
    assert {p["kind"] for p in document["problems"]} == {"missing", "altered", "unexpected"}


async def test_a_segment_removed_from_index_and_store_breaks_the_chain(archive: ArchiveHarness) -> None:
    """Someone deletes a segment thoroughly (row and object): the next link still names it."""
    from services.archive import index

    segments = await archive.record("cam-v", T0_US, 8)
    gone = segments[2]
    archive.store.delete(segment_key("cam-v", gone.start_us))
    index.delete_rows(archive.engine, [gone.id])
    report = await archive.stub.Verify(archive_pb2.VerifyRequest(camera_id="cam-v"))
    assert [(p.kind, p.segment_id, p.expected_sha256) for p in report.problems] == [
        ("missing", segments[3].id, gone.sha256)
    ]
