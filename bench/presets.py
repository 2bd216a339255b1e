"""x264 settings for burning in, measured against the camera's own stream at the arrêté's profiles.

For each profile (352x288 to 1080p, 25 fps) a camera-like clip is encoded at a camera's bitrate
(bench/media.py: textured scene, moving objects, sensor noise); its decoded frames are what
masking receives. Each candidate setting then decodes and re-encodes them as masking does (x264,
tune zerolatency: no lookahead, no frame delay, which the live view needs), and is measured by:
- frames per CPU-second of decode + encode (one thread per camera unless stated: on a loaded node
  threads only add synchronisation);
- bitrate against the camera's own (target <= 1.5x);
- SSIM (luma, 11x11 Gaussian window) against the camera's decoded frames (target >= 0.97).

`choose` picks, per profile, the fastest one-thread setting that meets both targets: the defaults
of services/masking/encoding.py, which this table justifies (the README shows it). Rows with x264's
own threads are shown beside them, never chosen: the service runs one thread per camera (cameras,
not threads, fill a node's cores), and their speed here is within the run-to-run noise (±10 %).
"""

import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from bench.media import street_clip

FPS = Fraction(25)
SECONDS = 4
# (name, size, the camera's own bitrate): common settings of city cameras at each profile.
PROFILES = [
    ("352x288", (352, 288), 512_000),
    ("704x576", (704, 576), 1_500_000),
    ("1280x720", (1280, 720), 2_500_000),
    ("1920x1080", (1920, 1080), 4_000_000),
]
# (label, x264 options, threads); tune zerolatency throughout.
CABAC = {"preset": "ultrafast", "x264-params": "cabac=1"}
CANDIDATES = [
    ("veryfast crf21 (today)", {"preset": "veryfast", "crf": "21"}, 0),
    ("veryfast crf21 1 thread", {"preset": "veryfast", "crf": "21"}, 1),
    ("superfast crf23", {"preset": "superfast", "crf": "23"}, 1),
    ("ultrafast crf23", {"preset": "ultrafast", "crf": "23"}, 1),
    ("ultrafast crf26", {"preset": "ultrafast", "crf": "26"}, 1),
    ("ultrafast+cabac crf23", CABAC | {"crf": "23"}, 1),
    ("ultrafast+cabac crf25", CABAC | {"crf": "25"}, 1),
    ("ultrafast+cabac crf27", CABAC | {"crf": "27"}, 1),
    ("ultrafast+cabac crf28", CABAC | {"crf": "28"}, 1),
    ("ultrafast+cabac crf28 sliced 2", CABAC | {"crf": "28", "sliced-threads": "1"}, 2),
]
SSIM_MIN, BITRATE_MAX = 0.97, 1.5


@dataclass(frozen=True)
class Row:
    profile: str
    label: str
    frames_per_cpu_s: float
    kbps: float
    camera_kbps: float
    ssim: float
    threads: int  # x264's threads: 0 lets x264 choose; only one-thread rows are chosen

    @property
    def bitrate_ratio(self) -> float:
        return self.kbps / self.camera_kbps

    @property
    def meets(self) -> bool:
        return self.ssim >= SSIM_MIN and self.bitrate_ratio <= BITRATE_MAX


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)
    c1, c2, k, s = (0.01 * 255) ** 2, (0.03 * 255) ** 2, (11, 11), 1.5
    mu1, mu2 = cv2.GaussianBlur(a, k, s), cv2.GaussianBlur(b, k, s)
    s1 = cv2.GaussianBlur(a * a, k, s) - mu1 * mu1
    s2 = cv2.GaussianBlur(b * b, k, s) - mu2 * mu2
    s12 = cv2.GaussianBlur(a * b, k, s) - mu1 * mu2
    return float((((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1 * mu1 + mu2 * mu2 + c1) * (s1 + s2 + c2))).mean())


