"""Outages, in-process against real servers: the object store cut off behind a TCP relay, the
test's own database refusing connections, and the alarm on JetStream when the spool fills."""

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import nats
from prometheus_client import REGISTRY
from sqlalchemy import Engine, event

from services.archive import index
from services.archive.alarms import raise_alarm
from services.archive.holds import HoldBook
from services.archive.spool import SpoolMonitor
from services.common import subjects
from services.common.clock import to_us
from services.common.pb.csu.v1 import archive_pb2
from services.common.pb.csu.v1.events_pb2 import Alarm, SegmentStored
from tests.support.archive import (
    T0_US,
    ArchiveHarness,
    TcpProxy,
    database_outage,
    harness,
    record,
    s3_store,
)
from tests.support.platform import until
from tests.support.servers import S3Server


async def _events(js, prefix: str, kind: str, parse, count: int) -> list:  # type: ignore[no-untyped-def]
    sub = await js.subscribe(
        subjects.event(prefix, kind),
        stream=subjects.events_stream(prefix),
        ordered_consumer=True,
        deliver_policy=nats.js.api.DeliverPolicy.ALL,
    )
    found = []
    try:
        while len(found) < count:
            msg = await sub.next_msg(timeout=10)
            found.append(parse(msg.data))
    finally:
        await sub.unsubscribe()
    return found


@contextmanager
def _proof_writes(engine: Engine) -> Iterator[list[str]]:
    """The statements that write a deletion proof while the block runs."""
    seen: list[str] = []

    def listen(conn, cursor, statement: str, *args) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith(("INSERT", "UPDATE")) and "deletion_proofs" in statement:
            seen.append(statement)

    event.listen(engine, "after_cursor_execute", listen)
    try:
        yield seen
    finally:
        event.remove(engine, "after_cursor_execute", listen)


async def test_store_outage_spools_in_order_alarms_and_catches_up(
    tmp_path: Path, database_url: str, s3: S3Server, events_stream: tuple
) -> None:
    js, prefix = events_stream
    target = urlsplit(s3.endpoint)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 80)
    store = s3_store(s3, endpoint=proxy.endpoint)
    h = harness(tmp_path, database_url, store, js=js, prefix=prefix)
    await h.start()
    try:
        before = await h.record("cam-o", T0_US, 4)
        proxy.cut()
        assert store.ping() is False

        during = record(h.spool.root, "cam-o", T0_US + 4_000_000, 12)  # continues the same recording
        size = sum(s.bytes for s in during)
        h.spool.max_bytes = int(size / 0.85)  # the outage fills it past 80 %
        alarms: list[float] = []

        async def on_alarm(fraction: float) -> None:
            alarms.append(fraction)
            await raise_alarm(js, prefix, h.clock, "archive.spool_high", f"spool {fraction:.0%} full")

        monitor = SpoolMonitor(h.spool, on_alarm)
        for seg in during:
            h.recorder.submit(seg)
        await asyncio.sleep(2)  # the recorder tries, fails, retries: nothing may leave the spool
        assert all(seg.media_path(h.spool.root).exists() for seg in during)
        assert index.overlapping(h.engine, "cam-o", "main", T0_US + 4_000_000, T0_US + 16_000_000) == []
        assert await monitor.check() >= 0.8 and alarms and not monitor.full
        await monitor.check()
        assert len(alarms) == 1  # raised once per crossing
        # Spooled segments are already on the timeline (flagged as not yet stored).
        timeline = await h.stub.GetTimeline(
            archive_pb2.TimelineRequest(camera_id="cam-o", start_us=T0_US, end_us=T0_US + 16_000_000)
        )
        assert [(c.start_us, c.end_us, c.recording) for c in timeline.covered] == [
            (T0_US, before[-1].end_us, False),
            (during[0].start_us, during[-1].end_us, True),
        ]

        proxy.restore()
        await asyncio.wait_for(h.recorder.drain(), timeout=120)
        assert await monitor.check() < 0.1 and not monitor.full

        rows = index.overlapping(h.engine, "cam-o", "main", T0_US, T0_US + 60_000_000)
        expected = before + during
        assert [r.id for r in rows] == [s.id for s in expected]  # none lost
        # Stored in order: each links to the one before it in time.
        assert [r.prev_sha256 for r in rows] == ["", *[s.sha256 for s in expected[:-1]]]
        assert not list(h.spool.root.glob("*.mp4"))
        report = await h.stub.Verify(archive_pb2.VerifyRequest(camera_id="cam-o"))
        assert report.ok, report

        alarm = (await _events(js, prefix, "alarm.raised", Alarm.FromString, 1))[0]
        assert (alarm.kind, alarm.source) == ("archive.spool_high", "archive") and "full" in alarm.message
        stored = await _events(js, prefix, "segment.stored", SegmentStored.FromString, len(expected))
        assert [e.segment.id for e in stored] == [s.id for s in expected]
    finally:
        proxy.close()
        await h.stop()


