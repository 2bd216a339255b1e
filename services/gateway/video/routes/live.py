"""Live view: masked packets remuxed to fragmented MP4 and pushed over a WebSocket into the
browser's Media Source Extensions.

The gateway subscribes to <prefix>.masked.<cam>.main only; it has no path to raw frames. Each
viewer gets its own muxer, started on a keyframe, so joining costs at most one keyframe interval.
Protocol: one text message {"type": "init", "codec": "avc1.64001f", "camera": ...}, then binary
messages that are consecutive pieces of one fMP4 stream.
"""

import asyncio
import json

from fastapi import APIRouter, Depends, HTTPException, WebSocket
from fastapi.responses import HTMLResponse
from nats.aio.msg import Msg
from prometheus_client import Gauge

from services.common import h264, subjects
from services.common.fmp4 import Fmp4Writer
from services.common.fmp4_text import TimedText
from services.common.log import get_logger
from services.common.pb.csu.v1.frame_pb2 import FramePacket
from services.gateway import websocket_session
from services.gateway.backends import BackendsDep
from services.gateway.identity.security import Principal, audit, authorize, require
from services.gateway.page_headers import STATIC
from services.gateway.websocket_session import Stop

router = APIRouter(prefix="/api/v1", tags=["live"])
log = get_logger(__name__)
VIEWERS = Gauge("csu_gateway_live_viewers", "Open live-view WebSockets")
PAGE = (STATIC / "live.html").read_text()
# A viewer this far behind (bytes not yet sent) is cut off; its player reconnects at the present.
MAX_BACKLOG_BYTES = 16 * 1024 * 1024
# How often an open live view re-checks that its viewer may still watch: video is what a revoked
# viewer must stop seeing first (notifications re-check every 15 s).
REVALIDATE_S = 5.0


@router.get("/cameras/{camera_id}/live", response_class=HTMLResponse)
async def live_page(
    camera_id: str, b: BackendsDep, principal: Principal = Depends(require("live", camera="camera_id"))
) -> HTMLResponse:
    camera = await b.camera(camera_id)
    page = PAGE.replace("{{camera_id}}", json.dumps(camera.id)).replace("{{camera_name}}", _html(camera.name))
    return HTMLResponse(page)


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


class _Outbox:
    """Bytes written by the muxer, waiting to be sent."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.backlog = 0

    def write(self, data: bytes) -> int:
        self.queue.put_nowait(data)
        self.backlog += len(data)
        return len(data)


@router.websocket("/cameras/{camera_id}/live/stream")
async def live_stream(websocket: WebSocket, camera_id: str, b: BackendsDep, stream: str = "main") -> None:
    """?stream=sub: the camera's sub-stream for grid tiles (the main stream when it has none)."""
    try:
        principal = await authorize(websocket, "live", camera_id)
        camera = await b.camera(camera_id)
        stream = "sub" if stream == "sub" and camera.has_sub_stream else "main"
        await audit(principal, "live.start", f"camera:{camera_id}")
    except HTTPException as exc:
        await websocket_session.refused(websocket, exc)  # "unknown camera" told apart from "try again"
        return
    await websocket.accept()
    if b.nats is None or not b.nats.is_connected:
        await websocket.close(code=1013, reason="live view unavailable: message bus not connected")
        return
    VIEWERS.inc()
    outbox = _Outbox()
    state: dict[str, Fmp4Writer | None] = {"writer": None}
    lagging = asyncio.Event()

    async def on_packet(msg: Msg) -> None:
        packet = FramePacket.FromString(msg.data)
        writer = state["writer"]
        if writer is None:
            if not (packet.keyframe and h264.has_parameter_sets(packet.data)):
                return
            await websocket.send_text(
                # capture_origin_us: the capture time of media time 0 (samples are placed by capture
                # time), so a page can tell how old the frame it shows is (bench/latency.py).
                json.dumps(
                    {
                        "type": "init",
                        "codec": h264.mse_codec(packet.data),
                        "camera": camera.id,
                        "stream": stream,
                        "capture_origin_us": packet.capture_time_us,
                    }
                )
            )
            # The text track: Paris date and time and the camera's name on every image (fmp4_text.py).
            stamped = TimedText(outbox, packet.capture_time_us, camera.name or camera.id)
            state["writer"] = Fmp4Writer(stamped, packet, live=True)
            return
        writer.write(packet)
        if outbox.backlog > MAX_BACKLOG_BYTES:
            lagging.set()

    subscription = await b.nats.subscribe(subjects.masked(b.settings.nats_prefix, camera.id, stream), cb=on_packet)

    async def send() -> None:
        while True:
            data = await outbox.queue.get()
            outbox.backlog -= len(data)
            await websocket.send_bytes(data)

    async def recheck() -> None:
        await authorize(websocket, "live", camera_id)

    try:
        too_slow = Stop(lagging, 1013, "viewer too slow")
        how = await websocket_session.supervise(websocket, send, recheck, (too_slow,), REVALIDATE_S)
    finally:
        await subscription.unsubscribe()
        writer = state["writer"]
        if writer is not None:
            writer.close()
        VIEWERS.dec()
        try:
            await audit(principal, "live.end", f"camera:{camera_id}")
        except HTTPException:
            log.error("live session end could not be audited", camera=camera_id, user=principal.username)
    await websocket_session.close(websocket, how)
