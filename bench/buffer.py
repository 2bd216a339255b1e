"""Masked-frame buffer: what keeping the masked streams in JetStream costs, next to core NATS alone.

Masking publishes masked main-stream frames on core NATS either way; with the buffer, a JetStream
stream (services/common/bus.py ensure_masked_stream) also keeps the last CSU_MASKED_BUFFER_S of
them on disk and the archive reads them through one durable pull consumer per camera
(services/archive/intake.py), acking once per stored segment. Without it (the baseline, measured
in the same run on the same frames) the archive subscribed on core NATS and lost whatever was
published while it was down.

- A nats-server of its own (the wheel's, configured as `make run` does), CAMERAS cameras at 25 fps
  and about 4 Mbit/s each (a 1080p masked stream: a 100 kB keyframe every second, 17 kB frames
  between), published by another process for SECONDS with a WINDOW_S window (the window fills and
  rolls): the server's CPU, its resident memory at the end, the stream's bytes on disk.
- The archive's side: CPU microseconds per frame received, through the per-camera pull consumers
  against a core subscription.
The README extrapolates to 128 cameras (figures scale with cameras x bitrate). Indicative on a
shared machine.
"""

import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nats
from nats.aio.msg import Msg

from services.archive.intake import CameraIntake
from services.common import bus, subjects
from services.launcher import EmbeddedNats

CAMERAS, FPS, SECONDS, WINDOW_S = 16, 25, 60, 30
KEYFRAME_BYTES, FRAME_BYTES = 100_000, 17_000
PREFIX = "bench"
SEGMENT_FRAMES = 60 * FPS  # one ack per 60 s segment, as the archive stores them

PUBLISHER = """
import asyncio, sys, time, nats
async def main(url, cameras, fps, seconds, key, frame):
    nc = await nats.connect(url)
    keyframe, other = b"k" * key, b"p" * frame
    start = time.monotonic()
    for n in range(int(seconds * fps)):
        for camera in range(cameras):
            await nc.publish(f"bench.masked.cam-{camera}.main", keyframe if n % fps == 0 else other)
        await asyncio.sleep(max(0.0, start + (n + 1) / fps - time.monotonic()))
    await nc.flush()
    await nc.close()
asyncio.run(main(sys.argv[1], *map(int, sys.argv[2:])))
"""


def _proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _du_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


async def _measure(server: EmbeddedNats, buffered: bool) -> dict[str, float]:
    nc = await nats.connect(server.url)
    received = 0
    intakes: list[CameraIntake] = []
    last_reply: dict[str, str] = {}

    async def on_frame(msg: Msg) -> None:
        nonlocal received
        received += 1
        if msg.reply:
            camera = msg.subject.split(".")[2]
            last_reply[camera] = msg.reply
            if received % SEGMENT_FRAMES == 0:
                await nc.publish(msg.reply, b"+ACK")

    if buffered:
        await bus.ensure_masked_stream(nc.jetstream(), PREFIX, WINDOW_S, 4 * 1024**3)
        for camera in range(CAMERAS):
            intake = CameraIntake(nc, PREFIX, f"cam-{camera}", on_frame, ack_wait_s=WINDOW_S)
            await intake.open()
            intakes.append(intake)
    else:
        await nc.subscribe(
            subjects.masked(PREFIX, "*", "main"),
            cb=on_frame,
            pending_msgs_limit=100_000,
            pending_bytes_limit=512 * 1024 * 1024,
        )
    pid = server.process.pid  # type: ignore[union-attr]
    server_cpu, own_cpu, started = _proc_cpu_s(pid), _self_cpu_s(), time.monotonic()
    publisher = subprocess.Popen(
        [sys.executable, "-c", PUBLISHER, server.url, *map(str, (CAMERAS, FPS, SECONDS, KEYFRAME_BYTES, FRAME_BYTES))]
    )
    while publisher.poll() is None:
        await asyncio.sleep(0.5)
    expected = CAMERAS * FPS * SECONDS
    deadline = time.monotonic() + 30
    while received < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    wall = time.monotonic() - started
    figures = {
        "server_cpu_percent": 100 * (_proc_cpu_s(pid) - server_cpu) / wall,
        "server_rss_mb": _proc_rss_mb(pid),
        "receiver_cpu_us_per_frame": 1e6 * (_self_cpu_s() - own_cpu) / max(received, 1),
        "frames_received_fraction": received / expected,
    }
    if buffered:
        info = await nc.jetstream().stream_info(subjects.masked_stream(PREFIX))
        figures["stream_mb"] = info.state.bytes / 1e6
        figures["disk_mb"] = _du_mb(server.store / "jetstream")
        for intake in intakes:
            await intake.close()
        await nc.jetstream().delete_stream(subjects.masked_stream(PREFIX))
    await nc.close()
    return figures


def run() -> dict[str, float | str]:
    megabytes_per_s = CAMERAS * (KEYFRAME_BYTES + (FPS - 1) * FRAME_BYTES) / 1e6
    figures: dict[str, float | str] = {
        "buffer_cameras": float(CAMERAS),
        "buffer_input_mb_per_s": megabytes_per_s,
        "buffer_window_s": float(WINDOW_S),
    }
    with tempfile.TemporaryDirectory(prefix="bench-buffer-") as tmp:
        for buffered, name in ((False, "core"), (True, "jetstream")):
            server = EmbeddedNats(Path(tmp) / name, max_file_store="8GB")
            server.start()
            try:
                measured = asyncio.run(_measure(server, buffered))
            finally:
                server.stop()
            for key, value in measured.items():
                figures[f"buffer_{name}_{key}"] = value
    figures["buffer_server_cpu_ratio"] = figures["buffer_jetstream_server_cpu_percent"] / max(  # type: ignore[operator]
        figures["buffer_core_server_cpu_percent"],
        0.1,  # type: ignore[type-var]
    )
    return figures


if __name__ == "__main__":
    for key, value in run().items():
        print(f"{key:<52} {value:>12.3f}" if isinstance(value, float) else f"{key:<52} {value:>12}")
