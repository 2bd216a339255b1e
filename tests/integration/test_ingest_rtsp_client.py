"""Ingest's own RTSP client against real servers on loopback.

GStreamer's RTSP server (the test camera) shows that what the client publishes is, byte for byte,
what FFmpeg's demuxer gives for the same live stream (H.264 and H.265), that it logs in with Digest
and Basic, and that a camera in another codec is handed to FFmpeg. A scripted camera (a TCP server
speaking RTSP by hand) shows what GStreamer will not do: keep-alives and the camera's own requests,
a refused transport, a description without video, garbage in the stream, a lost packet.
"""

import socket
import socketserver
import struct
import threading
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from services.ingest.sources import live_options
from tests.support.platform import wait_for
from tests.support.rtsp import RtspCamera, rtsp_server_available
from tests.support.streams import RunningStream


def ffmpeg_packets(url: str, seconds: float, out: list[tuple[bytes, bool]], info: dict[str, object]) -> None:
    with av.open(url, options=live_options("rtsp", "tcp", 10), timeout=(10, None)) as container:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        info |= {"extradata": bytes(ctx.extradata or b""), "size": (ctx.width, ctx.height)}
        info["rate"] = float(stream.average_rate or stream.guessed_rate or 0)
        end = time.monotonic() + seconds
        for packet in container.demux(stream):
            if packet.size:
                out.append((bytes(packet), packet.is_keyframe))
            if time.monotonic() > end:
                return


def hevc_clip(path: Path) -> Path:
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx265", rate=10)
        video.width, video.height, video.pix_fmt = 640, 360, "yuv420p"
        video.codec_context.options = {"preset": "ultrafast", "x265-params": "log-level=error:keyint=10:bframes=0"}
        rng = np.random.default_rng(5)
        for i in range(150):  # longer than a test reads: no packet repeats within one
            image = rng.integers(0, 255, (360, 640, 3), dtype=np.uint8) // (1 + i % 4)
            for packet in video.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
    return path


@pytest.fixture(params=["h264", "h265"])
def camera_file(request: pytest.FixtureRequest, vtest_h264: Path, tmp_path: Path) -> tuple[str, Path]:
    return request.param, vtest_h264 if request.param == "h264" else hevc_clip(tmp_path / "hevc.mp4")


def test_access_units_are_ffmpegs_packets_byte_for_byte(camera_file: tuple[str, Path]) -> None:
    problem = rtsp_server_available()
    assert problem is None, problem
    codec, clip = camera_file
    with RtspCamera(clip, loop=True, codec=codec) as camera:
        theirs: list[tuple[bytes, bool]] = []
        info: dict[str, object] = {}
        reader = threading.Thread(target=ffmpeg_packets, args=(camera.url, 8.0, theirs, info), daemon=True)
        with RunningStream(camera.url) as ours:
            reader.start()
            assert ours.native
            reader.join(30)
            wait_for(lambda: len(ours.packets) > 60, 30, "packets from the native client")
    # Both joined the same live stream, a moment apart: from the first packet both have, they agree.
    mine = [(p.data, p.keyframe) for p in ours.packets]
    first = next(i for i, packet in enumerate(mine) if packet in theirs)
    start = theirs.index(mine[first])
    common = min(len(mine) - first, len(theirs) - start)
    assert common >= 40, (first, start, len(mine), len(theirs))
    assert mine[first : first + common] == theirs[start : start + common]
    assert any(key for _, key in mine[first : first + common])
    keyframe = next(p for p in ours.packets if p.keyframe)
    assert keyframe.codec.name == {"h264": "h264", "h265": "hevc"}[codec]
    assert keyframe.codec.extradata == info["extradata"]
    assert (keyframe.codec.width, keyframe.codec.height) == info["size"]
    assert keyframe.frame_rate == pytest.approx(info["rate"], rel=0.01)
    assert ours.health.metrics().codec == keyframe.codec.name


def test_digest_and_basic_credentials(vtest_h264: Path) -> None:
    for auth in ("digest", "basic"):
        with RtspCamera(vtest_h264, loop=True, credentials=("opérateur", "s3cret:pass"), auth=auth) as camera:
            with_credentials = camera.url.replace("rtsp://", "rtsp://op%C3%A9rateur:s3cret%3Apass@")
            wrong = camera.url.replace("rtsp://", "rtsp://op%C3%A9rateur:wrong-pass@")
            with (
                RunningStream(with_credentials) as good,
                RunningStream(wrong) as bad,
                RunningStream(camera.url) as none,
            ):
                wait_for(lambda s=good: len(s.packets) > 10, 30, f"packets with {auth} credentials")
                reason = wait_for(bad.failure, 30, "the wrong password refused")
                assert "wrong credentials (the camera answered 401 Unauthorized)" in reason
                assert "wrong-pass" not in reason
                assert "no credentials for the camera" in wait_for(none.failure, 30, "no credentials refused")
                assert bad.packets == none.packets == []


