"""kill -9 of the archive while it records, against the service processes and the S3 server.

While it is dead, the store is left as crashes and accidents leave it: an object stored without
its index row, an indexed segment whose object vanished, a lifecycle rule someone changed. After
restart: no row points to a missing object, no object of ours is unindexed, nothing of the time the
archive was dead is missing (the segment it was writing and the frames published meanwhile come
back from the masked-frame buffer), the vanished segment is a gap with its reason, the rule is
repaired, and the chain still verifies.
"""

import asyncio
import hashlib
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from services.archive.keys import segment_key
from services.common import rpc
from services.common.clock import to_us
from services.common.objectstore import ExpiryRule
from services.common.objectstore.s3 import S3Store
from services.common.pb.csu.v1 import archive_pb2, archive_pb2_grpc
from tests.support.platform import Platform, wait_for
from tests.support.servers import S3Server

pytestmark = pytest.mark.e2e
CAMERA = "demo-1"
RULE = ExpiryRule("csu-recordings-retention", "cam/", 16)


def call(platform: Platform, method: str, request):  # type: ignore[no-untyped-def]
    async def run():  # type: ignore[no-untyped-def]
        async with rpc.channel(platform.env["CSU_ARCHIVE_GRPC"]) as channel:
            return await getattr(archive_pb2_grpc.ArchiveServiceStub(channel), method)(request, timeout=60)

    return asyncio.run(run())


def segments(platform: Platform, camera: str = CAMERA) -> list[archive_pb2.Segment]:
    now = to_us(datetime.now(UTC))
    request = archive_pb2.ListSegmentsRequest(camera_id=camera, start_us=now - 3_600_000_000, end_us=now)
    return list(call(platform, "ListSegments", request).segments)


def test_kill_9_then_reconcile(platform: Platform, s3: S3Server) -> None:
    platform.env["CSU_SEGMENT_DURATION_S"] = "3"
    platform.start(["ingest", "masking", "archive"])
    store = S3Store(s3.endpoint, s3.access_key, s3.secret_key, "us-east-1", platform.bucket)
    before = wait_for(lambda: (s := segments(platform)) and len(s) >= 3 and s, 120, "three stored segments")
    assert store.get_expiry_rules() == [RULE]  # set at start-up

    archive = platform.processes["archive"]
    killed_us = to_us(datetime.now(UTC))
    archive.kill()  # SIGKILL: whatever was being written is lost
    # Meanwhile: someone lengthens the lifecycle rule; an indexed segment's object vanishes; and
    # an object was stored without its row (what a crash between the two leaves).
    store.set_expiry_rules([ExpiryRule("csu-recordings-retention", "cam/", 400)])
    vanished = before[1]
    store.delete(vanished.object_key)
    last = before[-1]
    orphan_start = last.start_us + 500_000  # an hour folder the index knows, a key it does not
    orphan_key = segment_key("demo-2", orphan_start)
    data = store.get(last.object_key)
    meta = dict(store.stat(last.object_key).metadata or {})
    meta |= {
        "segment-id": uuid.uuid4().hex,
        "camera-id": "demo-2",
        "start-us": str(orphan_start),
        "end-us": str(orphan_start + (last.end_us - last.start_us)),
        "sha256": hashlib.sha256(data).hexdigest(),
        "prev-sha256": "",
    }
    store.put(orphan_key, data, meta, "video/mp4")
    dead_until = datetime.fromtimestamp(killed_us / 1e6, UTC) + timedelta(seconds=5)
    wait_for(lambda: datetime.now(UTC) > dead_until, 20, "five seconds without the archive")

    archive.start()
    archive.wait_ready(90)
    restarted_us = to_us(datetime.now(UTC))
    after = wait_for(
        lambda: [s for s in segments(platform) if s.start_us > restarted_us], 90, "a segment recorded after the restart"
    )

    # No row without its object, no object of ours without its row.
    for camera in ("demo-1", "demo-2"):
        rows_before = {s.object_key for s in segments(platform, camera)}
        objects = {o.key for o in store.list(f"cam/{camera}/")}
        rows_after = {s.object_key for s in segments(platform, camera)}
        assert rows_before <= objects, f"{camera}: rows without objects: {rows_before - objects}"
        assert objects <= rows_after, f"{camera}: objects without rows: {objects - rows_after}"
    assert vanished.object_key not in {s.object_key for s in segments(platform)}
    assert orphan_key in {s.object_key for s in segments(platform, "demo-2")}

    # Nothing of the kill is lost: the only hole is the vanished segment, with its reason.
    timeline = call(
        platform,
        "GetTimeline",
        archive_pb2.TimelineRequest(camera_id=CAMERA, start_us=before[0].start_us, end_us=after[0].end_us),
    )
    assert [(g.start_us, g.end_us, g.reason) for g in timeline.gaps] == [
        (vanished.start_us, vanished.end_us, "object_missing")
    ], list(timeline.gaps)
    assert any(s.start_us <= killed_us < s.end_us for s in segments(platform)), "the instant of the kill is recorded"

    # The lifecycle rule is back; the chain accounts for everything.
    assert store.get_expiry_rules() == [RULE]
    report = call(platform, "Verify", archive_pb2.VerifyRequest(camera_id=CAMERA))
    assert [(p.kind, p.expected_sha256) for p in report.problems] == [("missing", vanished.sha256)], report
    with pytest.raises(grpc.RpcError):
        call(platform, "GetSegment", archive_pb2.GetSegmentRequest(segment_id=vanished.id))
