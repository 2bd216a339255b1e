"""Following the requester's box between the operator's boxes.

- From each operator box, an OpenCV MIL tracker (in the main module of opencv-python-headless:
  no model to download) follows the requester forward, frame by frame.
- Operator boxes take precedence: where the next operator box differs from where the tracker got
  to, the difference is spread linearly over the frames in between, so the track passes exactly
  through every operator box and never jumps.
- Before the first operator box the tracker runs backwards over the frames kept for that purpose
  (at most PREFIX_MAX_FRAMES, at tracking resolution); after the last one it runs forwards alone.
- Detection assists: when a moving region (background subtraction) matches the tracked box, the
  box is pulled halfway towards it, which stops the slow drift of a tracker on a walking person.
- Where the tracker loses the requester and no later operator box exists, the frame has no box:
  scene redaction then hides everything in it (the safe side).

Boxes are (x0, y0, x1, y1) in pixels of the tracking image.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

Box = tuple[float, float, float, float]
PREFIX_MAX_FRAMES = 300
# A moving region pulls the tracked box when its centre is within this fraction of the box's size
# and it is about the box's size (each side within ASSIST_MAX_RATIO): one person, not a crowd.
ASSIST_MAX_SHIFT = 0.5
ASSIST_MAX_RATIO = 1.4
ASSIST_WEIGHT = 0.6


def iou(a: Box, b: Box) -> float:
    x0, y0, x1, y1 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _blend(a: Box, b: Box, t: float) -> Box:
    return tuple(x + (y - x) * t for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


def _add(a: Box, delta: Sequence[float], t: float) -> Box:
    return tuple(x + d * t for x, d in zip(a, delta, strict=True))  # type: ignore[return-value]


class _Follower:
    """One MIL tracker plus the motion assist."""

    def __init__(self, image: np.ndarray, box: Box) -> None:
        # The spelling the policy test allows (tests/unit/test_no_biometrics_no_audio.py); OpenCV's
        # stubs list only TrackerMIL.create, the same function.
        self.tracker = cv2.TrackerMIL_create()  # type: ignore[attr-defined]
        self.box = box
        self.tracker.init(image, _xywh(box, image.shape))
        self.lost = False

    def step(self, image: np.ndarray, motion: Sequence[Box]) -> Box | None:
        if self.lost:
            return None
        ok, rect = self.tracker.update(image)
        if not ok:
            self.lost = True
            return None
        x, y, w, h = rect
        box: Box = (float(x), float(y), float(x + w), float(y + h))
        best = _nearest_similar(box, motion)
        if best is not None:
            box = _blend(box, best, ASSIST_WEIGHT)
            self.tracker = cv2.TrackerMIL_create()  # type: ignore[attr-defined]
            self.tracker.init(image, _xywh(box, image.shape))
        self.box = box
        return box


def _similar(a: Box, b: Box) -> bool:
    """Boxes of about the same size: a moving region that is one person, not several merged."""
    wa, ha, wb, hb = a[2] - a[0], a[3] - a[1], b[2] - b[0], b[3] - b[1]
    return (
        wa > 0
        and ha > 0
        and 1 / ASSIST_MAX_RATIO <= wb / wa <= ASSIST_MAX_RATIO
        and (1 / ASSIST_MAX_RATIO <= hb / ha <= ASSIST_MAX_RATIO)
    )


def _nearest_similar(box: Box, candidates: Sequence[Box]) -> Box | None:
    """The moving region of about the box's size whose centre is nearest, if near enough."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    reach = ASSIST_MAX_SHIFT * max(box[2] - box[0], box[3] - box[1])
    best: tuple[float, Box] | None = None
    for m in candidates:
        if not _similar(box, m):
            continue
        d = math.hypot((m[0] + m[2]) / 2 - cx, (m[1] + m[3]) / 2 - cy)
        if d <= reach and (best is None or d < best[0]):
            best = (d, m)
    return best[1] if best else None


