"""One real path end to end: RTSP camera -> ingest -> masking -> archive -> S3 + index -> gateway.

The five services run as separate processes against real NATS, S3 (moto or an endpoint),
PostgreSQL (CI) and a GStreamer RTSP server playing the shared CCTV footage.
"""

import asyncio
import hashlib
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import nats
import numpy as np
import pytest
from websockets.sync.client import connect as ws_connect

from services.common import subjects
from services.common.clock import to_us
from services.common.objectstore.s3 import S3Store
from services.common.pb.csu.v1.events_pb2 import SegmentStored
from tests.support.media import (
    MASK_GREY,
    OSD_ROWS,
    VTEST_SIZE,
    VTEST_WINDOWS,
    VTEST_WINDOWS_PX,
    decode_rgb,
    polygon_mask,
    psnr,
)
from tests.support.platform import Platform, wait_for
from tests.support.rtsp import RtspCamera, rtsp_server_available
from tests.support.servers import S3Server

pytestmark = pytest.mark.e2e
CAMERA = "cam-e2e"
FPS = 10
INSIDE = polygon_mask(VTEST_WINDOWS_PX, VTEST_SIZE, grow_px=-4)
# Pixels far enough from the mask that its grown edge and the encoder's ringing do not reach them.
OUTSIDE = ~polygon_mask(VTEST_WINDOWS_PX, VTEST_SIZE, grow_px=16)
OUTSIDE[:OSD_ROWS] = False  # date, time and camera burned in


@pytest.fixture
def camera(vtest_h264: Path) -> RtspCamera:
    problem = rtsp_server_available()
    assert problem is None, problem  # `make test` installs the packages; a missing one is a failure
    with RtspCamera(vtest_h264, loop=True) as cam:  # started on entry, stopped on exit
        yield cam


def assert_masked(frames: list[np.ndarray], where: str) -> None:
    assert frames, f"no frames in {where}"
    for n, image in enumerate(frames):
        worst = int(np.abs(image[INSIDE].astype(int) - MASK_GREY).max())
        assert worst <= 6, f"{where}: frame {n} has a pixel {worst} away from the mask grey inside the mask"


def best_offset(frame: np.ndarray, source: list[np.ndarray]) -> int:
    scores = [psnr(frame, s, OUTSIDE) for s in source]
    return int(np.argmax(scores))


