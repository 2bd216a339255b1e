"""Cameras that fail in every way a real network allows, against real servers on loopback.

Each failure shows as the stream's reason; the worker survives and keeps retrying, whichever reads
the stream (ingest's own RTSP client on an event loop, FFmpeg in a thread). The frozen camera is
GStreamer's RTSP server stopped with SIGSTOP: its sockets stay open, so only the read timeout (the
watchdog) can notice, and the stream comes back by itself once it thaws. The stalled HTTP camera
does the same over HTTP: it stops sending mid-stream and keeps the connection.
"""

import itertools
import socketserver
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.support.frames import scene
from tests.support.platform import wait_for
from tests.support.rtsp import RtspCamera, rtsp_server_available
from tests.support.servers import free_port
from tests.support.streams import RunningStream


class _Rtsp401(socketserver.BaseRequestHandler):
    """An RTSP server that refuses every request: a camera with other credentials."""

    def handle(self) -> None:
        buffer = b""
        while True:
            data = self.request.recv(4096)
            if not data:
                return
            buffer += data
            while b"\r\n\r\n" in buffer:
                head, buffer = buffer.split(b"\r\n\r\n", 1)
                cseq = next(
                    (
                        line.split(b":", 1)[1].strip()
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"cseq")
                    ),
                    b"1",
                )
                self.request.sendall(
                    b"RTSP/1.0 401 Unauthorized\r\nCSeq: "
                    + cseq
                    + b'\r\nWWW-Authenticate: Basic realm="camera"\r\n\r\n'
                )


class _HttpGarbage(socketserver.BaseRequestHandler):
    """An HTTP 'camera' that streams random bytes."""

    def handle(self) -> None:
        self.request.recv(4096)
        self.request.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: video/x-unknown\r\n\r\n")
        rng = np.random.default_rng(3)
        try:
            for _ in range(200):
                self.request.sendall(rng.integers(0, 256, 16_384, dtype=np.uint8).tobytes())
                time.sleep(0.01)
        except OSError:
            pass


class _HttpStalling(socketserver.BaseRequestHandler):
    """An HTTP MJPEG camera that sends 30 images at 10 fps, then nothing, with the connection open."""

    released = threading.Event()

    def handle(self) -> None:
        self.request.recv(4096)
        self.request.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=frame\r\n\r\n")
        try:
            for i in range(30):
                jpeg = cv2.imencode(".jpg", scene(i, 352, 288))[1].tobytes()
                head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
                self.request.sendall(head + jpeg + b"\r\n")
                time.sleep(0.1)
        except OSError:
            return
        self.released.wait(120)


def _serve(handler: type[socketserver.BaseRequestHandler]) -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def rtsp_401() -> Iterator[int]:
    yield from _serve(_Rtsp401)


@pytest.fixture
def http_stalling() -> Iterator[int]:
    _HttpStalling.released.clear()
    try:
        yield from _serve(_HttpStalling)
    finally:
        _HttpStalling.released.set()


@pytest.fixture
def http_garbage() -> Iterator[int]:
    yield from _serve(_HttpGarbage)


def _stream(url: str, client: str = "native", **settings: object) -> RunningStream:
    options = {"reconnect_min_s": 0.3, "reconnect_max_s": 1.0, "source_open_timeout_s": 3.0} | settings
    return RunningStream(url, camera_id="cam-bad", rtsp_client=client, **options)


# RTSP cameras are read by ingest's own client, and by FFmpeg where an operator says so (or the
# camera's codec needs it): both must fail the same way.
CLIENTS = pytest.mark.parametrize("client", ["native", "ffmpeg"])


@CLIENTS
def test_wrong_credentials_unreachable_and_garbage_each_have_a_reason(
    client: str, rtsp_401: int, http_garbage: int
) -> None:
    closed = free_port()
    cases = {
        f"rtsp://admin:wrong-pass@127.0.0.1:{rtsp_401}/stream": "wrong credentials",
        f"rtsp://127.0.0.1:{closed}/stream": "Connection refused",
        f"http://127.0.0.1:{http_garbage}/video.mjpg": "not a video stream",
    }
    streams = {url: _stream(url, client) for url in cases}
    try:
        assert [s.native for s in streams.values()] == [client == "native"] * 2 + [False]
        for url, expected in cases.items():
            stream = streams[url]
            reason = wait_for(stream.failure, 30, f"a reason for {url}")
            assert expected in reason, (url, reason)
            assert "wrong-pass" not in reason
            assert stream.packets == []
        for stream in streams.values():
            assert stream.is_alive()
    finally:
        for stream in streams.values():
            stream.stop()


@CLIENTS
def test_a_frozen_camera_trips_the_watchdog_and_comes_back(client: str, vtest_h264: Path) -> None:
    problem = rtsp_server_available()
    assert problem is None, problem
    with RtspCamera(vtest_h264, loop=True) as camera, _stream(camera.url, client, source_read_timeout_s=3.0) as stream:
        packets = stream.packets
        try:
            wait_for(lambda: len(packets) > 10, 30, "packets from the camera")
            camera.freeze()
            reason = wait_for(stream.failure, 30, "the watchdog to cut the frozen stream")
            assert "watchdog" in reason, reason
            count = len(packets)
            camera.thaw()
            wait_for(lambda: len(packets) > count + 10 and stream.health.metrics().connected, 60, "the stream back")
            assert len({p.source_session for p in packets}) >= 2  # the reconnect is a new session
            times = [p.capture_time_us for p in packets]
            assert all(b > a for a, b in itertools.pairwise(times))
        finally:
            camera.thaw()


def test_a_stalled_http_camera_trips_the_watchdog(http_stalling: int) -> None:
    with _stream(f"http://127.0.0.1:{http_stalling}/video.mjpg", source_read_timeout_s=3.0) as stream:
        wait_for(lambda: len(stream.packets) > 10, 30, "images from the camera")
        reason = wait_for(stream.failure, 30, "the watchdog to cut the stalled stream")
        assert "watchdog" in reason, reason
        assert stream.is_alive()
