"""Source kinds on real servers: RTSP over UDP, HTTP MJPEG (multipart), and H.265 passed through
untouched (the published bytes are the file's own packets)."""

import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import cv2
import pytest

from services.common.clock import SystemClock
from services.common.pb.csu.v1.frame_pb2 import FramePacket
from services.common.settings import Settings
from services.ingest.health import StreamHealth
from services.ingest.worker import StreamJob, StreamWorker
from tests.support.frames import scene
from tests.support.platform import wait_for
from tests.support.rtsp import RtspCamera, rtsp_server_available


def stream(url: str, transport: str = "tcp") -> tuple[StreamWorker, list[FramePacket]]:
    packets: list[FramePacket] = []
    worker = StreamWorker(
        StreamJob(
            "cam-t",
            "main",
            url,
            transport,
            Settings(reconnect_min_s=0.3),
            SystemClock(),
            packets.append,
            StreamHealth(),
        )
    )
    worker.start()
    return worker, packets


def test_rtsp_over_udp(vtest_h264: Path) -> None:
    assert rtsp_server_available() is None
    with RtspCamera(vtest_h264, loop=True) as camera:
        worker, packets = stream(camera.url, "udp")
        try:
            wait_for(lambda: len(packets) > 20, 40, "packets over RTP/UDP")
        finally:
            worker.stop()
        worker.join(15)
    keyframe = next(p for p in packets if p.keyframe)
    assert keyframe.codec.name == "h264" and keyframe.codec.width == 768


class _Mjpeg(BaseHTTPRequestHandler):
    """An HTTP camera serving multipart/x-mixed-replace JPEG images at 10 fps."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        try:
            for i in range(600):
                jpeg = cv2.imencode(".jpg", scene(i, 352, 288))[1].tobytes()
                self.wfile.write(
                    b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                    + str(len(jpeg)).encode()
                    + b"\r\n\r\n"
                    + jpeg
                    + b"\r\n"
                )
                time.sleep(0.1)
        except OSError:
            pass

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def mjpeg_camera() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Mjpeg)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/video.mjpg"
    server.shutdown()
    server.server_close()


def test_http_mjpeg(mjpeg_camera: str) -> None:
    worker, packets = stream(mjpeg_camera)
    try:
        wait_for(lambda: len(packets) > 10, 40, "MJPEG images")
    finally:
        worker.stop()
    worker.join(15)
    assert packets[0].keyframe and packets[0].codec.name == "mjpeg"
    assert packets[5].data.startswith(b"\xff\xd8")  # each packet is a whole JPEG, as sent


def test_h265_passes_through_untouched(tmp_path: Path) -> None:
    clip = tmp_path / "hevc.mp4"
    with av.open(str(clip), "w") as out:
        video = out.add_stream("libx265", rate=10)
        video.width, video.height, video.pix_fmt = 352, 288, "yuv420p"
        video.codec_context.options = {"preset": "ultrafast", "x265-params": "log-level=error:keyint=10"}
        for i in range(20):
            frame = av.VideoFrame.from_ndarray(scene(i, 352, 288), format="bgr24")
            frame.pts, frame.time_base = i, Fraction(1, 10)
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
    with av.open(str(clip)) as container:
        originals = [bytes(p) for p in container.demux(container.streams.video[0]) if p.size]
    worker, packets = stream(str(clip))
    try:
        wait_for(lambda: len(packets) >= len(originals), 30, "one pass over the file")
    finally:
        worker.stop()
    worker.join(15)
    assert packets[0].codec.name == "hevc" and packets[0].codec.extradata
    assert [p.data for p in packets[: len(originals)]] == originals
