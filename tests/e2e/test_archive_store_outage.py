"""The object store unreachable while the archive process records (a TCP relay in front of the
S3 server is cut): segments wait in the spool, the 80 % alarm goes out on JetStream, recording
pauses when the spool is full (a storage_outage gap), and everything spooled is stored in order
once the store is back."""

import asyncio
import itertools
from datetime import UTC, datetime
from urllib.parse import urlsplit

import nats
import pytest

from services.common import rpc, subjects
from services.common.clock import to_us
from services.common.pb.csu.v1 import archive_pb2, archive_pb2_grpc
from services.common.pb.csu.v1.events_pb2 import Alarm
from tests.support.archive import TcpProxy
from tests.support.platform import Platform, wait_for
from tests.support.servers import S3Server

pytestmark = pytest.mark.e2e
CAMERA = "demo-1"


def call(platform: Platform, method: str, request):  # type: ignore[no-untyped-def]
    async def run():  # type: ignore[no-untyped-def]
        async with rpc.channel(platform.env["CSU_ARCHIVE_GRPC"]) as channel:
            return await getattr(archive_pb2_grpc.ArchiveServiceStub(channel), method)(request, timeout=60)

    return asyncio.run(run())


def stored(platform: Platform) -> list[archive_pb2.Segment]:
    now = to_us(datetime.now(UTC))
    request = archive_pb2.ListSegmentsRequest(camera_id=CAMERA, start_us=now - 3_600_000_000, end_us=now)
    return list(call(platform, "ListSegments", request).segments)


async def first_alarm(platform: Platform) -> Alarm:
    nc = await nats.connect(platform.env["CSU_NATS_URL"])
    try:
        sub = await nc.jetstream().subscribe(
            subjects.event(platform.nats_prefix, "alarm.raised"),
            stream=subjects.events_stream(platform.nats_prefix),
            ordered_consumer=True,
            deliver_policy=nats.js.api.DeliverPolicy.ALL,
        )
        return Alarm.FromString((await sub.next_msg(timeout=10)).data)
    finally:
        await nc.close()


def test_store_outage_spools_alarms_pauses_and_catches_up(platform: Platform, s3: S3Server) -> None:
    target = urlsplit(s3.endpoint)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 80)
    platform.env["CSU_S3_ENDPOINT"] = proxy.endpoint
    platform.env["CSU_SEGMENT_DURATION_S"] = "2"
    platform.env["CSU_ARCHIVE_SPOOL_MAX_BYTES"] = str(2 * 1024 * 1024)
    try:
        platform.start(["ingest", "masking", "archive"])
        wait_for(lambda: len(stored(platform)) >= 2, 120, "two stored segments")
        proxy.cut()
        cut_us = to_us(datetime.now(UTC))
        wait_for(lambda: platform.metric("archive", "csu_archive_recording_paused") == 1, 240, "the spool to fill up")
        paused_us = to_us(datetime.now(UTC))
        assert platform.metric("archive", "csu_archive_spool_bytes") >= 2 * 1024 * 1024
        proxy.restore()
        wait_for(lambda: platform.metric("archive", "csu_archive_recording_paused") == 0, 120, "recording to resume")
        wait_for(
            lambda: (
                platform.metric("archive", "csu_archive_backlog_segments") == 0
                and [s for s in stored(platform) if s.start_us > paused_us]
            ),
            120,
            "the spool to drain and a segment recorded after the outage",
        )
        segments = stored(platform)
        # What was recorded during the outage, until the pause, is stored; in order, chained.
        assert [s for s in segments if cut_us < s.start_us < paused_us], "nothing recorded during the outage was kept"
        assert [s.start_us for s in segments] == sorted(s.start_us for s in segments)
        assert all(b.prev_sha256 == a.sha256 for a, b in itertools.pairwise(segments))
        assert call(platform, "Verify", archive_pb2.VerifyRequest(camera_id=CAMERA)).ok
        # The time lost while paused is a gap with its reason.
        timeline = call(
            platform,
            "GetTimeline",
            archive_pb2.TimelineRequest(camera_id=CAMERA, start_us=cut_us, end_us=to_us(datetime.now(UTC))),
        )
        assert "storage_outage" in {g.reason for g in timeline.gaps}, list(timeline.gaps)
        alarm = asyncio.run(first_alarm(platform))
        assert (alarm.kind, alarm.source) == ("archive.spool_high", "archive")
    finally:
        proxy.close()