async def test_database_outage_keeps_storing_and_indexes_later(
    tmp_path: Path, database_url: str, s3: S3Server, events_stream: tuple
) -> None:
    js, prefix = events_stream
    h = harness(tmp_path, database_url, s3_store(s3), js=js, prefix=prefix)
    await h.start()
    try:
        before = await h.record("cam-d", T0_US, 4)
        with database_outage(database_url):
            during = record(h.spool.root, "cam-d", T0_US + 4_000_000, 6)
            await h.store_segments(during)  # objects go to the store regardless
            for seg in during:
                info = h.store.stat(f"cam/cam-d/{_hour_path(seg.start_us)}")
                assert info.metadata is not None and info.metadata["sha256"] == seg.sha256
            assert {p.segment_id for p in h.spool.pending()} == {s.id for s in during}
            assert not list(h.spool.root.glob("*.mp4"))  # they left the spool
            assert await h.recorder.flush_pending() == 0  # still away: they wait
        assert await h.recorder.flush_pending() == len(during)
        assert h.spool.pending() == []
        rows = index.overlapping(h.engine, "cam-d", "main", T0_US, T0_US + 60_000_000)
        expected = before + during
        assert [r.id for r in rows] == [s.id for s in expected]
        assert [r.prev_sha256 for r in rows] == ["", *[s.sha256 for s in expected[:-1]]]
        assert (await h.stub.Verify(archive_pb2.VerifyRequest(camera_id="cam-d"))).ok
        stored = await _events(js, prefix, "segment.stored", SegmentStored.FromString, len(expected))
        assert sorted(e.segment.id for e in stored) == sorted(s.id for s in expected)
    finally:
        await h.stop()


def _hour_path(start_us: int) -> str:
    from services.archive.keys import segment_key

    return segment_key("cam-d", start_us).removeprefix("cam/cam-d/")


@asynccontextmanager
async def _store_behind_relay(
    tmp_path: Path, database_url: str, s3: S3Server
) -> AsyncIterator[tuple[ArchiveHarness, TcpProxy]]:
    """A 15-day archive (not started) whose object store is reached through a relay the test can cut."""
    target = urlsplit(s3.endpoint)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 80)
    h = harness(tmp_path, database_url, s3_store(s3, endpoint=proxy.endpoint), retention_days=15)
    try:
        yield h, proxy
    finally:
        proxy.close()
        await h.stop()


def _spooled(h, segments) -> list[str]:  # type: ignore[no-untyped-def]
    return [s.id for s in segments if s.media_path(h.spool.root).exists() or s.description_path(h.spool.root).exists()]


def _proved(h, camera_id: str) -> set[str]:  # type: ignore[no-untyped-def]
    return {sha for proof in index.proofs(h.engine, camera_id) for sha in proof.sha256s.split()}


async def test_the_spool_is_no_way_around_retention(tmp_path: Path, database_url: str, s3: S3Server) -> None:
    """Segments that wait through a long store outage go at their camera's cutoff, unstored and with a
    deletion proof, as the sweeper would delete them; a hold keeps them, never past 30 days."""
    async with _store_behind_relay(tmp_path, database_url, s3) as (h, proxy):
        await h.start()
        proxy.cut()
        plain = record(h.spool.root, "cam-a", T0_US, 4)
        held = record(h.spool.root, "cam-h", T0_US, 4)
        for seg in plain + held:
            h.recorder.submit(seg)
        HoldBook(h.engine, h.clock).place(
            "req-1", "cam-h", T0_US, T0_US + 60_000_000, to_us(h.clock.now() + timedelta(days=60)), "PV 1", "officer"
        )
        await asyncio.sleep(1)
        assert _spooled(h, plain + held) == [s.id for s in plain + held]  # waiting, within retention

        h.clock.advance(timedelta(days=15, hours=1))  # T0 is now past the camera's 15 days
        await until(lambda: not _spooled(h, plain), 30, "the expired segments to leave the spool")
        assert _proved(h, "cam-a") == {s.sha256 for s in plain}
        assert _spooled(h, held) == [s.id for s in held]  # the hold keeps them

        h.clock.advance(timedelta(days=15))  # T0 + 30 days: the legal maximum, which no hold passes
        await until(lambda: not _spooled(h, held), 30, "the held segments to go at 30 days")
        assert _proved(h, "cam-h") == {s.sha256 for s in held}

        proxy.restore()
        fresh = await h.record("cam-a", to_us(h.clock.now()) - 4_000_000, 4)  # storing goes on
        stored = index.overlapping(h.engine, "cam-a", "main", 0, 2**62) + index.overlapping(
            h.engine, "cam-h", "main", 0, 2**62
        )
        assert [r.id for r in stored] == [s.id for s in fresh]


