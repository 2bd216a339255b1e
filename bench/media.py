"""Benchmark inputs, generated here so `make bench` needs nothing outside the repository."""

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np


def street_clip(
    path: Path,
    seconds: float,
    fps: Fraction,
    size: tuple[int, int],
    bitrate: int,
    gop_s: float = 2.0,
    paint: Callable[[np.ndarray], None] | None = None,
) -> Path:
    """A camera-like H.264 clip: textured static scene, moving objects, sensor noise, fixed bitrate,
    a keyframe every gop_s; `paint(bgr)` changes each image first (a camera burning its own mask)."""
    width, height = size
    rng = np.random.default_rng(7)
    base = cv2.resize(
        rng.integers(40, 200, (height // 8, width // 8, 3), dtype=np.uint8), size, interpolation=cv2.INTER_CUBIC
    )
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.bit_rate = bitrate
        stream.codec_context.options = {"preset": "veryfast", "g": str(round(fps * gop_s)), "bf": "0"}
        for i in range(int(seconds * fps)):
            img = base.copy()
            for k in range(6):
                x = int((i * (9 + 4 * k) + k * 300) % width)
                cv2.rectangle(img, (x, 300 + 90 * k), (x + 80, 460 + 90 * k), (30 * k, 200 - 20 * k, 90), -1)
            noise = rng.integers(-5, 6, (height, width, 1), dtype=np.int16)
            img = np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)
            if paint is not None:
                paint(img)
            frame = av.VideoFrame.from_ndarray(img, format="bgr24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def scaled_h264(source: Path, target: Path, width: int, height: int, gop: int = 10) -> Path:
    """The footage at another size, as a camera's sub stream sends it (H.264, no B-frames)."""
    with av.open(str(source)) as src, av.open(str(target), "w") as out:
        stream = src.streams.video[0]
        encoded = out.add_stream("libx264", rate=stream.average_rate or Fraction(10))
        encoded.width, encoded.height, encoded.pix_fmt = width, height, "yuv420p"
        encoded.codec_context.options = {"preset": "veryfast", "crf": "23", "g": str(gop), "bf": "0"}
        for frame in src.decode(stream):
            scaled = frame.reformat(width=width, height=height, format="yuv420p")
            scaled.pts = None
            for packet in encoded.encode(scaled):
                out.mux(packet)
        for packet in encoded.encode():
            out.mux(packet)
    return target
