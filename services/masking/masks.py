"""Privacy masks burned into decoded images, working on the YUV 4:2:0 planes the encoder takes.

Why nothing of the original can survive inside a mask, whatever the encoder does:
- The encoder never receives the original pixels of a masked area. Every luma sample of the area
  and every chroma sample that any of them shares (a 4:2:0 chroma sample covers a 2x2 luma block)
  is overwritten with the mask colour before the frame is handed to x264. The output is therefore a
  function of the unmasked pixels only; tests/unit/test_masking_leakage.py proves it by encoding
  two different adversarial contents inside a mask and getting identical bytes out.
- What H.264 can still do at a mask's edge is smear the *outside* image into the grey: deblocking
  changes at most 3 pixels on each side of a block edge, and a transform block straddling the edge
  rings. So the filled area is the polygon grown by a margin (>= 3 px, `mask_margin_px`) and then
  rounded outwards to whole 16x16 macroblocks: no transform block straddles the mask's edge, and
  deblocking cannot reach the polygon itself, which stays flat grey.

Filling whole macroblocks also makes the fill cheap: a mask is a handful of rectangles, each
filled with one slice assignment per plane, instead of a per-pixel boolean index.
Design: docs/design/masking.md
"""

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

# H.264 macroblock size (luma); chroma blocks are half of it in 4:2:0.
BLOCK = 16
DEFAULT_MARGIN_PX = 4
# Polygon vertices are rasterised with 4 bits of sub-pixel precision.
_SHIFT = 4

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
    """The masked macroblocks of one image size, as luma rectangles (y0, y1, x0, x1)."""

    width: int
    height: int
    rects: tuple[tuple[int, int, int, int], ...]

    @property
    def empty(self) -> bool:
        return not self.rects

    @cached_property
    def luma(self) -> np.ndarray:
        """Boolean image of the filled luma samples (for checks; the fill uses the rectangles)."""
        out = np.zeros((self.height, self.width), bool)
        for y0, y1, x0, x1 in self.rects:
            out[y0:y1, x0:x1] = True
        return out

    @cached_property
    def chroma(self) -> np.ndarray:
        out = np.zeros(((self.height + 1) // 2, (self.width + 1) // 2), bool)
        for y0, y1, x0, x1 in self.rects:
            out[y0 // 2 : (y1 + 1) // 2, x0 // 2 : (x1 + 1) // 2] = True
        return out

    def coverage(self) -> float:
        """Fraction of the image that is filled."""
        area = sum((y1 - y0) * (x1 - x0) for y0, y1, x0, x1 in self.rects)
        return area / float(self.width * self.height)


def polygon_pixels(polygons: Sequence[Sequence[Point]], width: int, height: int) -> np.ndarray:
    """The polygons (normalised coordinates, possibly beyond 0..1) filled at full resolution."""
    luma = np.zeros((height, width), np.uint8)
    scale = 1 << _SHIFT
    # Far-off vertices (a PTZ projection close to the horizon) are clamped well outside the image:
    # the visible part of the polygon is unchanged and fillPoly's integers cannot overflow.
    limit = 4.0
    points = [
        np.array(
            [[round(max(-limit, min(limit, x)) * width * scale), round(max(-limit, min(limit, y)) * height * scale)]
             for x, y in polygon],
            np.int32,
        )
        for polygon in polygons
        if len(polygon) >= 3
    ]  # fmt: skip
    if points:
        cv2.fillPoly(luma, points, 1, lineType=cv2.LINE_8, shift=_SHIFT)
    return luma


def rasterise(
    polygons: Sequence[Sequence[Point]], width: int, height: int, margin_px: int = DEFAULT_MARGIN_PX
) -> MaskRaster:
    """The macroblocks to fill for these polygons: each grown by margin_px, rounded out to blocks."""
    luma = polygon_pixels(polygons, width, height)
    return raster_from_pixels(luma, margin_px)


def raster_from_pixels(luma: np.ndarray, margin_px: int = DEFAULT_MARGIN_PX) -> MaskRaster:
    height, width = luma.shape
    if not luma.any():
        return MaskRaster(width, height, ())
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * margin_px + 1, 2 * margin_px + 1))
    grown = cv2.dilate(luma, kernel)
    rows, cols = -(-height // BLOCK), -(-width // BLOCK)
    padded = np.zeros((rows * BLOCK, cols * BLOCK), np.uint8)
    padded[:height, :width] = grown
    blocks = padded.reshape(rows, BLOCK, cols, BLOCK).max(axis=(1, 3)).astype(bool)
    return MaskRaster(width, height, _rects(blocks, width, height))


def _rects(blocks: np.ndarray, width: int, height: int) -> tuple[tuple[int, int, int, int], ...]:
    """Runs of masked blocks in each block row, merged with identical runs of the rows below."""
    runs_by_row: list[list[tuple[int, int]]] = []
    for row in blocks:
        padded = np.concatenate([[False], row, [False]]).astype(np.int8)
        edges = np.flatnonzero(np.diff(padded))
        runs_by_row.append(list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True)))
    rects: list[tuple[int, int, int, int]] = []
    open_runs: dict[tuple[int, int], int] = {}  # run -> first block row
    for r, runs in enumerate([*runs_by_row, []]):
        current = set(runs)
        for run, first in list(open_runs.items()):
            if run not in current:
                del open_runs[run]
                rects.append((first * BLOCK, min(r * BLOCK, height), run[0] * BLOCK, min(run[1] * BLOCK, width)))
        for run in runs:
            open_runs.setdefault(run, r)
    return tuple(sorted(rects))


def full_raster(width: int, height: int) -> MaskRaster:
    return MaskRaster(width, height, ((0, height, 0, width),))


def union(rasters: Sequence[MaskRaster]) -> MaskRaster:
    """Rectangles of several rasters of one size together (overlaps are filled twice; harmless)."""
    first = rasters[0]
    return MaskRaster(first.width, first.height, tuple(sorted({r for raster in rasters for r in raster.rects})))


def fill_planes(y: np.ndarray, u: np.ndarray, v: np.ndarray, raster: MaskRaster | None, colour: Yuv) -> None:
    """Fill the masked area (or, with raster None, the whole image) of the three planes in place."""
    if raster is None:
        y[:] = colour.y
        u[:] = colour.u
        v[:] = colour.v
        return
    for y0, y1, x0, x1 in raster.rects:
        y[y0:y1, x0:x1] = colour.y
        cy0, cy1, cx0, cx1 = y0 // 2, (y1 + 1) // 2, x0 // 2, (x1 + 1) // 2
        u[cy0:cy1, cx0:cx1] = colour.u
        v[cy0:cy1, cx0:cx1] = colour.v


def fill_yuv420(planes: np.ndarray, width: int, height: int, raster: MaskRaster | None, colour: Yuv) -> None:
    """fill_planes on PyAV's packed yuv420p ndarray (height*3/2 rows of `width` bytes; even sizes)."""
    ch, cw = height // 2, width // 2
    chroma = planes[height:].reshape(2, ch, cw)
    fill_planes(planes[:height], chroma[0], chroma[1], raster, colour)