def _measure(profile: str, clip: Path, camera_kbps: float, label: str, options: dict, threads: int) -> Row:
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        packets = [p for p in container.demux(stream) if p.size]
        decoder = stream.codec_context
        encoder = av.CodecContext.create("libx264", "w")
        encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
        encoder.time_base, encoder.framerate = 1 / FPS, FPS
        encoder.gop_size, encoder.max_b_frames = int(FPS), 0
        encoder.thread_count = threads
        encoder.options = {**options, "tune": "zerolatency"}
        references, encoded, size, n = [], [], 0, 0
        start = time.process_time()
        for packet in packets:
            for frame in decoder.decode(packet):
                if n % 10 == 0:
                    references.append(frame.to_ndarray(format="gray"))
                frame.pts, frame.pict_type = n, av.video.frame.PictureType.NONE
                n += 1
                for out in encoder.encode(frame):
                    size += out.size
                    encoded.append(bytes(out))
        for out in encoder.encode(None):
            size += out.size
            encoded.append(bytes(out))
        cpu = time.process_time() - start
    check = av.CodecContext.create("h264", "r")
    decoded = [f for data in encoded for f in check.decode(av.Packet(data))] + list(check.decode(None))
    score = float(np.mean([ssim(ref, decoded[i * 10].to_ndarray(format="gray")) for i, ref in enumerate(references)]))
    kbps = size * 8 / (n / float(FPS)) / 1000
    return Row(profile, label, n / cpu, kbps, camera_kbps, score, threads)


def table(workdir: Path) -> list[Row]:
    rows = []
    for profile, size, bitrate in PROFILES:
        clip = street_clip(workdir / f"camera-{profile}.mp4", SECONDS, FPS, size, bitrate)
        with av.open(str(clip)) as c:
            camera_kbps = sum(p.size for p in c.demux(c.streams.video[0])) * 8 / SECONDS / 1000
        for label, options, threads in CANDIDATES:
            rows.append(_measure(profile, clip, camera_kbps, label, options, threads))
            r = rows[-1]
            print(
                f"    {profile:>9} {label:<26} {r.frames_per_cpu_s:7.1f} fps/CPU-s {r.kbps:7.0f} kbit/s "
                f"({r.bitrate_ratio:4.2f}x camera) SSIM {r.ssim:.4f}{'  ok' if r.meets else ''}",
                flush=True,
            )
    return rows


def choose(rows: list[Row]) -> dict[str, Row]:
    """Per profile: the fastest one-thread setting meeting both targets (else the best SSIM)."""
    chosen = {}
    for profile, _, _ in PROFILES:
        candidates = [r for r in rows if r.profile == profile and r.threads == 1]
        meeting = [r for r in candidates if r.meets]
        chosen[profile] = (
            max(meeting, key=lambda r: r.frames_per_cpu_s) if meeting else max(candidates, key=lambda r: r.ssim)
        )
    return chosen


def markdown(rows: list[Row], chosen: dict[str, Row]) -> str:
    lines = [
        "| profile | x264 (tune zerolatency) | frames per CPU-second | kbit/s | × camera | SSIM | |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        mark = "**default**" if chosen.get(r.profile) is r else ("meets" if r.meets else "")
        lines.append(
            f"| {r.profile} | {r.label} | {r.frames_per_cpu_s:.1f} | {r.kbps:.0f} | {r.bitrate_ratio:.2f} | "
            f"{r.ssim:.4f} | {mark} |"
        )
    return "\n".join(lines) + "\n"


def figures(rows: list[Row]) -> dict[str, float]:
    out = {}
    for r in rows:
        key = f"x264_{r.profile}_{r.label.split(' (')[0].replace(' ', '_').replace('+', '_')}"
        out |= {
            f"{key}_frames_per_cpu_s": r.frames_per_cpu_s,
            f"{key}_kbps": r.kbps,
            f"{key}_bitrate_vs_camera": r.bitrate_ratio,
            f"{key}_ssim": r.ssim,
        }
    return out