async def test_expired_segments_leave_the_spool_before_storing_can_start(
    tmp_path: Path, database_url: str, s3: S3Server
) -> None:
    """An archive that starts with the store away (nothing can be stored) still applies retention."""
    async with _store_behind_relay(tmp_path, database_url, s3) as (h, proxy):
        proxy.cut()
        old = record(h.spool.root, "cam-b", T0_US, 4)
        recent = record(h.spool.root, "cam-b", T0_US + 2 * 86_400_000_000, 4)
        for seg in old + recent:
            h.recorder.submit(seg)
        h.clock.advance(timedelta(days=15, hours=1))
        await h.start(prime=False)
        await until(lambda: not _spooled(h, old), 30, "the expired segments to leave the spool")
        assert _spooled(h, recent) == [s.id for s in recent]
        assert _proved(h, "cam-b") == {s.sha256 for s in old}


async def test_with_the_database_away_spooled_segments_wait_only_until_the_legal_maximum(
    tmp_path: Path, database_url: str, s3: S3Server
) -> None:
    """Holds cannot be read: past the camera's cutoff a segment waits (a hold may keep it), but at 30
    days it goes even though its deletion proof cannot be written yet; the proof follows once the
    database is back."""

    def attempts() -> float:
        return REGISTRY.get_sample_value("csu_archive_store_failures_total") or 0.0

    async with _store_behind_relay(tmp_path, database_url, s3) as (h, proxy):
        await h.start()
        proxy.cut()
        segments = record(h.spool.root, "cam-c", T0_US, 4)
        with database_outage(database_url):
            for seg in segments:
                h.recorder.submit(seg)
            h.clock.advance(timedelta(days=15, hours=1))
            tried = attempts()
            await until(lambda: attempts() >= tried + 2, 60, "two more attempts past the camera's cutoff")
            assert _spooled(h, segments) == [s.id for s in segments]

            h.clock.advance(timedelta(days=15))
            await until(lambda: not _spooled(h, segments), 30, "the segments to go at 30 days")
            assert not any(seg.media_path(h.spool.root).exists() for seg in segments)
            assert await h.recorder.flush_unproved() == 0  # still away: the debt stays
            assert len(h.spool.unproved()) == len(segments)
        assert _proved(h, "cam-c") == set()
        with _proof_writes(h.engine) as writes:
            assert await h.recorder.flush_unproved() == len(segments)
        # One write of the camera-hour's proof, whole: the trail's summary, which may run between
        # two writes, never names a proof half-written (it would name it twice, as it grew).
        assert len(writes) == 1, writes
        assert _proved(h, "cam-c") == {s.sha256 for s in segments}
        assert h.spool.unproved() == []
        assert await h.recorder.flush_unproved() == 0
        assert _proved(h, "cam-c") == {s.sha256 for s in segments}  # written once


async def test_a_deletion_is_proved_once_even_after_a_crash_between_its_debt_and_its_deletion(
    tmp_path: Path, database_url: str, s3: S3Server
) -> None:
    """The owed proof is written before the footage goes; if the archive died in between, the
    segment is still spooled at the next start and goes again, and its hash is proved once."""
    async with _store_behind_relay(tmp_path, database_url, s3) as (h, proxy):
        proxy.cut()
        segments = record(h.spool.root, "cam-d", T0_US, 4)
        h.clock.advance(timedelta(days=30, hours=1))
        for seg in segments:
            h.spool.add_unproved(seg, to_us(h.clock.now()))  # the crash: debt written, footage kept
        assert h.recorder.recover() == len(segments)
        await h.start(prime=False)
        await until(lambda: not _spooled(h, segments), 30, "the segments to go at 30 days")
        assert await h.recorder.flush_unproved() == len(segments)
        assert h.spool.unproved() == []
        (proof,) = index.proofs(h.engine, "cam-d")
        assert sorted(proof.sha256s.split()) == sorted(s.sha256 for s in segments)
        assert proof.count == len(segments)
