"""Privacy masks burned into decoded images, working on the YUV 4:2:0 planes the encoder takes.

Filling Y, U and V directly avoids two colour conversions per frame. To leave no trace of the
original inside a mask after compression, the filled area is grown: each polygon is rasterised
at full resolution, dilated by a margin (so encoder ringing and deblocking at the edge fall on
grey, not on the private area), and a chroma sample is filled whenever any of its four luma pixels
is, so colour never bleeds in from a half-covered 2x2 block.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

# Grow masks by this many pixels at 1080p (scaled with the image height).
DILATE_PX_1080 = 4

Point = tuple[float, float]


@dataclass(frozen=True)
class Yuv:
    y: int
    u: int
    v: int


def rgb_hex_to_yuv(colour: str) -> Yuv:
    """BT.601 limited range, the range of the H.264 streams we encode."""
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    return Yuv(round(y), round(u), round(v))


@dataclass(frozen=True)
class MaskRaster:
    """Boolean masks for one image size: full-resolution luma and half-resolution chroma."""

    luma: np.ndarray
    chroma: np.ndarray

    @property
    def empty(self) -> bool:
        return not self.luma.any()


def rasterise(polygons: Sequence[Sequence[Point]], width: int, height: int) -> MaskRaster:
    luma = np.zeros((height, width), np.uint8)
    for polygon in polygons:
        points = np.array([[round(x * width), round(y * height)] for x, y in polygon], np.int32)
        cv2.fillPoly(luma, [points], 1)
    margin = max(1, round(DILATE_PX_1080 * height / 1080))
    if luma.any():
        kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * margin + 1, 2 * margin + 1))
        luma = cv2.dilate(luma, kernel)
    # A chroma sample covers a 2x2 luma block: masked if any of the four is.
    ch, cw = (height + 1) // 2, (width + 1) // 2
    padded = np.zeros((ch * 2, cw * 2), np.uint8)
    padded[:height, :width] = luma
    chroma = padded.reshape(ch, 2, cw, 2).max(axis=(1, 3))
    return MaskRaster(luma.astype(bool), chroma.astype(bool))


def fill_yuv420(planes: np.ndarray, width: int, height: int, raster: MaskRaster | None, colour: Yuv) -> None:
    """Fill the masked area (or, with raster None, the whole image) in a yuv420p ndarray in place.

    `planes` is PyAV's yuv420p layout: height*3/2 rows of `width` bytes (Y, then U, then V);
    width and height are even, as 4:2:0 H.264 requires.
    """
    ch, cw = height // 2, width // 2
    y = planes[:height]
    chroma = planes[height:].reshape(2, ch, cw)
    if raster is None:
        y[:] = colour.y
        chroma[0][:] = colour.u
        chroma[1][:] = colour.v
        return
    y[raster.luma] = colour.y
    chroma[0][raster.chroma[:ch, :cw]] = colour.u
    chroma[1][raster.chroma[:ch, :cw]] = colour.v
