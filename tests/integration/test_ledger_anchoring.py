"""The segment chain against someone with write access to the database AND the bucket (issue 23,
item 5): they can recompute the per-camera chain (a segment's bytes replaced with its hashes, a
segment deleted and the next one relinked, the latest ones removed), and only the segment ledger —
signed checkpoints at their cadence, heads published to an object-locked bucket — still tells.
On the S3 server and the test database, with real H.264 segments stored by the archive's recorder;
the archive's gRPC API (Verify, VerifyLedger) answers, as the gateway and csuctl ask it."""

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, text, update
from sqlmodel import Session, select

from services.archive.sweeper import Sweeper
from services.common.pb.csu.v1 import archive_pb2
from tests.support.archive import T0_US, ArchiveHarness, running_archive, sha256
from tests.support.servers import S3Server


@pytest.fixture
async def archive(tmp_path: Path, database_url: str, s3: S3Server) -> AsyncIterator[ArchiveHarness]:
    async with running_archive(tmp_path, database_url, s3) as h:
        yield h


async def recorded(archive: ArchiveHarness, count: int = 8) -> list[archive_pb2.Segment]:
    """`count` segments of cam-l stored and indexed, the ledger having taken them in and published."""
    await archive.record("cam-l", T0_US, count * 2.0)
    if hasattr(archive, "anchor"):  # (a version without the ledger has nothing to do here)
        await archive.anchor()
    listed = await archive.stub.ListSegments(
        archive_pb2.ListSegmentsRequest(camera_id="cam-l", start_us=T0_US, end_us=T0_US + 3_600_000_000)
    )
    assert len(listed.segments) == count
    return list(listed.segments)


