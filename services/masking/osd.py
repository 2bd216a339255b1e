"""Date, time and camera identity burned into every image masking encodes (arrêté du 3 août 2007:
recorded images carry them), so a frame keeps them wherever it goes: recording, live view,
export, a screenshot.

The text is Europe/Paris local time with its zone abbreviation (CET/CEST: a one-hour DST
ambiguity is resolved), then the camera's id and name, white on a black box in one corner of the
image. It is rendered once per second of capture time into a small luma bitmap; each frame then
gets two slice copies (luma box, neutral chroma box), a few microseconds at 1080p. Hershey fonts
are ASCII: accents are stripped, other characters become "?".
Design: docs/design/time.md
"""

import unicodedata
from dataclasses import dataclass

import cv2
import numpy as np

from services.common.timefmt import paris_stamp

POSITIONS = ("top-left", "top-right", "bottom-left", "bottom-right")
FONT = cv2.FONT_HERSHEY_SIMPLEX
# Text height about 1/36 of the image height: 30 px at 1080p, 8 px minimum (352x288 gives 8).
HEIGHT_FRACTION = 1 / 36
MIN_TEXT_PX = 8
MAX_CHARS = 64


def ascii_label(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text)
    out = "".join(c if c.isascii() and c.isprintable() else "?" for c in plain if not unicodedata.combining(c))
    return out[:MAX_CHARS]


@dataclass(frozen=True)
class OsdSettings:
    enabled: bool = True
    position: str = "top-left"


class Osd:
    """One camera's overlay: `draw` on each frame's planes, the bitmap re-rendered once a second."""

    def __init__(self, camera_id: str, name: str, settings: OsdSettings) -> None:
        self.label = ascii_label(f"{camera_id} {name}".strip() if name and name != camera_id else camera_id)
        self.settings = settings
        self._second: int | None = None
        self._size: tuple[int, int] | None = None
        self._bitmap: np.ndarray | None = None

    def text(self, capture_us: int) -> str:
        return f"{paris_stamp(capture_us)}  {self.label}"

    def _render(self, capture_us: int, width: int, height: int) -> np.ndarray:
        text = self.text(capture_us)
        target = max(MIN_TEXT_PX, round(height * HEIGHT_FRACTION))
        (_, h1), _ = cv2.getTextSize(text, FONT, 1.0, 1)
        scale = target / h1
        thickness = max(1, round(scale * 1.5))
        (tw, th), base = cv2.getTextSize(text, FONT, scale, thickness)
        pad = max(2, target // 4)
        box_w, box_h = min(width, tw + 2 * pad), min(height, th + base + 2 * pad)
        # Even sizes so the chroma box covers exactly the luma box.
        box_w, box_h = box_w - box_w % 2, box_h - box_h % 2
        bitmap = np.full((box_h, box_w), 16, np.uint8)
        cv2.putText(bitmap, text, (pad, pad + th), FONT, scale, 235, thickness, cv2.LINE_AA)
        return bitmap

    def draw(self, planes: tuple[np.ndarray, np.ndarray, np.ndarray], capture_us: int) -> None:
        if not self.settings.enabled:
            return
        y, u, v = planes
        height, width = y.shape
        second = capture_us // 1_000_000
        if self._bitmap is None or second != self._second or self._size != (width, height):
            self._bitmap = self._render(capture_us, width, height)
            self._second, self._size = second, (width, height)
        bitmap = self._bitmap
        box_h, box_w = bitmap.shape
        margin = max(2, height // 90) // 2 * 2
        top = margin if self.settings.position.startswith("top") else height - box_h - margin
        left = margin if self.settings.position.endswith("left") else width - box_w - margin
        top, left = max(0, top), max(0, left)
        y[top : top + box_h, left : left + box_w] = bitmap[: height - top, : width - left]
        u[top // 2 : (top + box_h) // 2, left // 2 : (left + box_w) // 2] = 128
        v[top // 2 : (top + box_h) // 2, left // 2 : (left + box_w) // 2] = 128
