"""One redaction, file to file: two passes over a clip of the recording.

Pass 1 decodes every frame once, follows the requester (tracking.py) on a reduced image and, in
person mode, finds the other people (detect.py). Pass 2 decodes again and writes each frame
redacted (effects.py) into a new H.264 MP4. Two decodes cost less than keeping a whole range of
images in memory. Frames are identified by their capture time (the clip's start plus the frame's
time), which is how the operator's boxes are given.

`progress(fraction)` is called about once a second and returns True to stop (cancellation).
"""

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from services.masking.redaction import effects
from services.masking.redaction.detect import DETECT_EVERY, PersonDetector
from services.masking.redaction.tracking import Box, Motion, TrackBuilder

# Tracking runs on images at most this wide: small people (a few dozen pixels) need full detail.
TRACK_WIDTH = 960
BACKGROUND_SAMPLES = 60
OUTPUT_CRF = "23"


class Cancelled(Exception):
    """The job was cancelled (or expired) while running."""


@dataclass(frozen=True)
class Selection:
    time_us: int
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Result:
    frames: int
    # (capture time, requester box normalised (x, y, w, h) or None) for every output frame.
    track: list[tuple[int, tuple[float, float, float, float] | None]]


def _frames(path: Path, clip_start_us: int) -> Iterator[tuple[int, np.ndarray]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        first: int | None = None
        for frame in container.decode(stream):
            pts = frame.pts if frame.pts is not None else 0
            first = pts if first is None else first
            tb = frame.time_base or stream.time_base or Fraction(1, 90_000)
            yield clip_start_us + round((pts - first) * tb * 1_000_000), frame.to_ndarray(format="bgr24")


def redact(
    source: Path,
    clip_start_us: int,
    start_us: int,
    end_us: int,
    selection: list[Selection],
    mode: str,
    effect: str,
    colour_bgr: tuple[int, int, int],
    target: Path,
    progress: Callable[[float], bool],
) -> Result:
    times = [t for t, _ in _timestamps(source, clip_start_us) if start_us <= t < end_us]
    if not times:
        raise ValueError("the recording has no frame in the requested range")
    # Each operator box belongs to the frame nearest its time.
    annotated: dict[int, Selection] = {}
    for box in selection:
        index = int(np.argmin([abs(t - box.time_us) for t in times]))
        annotated[index] = box
    clock = _Ticker(progress)
    track, others = _analyse(source, clip_start_us, start_us, end_us, annotated, mode, clock, len(times))
    frames = _render(source, clip_start_us, start_us, end_us, track, others, mode, effect, colour_bgr, target, clock)
    out_track = []
    for t, tracked in zip(times, track, strict=False):
        out_track.append((t, tracked))
    return Result(frames, out_track)


def _timestamps(source: Path, clip_start_us: int) -> Iterator[tuple[int, None]]:
    """Capture times of every frame, from the packets alone (no decoding)."""
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        pts = sorted(p.pts for p in container.demux(stream) if p.size and p.pts is not None)
        tb = stream.time_base or Fraction(1, 90_000)
    first = pts[0] if pts else 0
    for p in pts:
        yield clip_start_us + round((p - first) * tb * 1_000_000), None


class _Ticker:
    def __init__(self, progress: Callable[[float], bool]) -> None:
        self.progress = progress
        self.last = 0.0

    def tick(self, fraction: float) -> None:
        now = time.monotonic()
        if now - self.last >= 1.0:
            self.last = now
            if self.progress(fraction):
                raise Cancelled()


def _analyse(
    source: Path,
    clip_start_us: int,
    start_us: int,
    end_us: int,
    annotated: dict[int, Selection],
    mode: str,
    clock: _Ticker,
    count: int,
) -> tuple[list[tuple[float, float, float, float] | None], list[list[Box]]]:
    builder: TrackBuilder | None = None
    background = _background(source, clip_start_us, start_us, end_us, count)
    detector = PersonDetector() if mode == "persons" else None
    motion = Motion(background) if mode == "persons" else None
    detections: list[list[Box]] = []
    scale = 1.0
    size = (0, 0)
    index = 0
    for t, image in _frames(source, clip_start_us):
        if t < start_us or t >= end_us:
            continue
        h, w = image.shape[:2]
        if builder is None:
            size = (w, h)
            scale = min(1.0, TRACK_WIDTH / w)
            builder = TrackBuilder(
                {
                    i: (s.x * w * scale, s.y * h * scale, (s.x + s.width) * w * scale, (s.y + s.height) * h * scale)
                    for i, s in annotated.items()
                },
                background,
            )
        small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else image
        builder.feed(index, small)
        if detector is not None and motion is not None:
            found = detector.detect(image) if index % DETECT_EVERY == 0 else []
            moving = [tuple(c / scale for c in b) for b in motion.boxes(small, 30)]
            detections.append([*found, *moving])  # type: ignore[list-item]
        index += 1
        clock.tick(0.5 * index / max(1, count))
    assert builder is not None
    boxes = builder.boxes(index)
    w, h = size
    sx, sy = scale * w, scale * h
    track = [None if b is None else (b[0] / sx, b[1] / sy, (b[2] - b[0]) / sx, (b[3] - b[1]) / sy) for b in boxes]
    if detections:
        # A detection holds until the next one (HOG runs every DETECT_EVERY frames).
        held: list[Box] = []
        for i in range(len(detections)):
            if i % DETECT_EVERY == 0:
                held = [b for b in detections[i][: len(detections[i])]]
            detections[i] = [*held, *detections[i]]
    return track, detections


def _background(source: Path, clip_start_us: int, start_us: int, end_us: int, count: int) -> np.ndarray | None:
    """The range's empty scene at tracking size: the median of up to BACKGROUND_SAMPLES frames."""
    every = max(1, count // BACKGROUND_SAMPLES)
    samples = []
    index = 0
    for t, image in _frames(source, clip_start_us):
        if t < start_us or t >= end_us:
            continue
        if index % every == 0:
            scale = min(1.0, TRACK_WIDTH / image.shape[1])
            samples.append(cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))
        index += 1
    if len(samples) < 5:
        return None
    return np.median(np.stack(samples), axis=0).astype(np.uint8)


def _render(
    source: Path,
    clip_start_us: int,
    start_us: int,
    end_us: int,
    track: list,
    others: list[list[Box]],
    mode: str,
    effect: str,
    colour_bgr: tuple[int, int, int],
    target: Path,
    clock: _Ticker,
) -> int:
    index = 0
    with av.open(str(target), "w", options={"movflags": "+faststart"}) as out:
        stream = None
        first_t = None
        for t, image in _frames(source, clip_start_us):
            if t < start_us or t >= end_us:
                continue
            h, w = image.shape[:2]
            if stream is None:
                stream = out.add_stream("libx264", rate=Fraction(90_000, 1))
                stream.width, stream.height, stream.pix_fmt = w - w % 2, h - h % 2, "yuv420p"
                stream.time_base = Fraction(1, 90_000)
                stream.codec_context.options = {"preset": "veryfast", "crf": OUTPUT_CRF, "bf": "0"}
                first_t = t
            box = track[index] if index < len(track) else None
            keep = None if box is None else (box[0] * w, box[1] * h, (box[0] + box[2]) * w, (box[1] + box[3]) * h)
            if mode == "persons":
                redacted = effects.persons(image, keep, others[index] if index < len(others) else [], colour_bgr)
            else:
                redacted = effects.scene(image, keep, effect)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(redacted[: h - h % 2, : w - w % 2]), "bgr24")
            frame.pts = (t - (first_t or t)) * 9 // 100
            frame.time_base = Fraction(1, 90_000)
            for packet in stream.encode(frame):
                out.mux(packet)
            index += 1
            clock.tick(0.5 + 0.5 * index / max(1, len(track)))
        if stream is not None:
            for packet in stream.encode(None):
                out.mux(packet)
    return index