def rewrite_segment(archive: ArchiveHarness, target: archive_pb2.Segment, after: archive_pb2.Segment) -> str:
    """Replace a segment's bytes and recompute the chain around it, in the bucket and the database."""
    store = archive.store
    data = bytearray(store.get(target.object_key))
    data[len(data) // 2] ^= 0xFF
    forged = sha256(bytes(data))
    meta = dict(store.stat(target.object_key).metadata or {}) | {"sha256": forged}
    store.put(target.object_key, bytes(data), meta, "video/mp4")
    following = dict(store.stat(after.object_key).metadata or {}) | {"prev-sha256": forged}
    store.put(after.object_key, store.get(after.object_key), following, "video/mp4")
    with archive.engine.begin() as conn:
        conn.execute(text("UPDATE archive_segments SET sha256 = :h WHERE id = :i"), {"h": forged, "i": target.id})
        conn.execute(text("UPDATE archive_segments SET prev_sha256 = :h WHERE id = :i"), {"h": forged, "i": after.id})
    return forged


async def test_a_segment_rewritten_with_its_hashes_is_found(archive: ArchiveHarness) -> None:
    segments = await recorded(archive)
    assert (await archive.stub.Verify(archive_pb2.VerifyRequest(camera_id="cam-l"))).ok
    rewrite_segment(archive, segments[3], segments[4])

    report = await archive.stub.Verify(archive_pb2.VerifyRequest(camera_id="cam-l"))
    assert not report.ok, report
    found = {(p.kind, p.segment_id) for p in report.problems}
    assert found == {("ledger", segments[3].id), ("ledger", segments[4].id)}, report
    assert "sha256" in next(p.detail for p in report.problems if p.segment_id == segments[3].id)
    ledger = await archive.stub.VerifyLedger(archive_pb2.VerifyLedgerRequest())
    assert not ledger.ok and ledger.first_bad_seq == 0 and len(ledger.problems) == 2, ledger


async def test_a_segment_deleted_and_its_successor_relinked_is_found(archive: ArchiveHarness) -> None:
    segments = await recorded(archive)
    gone, after = segments[2], segments[3]
    archive.store.delete(gone.object_key)
    meta = dict(archive.store.stat(after.object_key).metadata or {}) | {"prev-sha256": segments[1].sha256}
    archive.store.put(after.object_key, archive.store.get(after.object_key), meta, "video/mp4")
    with archive.engine.begin() as conn:
        conn.execute(text("DELETE FROM archive_segments WHERE id = :i"), {"i": gone.id})
        conn.execute(
            text("UPDATE archive_segments SET prev_sha256 = :h WHERE id = :i"), {"h": segments[1].sha256, "i": after.id}
        )

    report = await archive.stub.Verify(archive_pb2.VerifyRequest(camera_id="cam-l"))
    assert not report.ok, report
    problems = {p.segment_id: p for p in report.problems}
    assert set(problems) == {gone.id, after.id} and {p.kind for p in report.problems} == {"ledger"}, report
    assert "no deletion proof" in problems[gone.id].detail and "prev_sha256" in problems[after.id].detail


async def test_the_ledger_rewritten_too_is_found_at_its_checkpoints(archive: ArchiveHarness) -> None:
    segments = await recorded(archive, 14)  # ledger entries 1-14: a checkpoint at 10, the head 14 published
    forged = rewrite_segment(archive, segments[11], segments[12])
    # Whoever did it rewrites the ledger from entry 12 too, links recomputed, checkpoints deleted.
    from services.archive import ledger
    from services.archive.models import LedgerCheckpoint, LedgerEntry, LedgerHead

    with Session(archive.engine) as s:
        s.exec(update(LedgerHead).where(LedgerHead.id == 1).values(seq=LedgerHead.seq))  # type: ignore[call-overload]
        entries = list(s.exec(select(LedgerEntry).where(LedgerEntry.seq >= 12).order_by(LedgerEntry.seq)))
        prev = entries[0].prev_hash
        for entry in entries:
            if entry.seq == 12:
                entry.sha256 = forged
            if entry.seq == 13:
                entry.prev_sha256 = forged
            entry.prev_hash, entry.entry_hash = prev, ledger.entry_hash(prev, entry)
            prev = entry.entry_hash
            s.add(entry)
        head = s.get(LedgerHead, 1)
        assert head is not None
        head.entry_hash = prev
        s.add(head)
        s.exec(delete(LedgerCheckpoint).where(LedgerCheckpoint.seq >= 12))  # type: ignore[call-overload]
        s.commit()

    # The index now agrees with the ledger; the ledger disagrees with the head published at 14.
    assert (await archive.stub.Verify(archive_pb2.VerifyRequest(camera_id="cam-l"))).ok
    verdict = await archive.stub.VerifyLedger(archive_pb2.VerifyLedgerRequest())
    assert not verdict.ok and verdict.first_bad_seq == 11, verdict
    assert "published outside the database" in verdict.problem and verdict.signed_through == 10


async def test_the_latest_segments_removed_everywhere_are_found(archive: ArchiveHarness) -> None:
    segments = await recorded(archive, 8)  # the head, 8, published
    with archive.engine.begin() as conn:
        conn.execute(text("UPDATE archive_ledger_head SET seq = seq WHERE id = 1"))
        for segment in segments[5:]:
            archive.store.delete(segment.object_key)
            conn.execute(text("DELETE FROM archive_segments WHERE id = :i"), {"i": segment.id})
        conn.execute(text("DELETE FROM archive_ledger WHERE seq > 5"))
        conn.execute(text("DELETE FROM archive_ledger_checkpoints WHERE seq > 5"))
        last = conn.execute(text("SELECT entry_hash FROM archive_ledger WHERE seq = 5")).scalar_one()
        conn.execute(text("UPDATE archive_ledger_head SET seq = 5, entry_hash = :h WHERE id = 1"), {"h": last})

    assert (await archive.stub.Verify(archive_pb2.VerifyRequest(camera_id="cam-l"))).ok  # a clean chain of 5
    verdict = await archive.stub.VerifyLedger(archive_pb2.VerifyLedgerRequest())
    assert not verdict.ok and verdict.first_bad_seq == 6 and "entries 6-8 were removed" in verdict.problem, verdict
    # The admin CLI says the same (exit 1).
    code, document = await archive.cli("verify-ledger")
    assert code == 1 and document["first_bad_seq"] == 6, document  # type: ignore[index]


async def test_retention_and_the_purge_are_no_tampering(archive: ArchiveHarness) -> None:
    await recorded(archive, 6)
    archive.clock.advance(timedelta(days=16))  # past the default 15 days: swept, with deletion proofs
    assert Sweeper(archive.engine, archive.store, archive.clock, archive.retention).sweep().deleted == 6
    await archive.record("cam-l", T0_US + 16 * 86_400_000_000, 4.0)
    await archive.anchor()
    verdict = await archive.stub.VerifyLedger(archive_pb2.VerifyLedgerRequest())
    assert verdict.ok and verdict.entries == 8 and verdict.signed_through == 8, verdict
    # Past the legal maximum, the swept entries leave the ledger; what stays still verifies.
    archive.clock.advance(timedelta(days=33))
    await archive.anchor()
    with archive.engine.connect() as conn:
        assert conn.execute(text("SELECT min(seq), max(seq) FROM archive_ledger")).one() == (7, 8)
    verdict = await archive.stub.VerifyLedger(archive_pb2.VerifyLedgerRequest())
    assert verdict.ok and verdict.entries == 2, verdict


async def test_a_lost_object_is_no_tampering_before_or_after_its_record_expires(archive: ArchiveHarness) -> None:
    """The reconcile removes the row of a segment whose object is gone and records the loss (an
    object_missing gap): accounted for; once the gap expires with the footage's retention, the
    retention itself accounts for it."""
    from services.archive.reconcile import reconcile
    from services.common.clock import to_us

    segments = await recorded(archive, 5)
    archive.store.delete(segments[2].object_key)
    now_us = to_us(archive.clock.now())
    report = reconcile(archive.engine, archive.store, ["cam-l"], T0_US, now_us, now_us)
    assert [row.id for row in report.removed] == [segments[2].id]
    ledger = await archive.stub.VerifyLedger(archive_pb2.VerifyLedgerRequest())
    assert ledger.ok, ledger
    archive.clock.advance(timedelta(days=16))
    Sweeper(archive.engine, archive.store, archive.clock, archive.retention).sweep()  # the gap record goes too
    with archive.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM archive_gaps WHERE camera_id = 'cam-l'")).scalar() == 0
    ledger = await archive.stub.VerifyLedger(archive_pb2.VerifyLedgerRequest())
    assert ledger.ok, ledger