def test_a_camera_in_another_codec_is_handed_to_ffmpeg() -> None:
    with RtspCamera(None, codec="mjpeg") as camera, RunningStream(camera.url) as stream:
        wait_for(lambda: len(stream.packets) > 10, 40, "JPEG images through FFmpeg")
        assert not stream.native and stream.packets[0].codec.name == "mjpeg"
        assert (stream.packets[0].codec.width, stream.packets[0].codec.height) == (352, 288)


# -- a scripted camera ---------------------------------------------------------------------------

SPS = bytes.fromhex("6742c00cda05825a1000000300100000030140f142aa")  # 352x288, baseline (x264)
PPS = bytes.fromhex("68ce0fc8")
IDR = bytes([0x65]) + bytes(range(256)) * 6
SLICE = bytes([0x41, 0x9A]) + bytes(200)


def rtp(seq: int, ts: int, payload: bytes, marker: bool = True) -> bytes:
    packet = struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | 96, seq & 0xFFFF, ts, 7) + payload
    return b"$\x00" + struct.pack("!H", len(packet)) + packet


def fragments(unit: bytes, seq: int, ts: int, size: int = 500) -> list[bytes]:
    body, header = unit[1:], unit[0]
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    out = []
    for i, piece in enumerate(pieces):
        last = i == len(pieces) - 1
        fu = (0x80 if i == 0 else 0) | (0x40 if last else 0) | (header & 0x1F)
        out.append(rtp(seq + i, ts, bytes([(header & 0xE0) | 28, fu]) + piece, marker=last))
    return out


def sdp(video: bool = True) -> bytes:
    import base64

    sets = ",".join(base64.b64encode(u).decode() for u in (SPS, PPS))
    media = (
        "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
        f"a=fmtp:96 packetization-mode=1;sprop-parameter-sets={sets}\r\n"
        "a=framerate:10\r\na=control:track1\r\n"
        if video
        else "m=audio 0 RTP/AVP 0\r\na=control:track1\r\n"
    )
    return f"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=scripted\r\nt=0 0\r\n{media}".encode()


class Script:
    """How the scripted camera behaves, and what it heard."""

    def __init__(self, *, video: bool = True, setup_status: int = 200, session_timeout: int = 60,
                 stream: Callable[[socket.socket], None] | None = None) -> None:  # fmt: skip
        self.video, self.setup_status, self.session_timeout = video, setup_status, session_timeout
        self.stream = stream or (lambda sock: None)
        self.requests: list[str] = []
        self.answers_to_us: list[str] = []


