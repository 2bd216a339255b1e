"""Two archive replicas share the cameras through leases; a rolling restart of both (SIGTERM, then a
new process, one replica after the other, as a Kubernetes rolling update does) leaves no gap in
either camera's timeline, records no instant twice, and every segment's SHA-256 matches its index.

Real processes (ingest, masking, two archives), the demo cameras, NATS, PostgreSQL, the S3 server.
Each replica has its own data folder (its spool), as each pod of the chart's StatefulSet has.
"""

import asyncio
import itertools
from datetime import UTC, datetime

import nats
import pytest

from services.common import rpc
from services.common.clock import to_us
from services.common.leases import LeaseManager, overlaps
from services.common.pb.csu.v1 import archive_pb2, archive_pb2_grpc
from services.launcher import ServiceProcess, health_url
from tests.support.platform import Platform, wait_for
from tests.support.servers import free_port

pytestmark = pytest.mark.e2e
CAMERAS = ("demo-1", "demo-2")


def _replica(platform: Platform, name: str) -> ServiceProcess:
    env = platform.env | {
        "CSU_ARCHIVE_HTTP_PORT": str(free_port()),
        "CSU_ARCHIVE_GRPC": f"127.0.0.1:{free_port()}",
        "CSU_ARCHIVE_REPLICA_ID": name,
        "CSU_DATA_DIR": str(platform.workdir / name),
    }
    return ServiceProcess("archive", env, platform.workdir / "logs" / f"{name}.log", health_url("archive", env))


def _call(address: str, method: str, request):  # type: ignore[no-untyped-def]
    async def run():  # type: ignore[no-untyped-def]
        async with rpc.channel(address) as channel:
            return await getattr(archive_pb2_grpc.ArchiveServiceStub(channel), method)(request, timeout=60)

    return asyncio.run(run())


def _segments(address: str, camera: str) -> list[archive_pb2.Segment]:
    now = to_us(datetime.now(UTC))
    request = archive_pb2.ListSegmentsRequest(camera_id=camera, start_us=now - 3_600_000_000, end_us=now)
    return sorted(_call(address, "ListSegments", request).segments, key=lambda s: s.start_us)


async def _leases(nats_url: str, prefix: str, history: bool = False):  # type: ignore[no-untyped-def]
    nc = await nats.connect(nats_url)
    try:
        reader = LeaseManager(nc.jetstream(), f"{prefix}_archive_leases", "test-reader", 8)
        await reader.start()
        return await reader.history() if history else await reader.owners()
    finally:
        await nc.close()


def test_a_rolling_restart_of_two_archive_replicas_loses_nothing(platform: Platform) -> None:
    platform.env["CSU_SEGMENT_DURATION_S"] = "2"
    platform.start(["ingest", "masking"])
    replicas = {name: _replica(platform, name) for name in ("archive-a", "archive-b")}
    address = replicas["archive-a"].env["CSU_ARCHIVE_GRPC"]
    nats_url, prefix = platform.env["CSU_NATS_URL"], platform.nats_prefix

    def shared() -> dict[str, str] | None:
        owners = asyncio.run(_leases(nats_url, prefix))
        return owners if set(owners) == set(CAMERAS) and set(owners.values()) == set(replicas) else None

    try:
        for process in replicas.values():
            process.start()
        for process in replicas.values():
            process.wait_ready(90)
        owners = wait_for(shared, 60, "the two cameras shared one each by the two replicas")
        wait_for(lambda: all(len(_segments(address, c)) >= 2 for c in CAMERAS), 90, "two stored segments per camera")
        # Either replica's timeline shows what the other records and has not stored yet (asked of it).
        elsewhere = next(c for c, owner in owners.items() if owner == "archive-b")

        def live_edge() -> list[archive_pb2.Interval]:
            now = to_us(datetime.now(UTC))
            request = archive_pb2.TimelineRequest(camera_id=elsewhere, start_us=now - 60_000_000, end_us=now)
            covered = _call(address, "GetTimeline", request).covered
            return [c for c in covered if c.recording and c.end_us > now - 3_000_000]

        wait_for(live_edge, 30, f"archive-a's timeline showing what archive-b records of {elsewhere}")
        first = {c: _segments(address, c)[0] for c in CAMERAS}

        for process in replicas.values():  # one after the other, each back before the next goes
            assert process.stop(), f"{process.name} ignored SIGTERM"
            process.start()
            process.wait_ready(90)
            wait_for(shared, 60, "the cameras shared again after the restart")
        rolled_us = to_us(datetime.now(UTC))
        wait_for(
            lambda: all(_segments(address, c)[-1].start_us > rolled_us for c in CAMERAS),
            90,
            "segments recorded after the rolling restart",
        )
        for camera in CAMERAS:
            stored = _segments(address, camera)
            stored = [s for s in stored if s.start_us >= first[camera].start_us]
            # Recorded once: no two segments share an instant.
            for a, b in itertools.pairwise(stored):
                assert b.start_us >= a.end_us - 1_000, f"{camera}: {a.id} and {b.id} overlap"
            # Nothing lost: the timeline has no hole between the first segment and the last.
            timeline = _call(
                address,
                "GetTimeline",
                archive_pb2.TimelineRequest(camera_id=camera, start_us=stored[0].start_us, end_us=stored[-1].end_us),
            )
            assert list(timeline.gaps) == [], f"{camera}: {list(timeline.gaps)}"
            # Every segment's bytes hash to its index row, and the chain links them in time order.
            report = _call(address, "Verify", archive_pb2.VerifyRequest(camera_id=camera))
            assert list(report.problems) == [], f"{camera}: {report}"
            assert report.segments_checked == report.objects_checked >= len(stored)
    finally:
        for process in replicas.values():
            process.stop()
    assert overlaps(asyncio.run(_leases(nats_url, prefix, history=True))) == []