def _xywh(box: Box, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    h, w = shape[:2]
    x0, y0 = max(0, round(box[0])), max(0, round(box[1]))
    x1, y1 = min(w, round(box[2])), min(h, round(box[3]))
    return x0, y0, max(2, x1 - x0), max(2, y1 - y0)


class Motion:
    """Moving regions as boxes: what differs from the range's background (the median of frames
    sampled across it, so people present at the start leave no ghost), or, without one, MOG2."""

    def __init__(self, background: np.ndarray | None = None) -> None:
        self.background = background
        self.subtractor = cv2.createBackgroundSubtractorMOG2(history=200, varThreshold=32, detectShadows=False)
        self.kernel = np.ones((3, 3), np.uint8)

    def boxes(self, image: np.ndarray, min_area: int) -> list[Box]:
        fg: np.ndarray
        if self.background is not None and self.background.shape == image.shape:
            fg = (cv2.absdiff(image, self.background).max(axis=2) > 30).astype(np.uint8)
        else:
            fg = (self.subtractor.apply(image) > 0).astype(np.uint8)
        fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, self.kernel)
        fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, self.kernel, iterations=2)
        count, _, stats, _ = cv2.connectedComponentsWithStats(fg)
        return [
            (float(x), float(y), float(x + w), float(y + h)) for x, y, w, h, area in stats[1:count] if area >= min_area
        ]


@dataclass
class _Gap:
    start: int  # frame index of the operator box the gap starts from
    start_box: Box
    end: int | None  # next operator box's frame index (None: tracked to the end)
    end_box: Box | None


class TrackBuilder:
    """Pass one of a redaction: fed every frame in order, returns the requester's box per frame.

    `annotations` maps frame index -> operator box (tracking-image pixels).
    """

    def __init__(self, annotations: dict[int, Box], background: np.ndarray | None = None) -> None:
        if not annotations:
            raise ValueError("at least one box of the requester is needed")
        self.annotations = dict(sorted(annotations.items()))
        self.keys = list(self.annotations)
        self.raw: dict[int, Box | None] = {}  # tracker output, before corrections
        self.reached: dict[int, Box | None] = {}  # where the tracker got to at each operator box
        self.prefix: list[tuple[int, np.ndarray, list[Box]]] = []
        self.motion = Motion(background)
        self.follower: _Follower | None = None
        self.min_area = 100

    def feed(self, index: int, image: np.ndarray) -> None:
        motion = self.motion.boxes(image, self.min_area)
        if index in self.annotations:
            box = self.annotations[index]
            if self.follower is not None:
                self.reached[index] = self.follower.step(image, motion)
            self.min_area = max(50, int((box[2] - box[0]) * (box[3] - box[1]) * 0.2))
            if index == self.keys[0]:
                self._backwards(image, box)
            self.follower = _Follower(image, box)
            self.raw[index] = box
            return
        if self.follower is None:
            self.prefix.append((index, image, motion))
            if len(self.prefix) > PREFIX_MAX_FRAMES:
                self.prefix.pop(0)  # too far before the first box: that frame will have none
            return
        self.raw[index] = self.follower.step(image, motion)

    def _backwards(self, image: np.ndarray, box: Box) -> None:
        follower = _Follower(image, box)
        for index, frame, motion in reversed(self.prefix):
            self.raw[index] = follower.step(frame, motion)
        self.prefix.clear()

    def boxes(self, count: int) -> list[Box | None]:
        """The track over frames 0..count-1, operator boxes taking precedence (interpolated)."""
        track: list[Box | None] = [self.raw.get(i) for i in range(count)]
        for a, b in zip(self.keys, self.keys[1:], strict=False):
            box_a, box_b = self.annotations[a], self.annotations[b]
            reached = self.reached.get(b)
            # The tracker's error at b, spread over the gap; where it lost the requester, the
            # operator boxes are joined linearly.
            lost = any(self.raw.get(i) is None for i in range(a + 1, b))
            for i in range(a + 1, b):
                t = (i - a) / (b - a)
                raw = self.raw.get(i)
                if lost or raw is None or reached is None:
                    track[i] = _blend(box_a, box_b, t)
                else:
                    delta = [bb - rr for bb, rr in zip(box_b, reached, strict=True)]
                    track[i] = _add(raw, delta, t)
            track[b] = box_b
        track[self.keys[0]] = self.annotations[self.keys[0]]
        return track
