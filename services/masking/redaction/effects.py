"""What a redacted frame shows: the requester, and nothing identifiable of anyone else.

- Scene redaction (default): the whole image pixelated into blocks of about 1/24 of its width
  (a multiple of 16, so the encoder's macroblocks fall on the blocks and keep them flat), or
  strongly blurred, except the requester's box, grown by a margin.
- Person redaction: the image as recorded, with every detected person other than the requester
  filled with the mask colour.
"""

from collections.abc import Sequence

import cv2
import numpy as np

Box = tuple[float, float, float, float]
# The requester's box is grown by this fraction of its size on each side (limbs, tracker slack).
KEEP_MARGIN = 0.08
# A detection covering this much of the requester's box (or of itself) is the requester.
SAME_PERSON_OVERLAP = 0.5


def block_size(width: int) -> int:
    return max(16, round(width / 24 / 16) * 16)


def grow(box: Box, fraction: float, width: int, height: int) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = box
    dx, dy = (x1 - x0) * fraction, (y1 - y0) * fraction
    return (
        max(0, int(np.floor(x0 - dx))),
        max(0, int(np.floor(y0 - dy))),
        min(width, int(np.ceil(x1 + dx))),
        min(height, int(np.ceil(y1 + dy))),
    )


def pixelate(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    b = block_size(w)
    small = cv2.resize(image, (max(1, -(-w // b)), max(1, -(-h // b))), interpolation=cv2.INTER_AREA)
    big = cv2.resize(small, (small.shape[1] * b, small.shape[0] * b), interpolation=cv2.INTER_NEAREST)
    return big[:h, :w]


def blur(image: np.ndarray) -> np.ndarray:
    w = image.shape[1]
    k = max(31, (w // 12) | 1)
    return cv2.GaussianBlur(cv2.resize(image, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA), (0, 0), k / 16)


def scene(image: np.ndarray, keep: Box | None, effect: str) -> np.ndarray:
    h, w = image.shape[:2]
    if effect == "blur":
        out = cv2.resize(blur(image), (w, h), interpolation=cv2.INTER_LINEAR)
    else:
        out = pixelate(image)
    if keep is not None:
        x0, y0, x1, y1 = grow(keep, KEEP_MARGIN, w, h)
        out[y0:y1, x0:x1] = image[y0:y1, x0:x1]
    return out


def overlap(a: Box, b: Box) -> float:
    """Intersection over the smaller box's area."""
    x0, y0, x1, y1 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return inter / smaller if smaller > 0 else 0.0


def persons(image: np.ndarray, keep: Box | None, others: Sequence[Box], colour_bgr: tuple[int, int, int]) -> np.ndarray:
    h, w = image.shape[:2]
    out = image.copy()
    for box in others:
        if keep is not None and overlap(box, keep) >= SAME_PERSON_OVERLAP:
            continue
        x0, y0, x1, y1 = grow(box, 0.1, w, h)
        out[y0:y1, x0:x1] = colour_bgr
    return out
