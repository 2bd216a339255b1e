"""Outages, in-process against real servers: the object store cut off behind a TCP relay, the
test's own database refusing connections, and the alarm on JetStream when the spool fills."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import nats
import pytest

from services.archive import index
from services.archive.alarms import raise_alarm
from services.archive.spool import SpoolMonitor
from services.common import bus, subjects
from services.common.pb.csu.v1 import archive_pb2
from services.common.pb.csu.v1.events_pb2 import Alarm, SegmentStored
from tests.support.archive import (
    T0_US,
    TcpProxy,
    database_outage,
    harness,
    record,
    s3_store,
)
from tests.support.servers import S3Server, nats_prefix


@pytest.fixture
async def events(nats_url: str) -> AsyncIterator[tuple[object, str]]:
    nc = await nats.connect(nats_url)
    prefix = nats_prefix()
    js = nc.jetstream()
    await bus.ensure_events_stream(js, prefix)
    yield js, prefix
    await js.delete_stream(subjects.events_stream(prefix))
    await nc.close()


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


async def test_store_outage_spools_in_order_alarms_and_catches_up(
    tmp_path: Path, database_url: str, s3: S3Server, events: tuple
) -> None:
    js, prefix = events
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
    tmp_path: Path, database_url: str, s3: S3Server, events: tuple
) -> None:
    js, prefix = events
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
