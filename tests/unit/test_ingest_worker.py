"""A camera stream worker in-process: codec changes mid-stream, capture times, the lease gate, bad files."""

import itertools
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from services.common.clock import SystemClock
from services.common.pb.csu.v1.frame_pb2 import FramePacket
from services.common.settings import Settings
from services.ingest.bitstream import h264_sps_size, parameter_sets
from services.ingest.health import StreamHealth
from services.ingest.worker import StreamJob, StreamWorker
from tests.support.frames import scene
from tests.support.media import write_clip


def annexb_clip(path: Path, parts: list[tuple[int, int, int]]) -> Path:
    """A raw H.264 stream (as an RTSP camera delivers it) whose size changes: [(width, height, frames)]."""
    with path.open("wb") as out:
        for width, height, frames in parts:
            encoder = av.CodecContext.create("libx264", "w")
            encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
            encoder.time_base, encoder.framerate = Fraction(1, 10), Fraction(10)
            encoder.gop_size, encoder.max_b_frames = 10, 0
            encoder.options = {"preset": "ultrafast"}
            for i in range(frames):
                frame = av.VideoFrame.from_ndarray(scene(i, width, height), format="bgr24")
                frame.pts = i
                for packet in encoder.encode(frame):
                    out.write(bytes(packet))
            for packet in encoder.encode(None):
                out.write(bytes(packet))
    return path


def run_worker(url: str, seconds: float, may_publish=lambda: True, **settings: object):  # type: ignore[no-untyped-def]
    packets: list[FramePacket] = []
    health = StreamHealth()
    worker = StreamWorker(
        StreamJob(
            "cam-w",
            "main",
            url,
            "tcp",
            Settings(reconnect_min_s=0.2, reconnect_max_s=0.5, **settings),  # type: ignore[arg-type]
            SystemClock(),
            packets.append,
            health,
            may_publish,
        )
    )
    worker.start()
    time.sleep(seconds)
    worker.stop()
    worker.join(10)
    assert not worker.is_alive()
    return packets, health


def test_sps_parser_reads_the_displayed_size() -> None:
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt, encoder.time_base = 1920, 1080, "yuv420p", Fraction(1, 10)
    frame = av.VideoFrame.from_ndarray(np.zeros((1080, 1920, 3), np.uint8), format="bgr24")
    frame.pts = 0
    packet = bytes([*encoder.encode(frame), *encoder.encode(None)][0])
    sets = parameter_sets("h264", packet)
    assert sets is not None and (sets.width, sets.height) == (1920, 1080)
    assert h264_sps_size(sets.units[0]) == (1920, 1080)


def test_a_camera_reconfigured_mid_stream_starts_a_new_session_with_its_new_parameters(tmp_path: Path) -> None:
    clip = annexb_clip(tmp_path / "reconfigured.h264", [(352, 288, 12), (704, 576, 12)])
    packets, _health = run_worker(str(clip), 2.0)
    assert len(packets) >= 15, len(packets)
    keyframes = [p for p in packets if p.keyframe]
    sizes = [(p.codec.width, p.codec.height) for p in keyframes]
    assert (352, 288) in sizes and (704, 576) in sizes, sizes
    by_session: dict[str, set[tuple[int, int]]] = {}
    for p in keyframes:
        by_session.setdefault(p.source_session, set()).add((p.codec.width, p.codec.height))
    assert all(len(s) == 1 for s in by_session.values()), "one session mixes two configurations"
    assert len(by_session) >= 2
    first_big = next(p for p in packets if p.keyframe and p.codec.width == 704)
    assert first_big.sequence == 0 and parameter_sets("h264", first_big.data) is not None
    assert first_big.codec.extradata.startswith(b"\x00\x00\x00\x01")
    times = [p.capture_time_us for p in packets]
    assert all(b > a for a, b in itertools.pairwise(times)), "capture time went backwards"


def test_nothing_is_published_without_the_lease(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "clip.mp4", seconds=1)
    allowed = threading.Event()
    allowed.set()
    packets, _ = run_worker(str(clip), 1.0, may_publish=allowed.is_set)
    assert packets
    allowed.clear()
    packets, health = run_worker(str(clip), 1.0, may_publish=allowed.is_set)
    assert packets == [] and health.metrics().last_packet_age_s == -1


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("/nonexistent/camera.mp4", "no such file"),
        ("rtsp://user:pw@[::1/stream", "malformed URL"),
        ("ftp://10.0.0.1/x", "unsupported source"),
    ],
)
def test_bad_sources_become_a_reason_not_a_crash(url: str, reason: str) -> None:
    packets, health = run_worker(url, 0.6)
    metrics = health.metrics()
    assert packets == [] and not metrics.connected
    assert reason in metrics.failure and "pw" not in metrics.failure
    assert health.reconnects >= 2  # retried with backoff, the thread survived


def test_garbage_and_unsupported_codecs(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(1).integers(0, 256, 200_000, dtype=np.uint8).tobytes())
    _, health = run_worker(str(garbage), 0.6)
    assert "invalid data" in health.metrics().failure or "no video" in health.metrics().failure

    mpeg2 = tmp_path / "old.mkv"
    with av.open(str(mpeg2), "w") as out:
        stream = out.add_stream("mpeg2video", rate=10)
        stream.width, stream.height, stream.pix_fmt = 352, 288, "yuv420p"
        for i in range(10):
            for packet in stream.encode(av.VideoFrame.from_ndarray(scene(i, 352, 288), format="bgr24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    _, health = run_worker(str(mpeg2), 0.6)
    assert "unsupported codec 'mpeg2video'" in health.metrics().failure