def test_camera_to_stored_masked_playable_segment(
    platform: Platform, camera: RtspCamera, vtest_h264: Path, s3: S3Server
) -> None:
    platform.env["CSU_SEGMENT_DURATION_S"] = "4"
    platform.set_cameras([{"id": CAMERA, "name": "Parking (vtest)", "source": camera.url, "masks": [VTEST_WINDOWS]}])
    platform.start(["ingest", "masking", "archive", "requisition", "gateway"])
    api = platform.client("operator")

    cameras = api.get("/api/v1/cameras").json()
    assert [c["id"] for c in cameras] == [CAMERA]
    segments = wait_for(
        lambda: (s := api.get(f"/api/v1/cameras/{CAMERA}/segments").json()) and len(s) >= 2 and s,
        timeout=90,
        what="two stored segments",
    )
    seg = segments[0]

    # In the S3 bucket, with the same bytes, hash and metadata as the index says.
    store = S3Store(s3.endpoint, s3.access_key, s3.secret_key, "us-east-1", platform.bucket)
    objects = [store.stat(o.key) for o in store.list(f"cam/{CAMERA}/")]
    stored = next(o for o in objects if o.metadata and o.metadata["segment-id"] == seg["id"])
    data = store.get(stored.key)
    assert hashlib.sha256(data).hexdigest() == seg["sha256"] == stored.metadata["sha256"]
    assert len(data) == seg["bytes"] == stored.size
    start = datetime.fromisoformat(seg["start"])
    assert stored.key.startswith(f"cam/{CAMERA}/{start:%Y/%m/%d/%H}/")

    # Served by the gateway: whole, and by byte range.
    why = {"justification": "end-to-end test of the recording path"}
    content = api.get(f"/api/v1/segments/{seg['id']}/content", params=why)
    assert content.status_code == 200 and content.content == data
    assert content.headers["content-type"] == "video/mp4" and content.headers["accept-ranges"] == "bytes"
    part = api.get(f"/api/v1/segments/{seg['id']}/content", params=why, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == data[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"

    # H.264, with the source's frame count for its time span.
    with av.open(io.BytesIO(data)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
    frames = decode_rgb(data)
    span_s = (datetime.fromisoformat(seg["end"]) - start).total_seconds()
    assert abs(len(frames) - span_s * FPS) <= 1, (len(frames), span_s)
    assert len(frames) == seg["frames"]

    # Masked in every frame; everywhere else, the camera's image.
    assert_masked(frames, "stored segment")
    source = decode_rgb(vtest_h264)
    offset = best_offset(frames[0], source)
    for n, image in enumerate(frames):
        quality = psnr(image, source[(offset + n) % len(source)], OUTSIDE)
        assert quality >= 30, f"frame {n}: PSNR {quality:.1f} dB outside the mask"

    # The listing honours its time range.
    window = {"start": (start - timedelta(seconds=1)).isoformat(), "end": (start + timedelta(seconds=1)).isoformat()}
    assert seg["id"] in [s["id"] for s in api.get(f"/api/v1/cameras/{CAMERA}/segments", params=window).json()]
    before = {"start": (start - timedelta(hours=1)).isoformat(), "end": (start - timedelta(minutes=1)).isoformat()}
    assert api.get(f"/api/v1/cameras/{CAMERA}/segments", params=before).json() == []

    # The durable event is on JetStream.
    event = asyncio.run(_stored_event(platform, seg["id"]))
    assert (event.segment.camera_id, event.segment.sha256, event.segment.bytes) == (CAMERA, seg["sha256"], seg["bytes"])

    # The live view: an fMP4 stream over WebSocket, masked too.
    live = _live_capture(platform, api.headers["Authorization"], seconds=3)
    assert live["init"]["codec"].startswith("avc1.")
    assert_masked(decode_rgb(live["bytes"], truncated_tail=True), "live view")
    assert "<video" in api.get(f"/api/v1/cameras/{CAMERA}/live").text


async def _stored_event(platform: Platform, segment_id: str) -> SegmentStored:
    nc = await nats.connect(platform.env["CSU_NATS_URL"])
    try:
        js = nc.jetstream()
        sub = await js.subscribe(
            subjects.event(platform.nats_prefix, "segment.stored"),
            stream=subjects.events_stream(platform.nats_prefix),
            ordered_consumer=True,
            deliver_policy=nats.js.api.DeliverPolicy.ALL,
        )
        while True:
            msg = await sub.next_msg(timeout=10)
            event = SegmentStored.FromString(msg.data)
            if event.segment.id == segment_id:
                return event
    finally:
        await nc.close()


def _live_capture(platform: Platform, authorization: str, seconds: float) -> dict:
    url = platform.gateway.replace("http://", "ws://") + f"/api/v1/cameras/{CAMERA}/live/stream"
    chunks: list[bytes] = []
    with ws_connect(url, open_timeout=10, additional_headers={"Authorization": authorization}) as ws:
        init = json.loads(ws.recv(timeout=10))
        deadline = datetime.now(UTC) + timedelta(seconds=seconds)
        while datetime.now(UTC) < deadline:
            chunks.append(ws.recv(timeout=10))
    return {"init": init, "bytes": b"".join(chunks)}


def test_dead_source_is_reconnected_and_the_gap_shows(platform: Platform, camera: RtspCamera) -> None:
    platform.env["CSU_SEGMENT_DURATION_S"] = "3"
    platform.env["CSU_RECONNECT_MAX_S"] = "2"
    platform.set_cameras([{"id": CAMERA, "name": "Parking", "source": camera.url, "masks": [VTEST_WINDOWS]}])
    platform.start(["ingest", "masking", "archive", "gateway"])
    api = platform.client("operator")
    status = lambda: api.get("/api/v1/cameras").json()[0]  # noqa: E731

    wait_for(lambda: api.get(f"/api/v1/cameras/{CAMERA}/segments").json(), 60, "a first segment")
    killed_us = to_us(datetime.now(UTC))
    camera.kill()
    offline = wait_for(lambda: (s := status())["status"] == "offline" and s, 20, "the camera marked offline")
    assert offline["status_reason"]
    wait_for(
        lambda: datetime.now(UTC) >= datetime.fromtimestamp(killed_us / 1e6, UTC) + timedelta(seconds=8),
        20,
        "the outage to last 8 s",
    )
    restarted_us = to_us(datetime.now(UTC))
    camera.start()
    wait_for(lambda: status()["status"] == "online", 30, "the camera back online")
    segments = wait_for(
        lambda: [
            s
            for s in api.get(f"/api/v1/cameras/{CAMERA}/segments").json()
            if to_us(datetime.fromisoformat(s["start"])) > restarted_us
        ],
        60,
        "a segment recorded after the restart",
    )
    assert segments
    everything = api.get(f"/api/v1/cameras/{CAMERA}/segments").json()
    spans = [(to_us(datetime.fromisoformat(s["start"])), to_us(datetime.fromisoformat(s["end"]))) for s in everything]
    outage = (killed_us + 1_000_000, restarted_us)
    assert not [s for s in spans if s[0] < outage[1] and s[1] > outage[0]], "a segment spans the outage"
    assert any(end <= outage[0] for _, end in spans) and any(start >= outage[1] for start, _ in spans)
    assert platform.metric("ingest", "csu_ingest_reconnects_total", {"camera": CAMERA}) >= 1