class ScriptedCamera(socketserver.BaseRequestHandler):
    script: Script

    def handle(self) -> None:
        sock, script, buffer = self.request, self.script, b""
        while True:
            while b"\r\n\r\n" not in buffer:
                data = sock.recv(65536)
                if not data:
                    return
                buffer += data
            head, buffer = buffer.split(b"\r\n\r\n", 1)
            lines = head.decode().split("\r\n")
            if lines[0].startswith("RTSP/"):
                script.answers_to_us.append(head.decode())
                continue
            script.requests.append(head.decode())
            method = lines[0].split(" ")[0]
            cseq = next(line.split(":", 1)[1].strip() for line in lines if line.lower().startswith("cseq"))
            body, headers, status = b"", "", 200
            if method == "OPTIONS":
                headers = "Public: OPTIONS, DESCRIBE, SETUP, PLAY, GET_PARAMETER, TEARDOWN\r\n"
            elif method == "DESCRIBE":
                body = sdp(script.video)
                headers = "Content-Type: application/sdp\r\nContent-Base: rtsp://127.0.0.1/cam/\r\n"
            elif method == "SETUP":
                status = script.setup_status
                headers = f"Session: 5EC7;timeout={script.session_timeout}\r\n"
                headers += "Transport: RTP/AVP/TCP;interleaved=0-1\r\n"
            reason = {200: "OK", 400: "Bad Request", 461: "Unsupported Transport"}.get(status, "Error")
            sock.sendall(
                f"RTSP/1.0 {status} {reason}\r\nCSeq: {cseq}\r\n{headers}Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            if method == "PLAY":
                threading.Thread(target=self._stream, args=(sock,), daemon=True).start()
            if method == "TEARDOWN":
                return

    def _stream(self, sock: socket.socket) -> None:
        try:
            self.script.stream(sock)
        except OSError:
            pass


@pytest.fixture
def scripted() -> Iterator[Callable[[Script], str]]:
    servers: list[socketserver.ThreadingTCPServer] = []

    def serve(script: Script) -> str:
        handler = type("Handler", (ScriptedCamera,), {"script": script})
        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"rtsp://127.0.0.1:{server.server_address[1]}/cam"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def frames(sock: socket.socket, count: int = 1000, lose: int | None = None, then: bytes = b"") -> None:
    """A 10 fps stream: a keyframe (in FU-A fragments) every 10 frames; frame `lose` loses a packet."""
    seq = 0
    for n in range(count):
        ts = n * 9000
        packets = fragments(IDR, seq, ts) if n % 10 == 0 else [rtp(seq, ts, SLICE[:2] + bytes([n % 256]) + SLICE[3:])]
        seq += len(packets)
        if n == lose:
            packets = packets[:1] + packets[2:]
        sock.sendall(b"".join(packets))
        time.sleep(0.1)
    sock.sendall(then)
    time.sleep(30)


def test_keep_alives_answers_to_the_camera_and_teardown(scripted: Callable[[Script], str]) -> None:
    def stream(sock: socket.socket) -> None:
        sock.sendall(rtp(0, 0, SLICE) + b"GET_PARAMETER rtsp://127.0.0.1/cam/ RTSP/1.0\r\nCSeq: 77\r\n\r\n")
        frames(sock)

    script = Script(session_timeout=2, stream=stream)
    with RunningStream(scripted(script)) as camera:
        wait_for(lambda: sum(r.startswith("GET_PARAMETER") for r in script.requests) >= 2, 10, "two keep-alives")
        assert camera.native and camera.failure() == ""
    keepalives = [r for r in script.requests if r.startswith("GET_PARAMETER")]
    assert all("Session: 5EC7" in r for r in keepalives)
    assert any(a.startswith("RTSP/1.0 200 OK") and "CSeq: 77" in a for a in script.answers_to_us)
    wait_for(lambda: script.requests[-1].startswith("TEARDOWN rtsp://127.0.0.1/cam/"), 10, "the TEARDOWN")
    setup = next(r for r in script.requests if r.startswith("SETUP"))
    assert setup.startswith("SETUP rtsp://127.0.0.1/cam/track1 RTSP/1.0")


def test_a_lost_packet_loses_its_frame_only(scripted: Callable[[Script], str]) -> None:
    with RunningStream(scripted(Script(stream=lambda sock: frames(sock, 40, lose=20)))) as camera:
        wait_for(lambda: len(camera.packets) >= 39, 15, "the frames but one")
        time.sleep(0.5)
    assert len(camera.packets) == 39 and camera.failure() == ""
    keyframes = [p for p in camera.packets if p.keyframe]
    assert len(keyframes) == 3 and keyframes[0].data == b"\x00\x00\x00\x01" + IDR  # the one at 20 is lost
    assert (keyframes[0].codec.width, keyframes[0].codec.height, keyframes[0].frame_rate) == (352, 288, 10.0)
    assert [p.pts for p in camera.packets][19:21] == [171_000, 189_000]


def rtcp_only(sock: socket.socket) -> None:
    """Sender reports on the RTCP channel, and no video: the connection lives, the stream does not."""
    report = struct.pack("!BBHI", 0x80, 200, 6, 7) + bytes(20)
    for _ in range(300):
        sock.sendall(b"$\x01" + struct.pack("!H", len(report)) + report)
        time.sleep(0.1)


@pytest.mark.parametrize(
    ("script", "reason"),
    [
        (Script(setup_status=461), "the camera refuses RTSP over TCP (461 Unsupported Transport)"),
        (Script(video=False), "the camera describes no video stream"),
        (Script(stream=lambda sock: frames(sock, 5, then=bytes(range(256)) * 8000)), "invalid data"),
        (Script(stream=lambda sock: frames(sock, 5)), "no data from the camera for 2 s (watchdog)"),
        (Script(stream=rtcp_only), "no video for 2 s (watchdog)"),
    ],
    ids=["tcp-refused", "no-video", "garbage", "silent", "rtcp-only"],
)
def test_a_camera_that_misbehaves_has_a_reason(scripted: Callable[[Script], str], script: Script, reason: str) -> None:
    with RunningStream(scripted(script), source_read_timeout_s=2.0, reconnect_min_s=5.0) as camera:
        found = wait_for(camera.failure, 20, "the stream's reason")
        assert reason in found, found
        assert camera.is_alive()


def test_timestamps_of_a_session_never_go_back(scripted: Callable[[Script], str]) -> None:
    with RunningStream(scripted(Script(stream=lambda sock: frames(sock, 15)))) as camera:
        wait_for(lambda: len(camera.packets) >= 15, 15, "the frames")
    times = [p.capture_time_us for p in camera.packets]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert {Fraction(p.time_base_num, p.time_base_den) for p in camera.packets} == {Fraction(1, 90_000)}


def test_a_camera_refusing_this_clients_setup_is_handed_to_ffmpeg(scripted: Callable[[Script], str]) -> None:
    script = Script(setup_status=400)
    with RunningStream(scripted(script), reconnect_min_s=5.0) as camera:
        wait_for(lambda: not camera.native, 15, "the camera handed to FFmpeg")
        reason = wait_for(camera.failure, 20, "FFmpeg's own attempt")
        assert "400" in reason, reason
    assert sum(r.startswith("SETUP") for r in script.requests) >= 2  # ours, then FFmpeg's
