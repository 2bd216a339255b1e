"""Checking a camera's own privacy masks on its decoded image: every approved polygon covered by a
uniform fill of the colour the platform pushed.

The camera's encoder smears a mask's edges (deblocking, ringing: a few pixels) and its fill is
not bit-exact after compression, so the check tolerates:
- EDGE_PX pixels inside each polygon's border (eroded away before checking). A camera that draws
  its mask a little short of the polygon's edge is thereby accepted by at most EDGE_PX pixels:
  at 1080p, 3 px is 0.15 % of the width, less than the margin burned-in masks add outside;
- TOLERANCE levels of difference from the pushed colour (compression noise in a flat area is a
  level or two; anything of the scene differs by tens);
- OUTLIERS of the checked samples beyond that (isolated compression artefacts).

A uniform area of the scene that happens to be the mask colour would pass; the colour is the
platform's (CSU_MASK_COLOUR, mid grey by default), pushed with the masks, so what passes is
indistinguishable from the mask anyway. Anything else (a dropped mask, a moved one, a blur or
pixelation instead of a fill) fails.
Design: docs/design/masking.md
"""

import cv2
import numpy as np

from services.masking.masks import Yuv

EDGE_PX = 3
TOLERANCE = 12
OUTLIERS = 0.01
# Every other sample of each plane is checked: a hidden area would have to be one pixel wide.
STEP = 2


def interior(pixels: np.ndarray, edge_px: int = EDGE_PX) -> np.ndarray:
    """The polygons' pixels without a band of edge_px along their border."""
    if edge_px <= 0:
        return pixels.astype(bool)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * edge_px + 1, 2 * edge_px + 1))
    return cv2.erode(pixels.astype(np.uint8), kernel).astype(bool)


def uncovered(planes: tuple[np.ndarray, np.ndarray, np.ndarray], region: np.ndarray, colour: Yuv) -> float:
    """Fraction of the region's samples that are not the mask colour (0.0: fully covered)."""
    y, u, v = planes
    sampled = region[::STEP, ::STEP]
    total = int(sampled.sum())
    if total == 0:
        return 0.0
    luma = y[::STEP, ::STEP][sampled].astype(np.int16)
    bad = np.abs(luma - colour.y) > TOLERANCE
    chroma_region = region[:: 2 * STEP, :: 2 * STEP]
    if chroma_region.any():
        rows, cols = chroma_region.shape
        cu = u[::STEP, ::STEP][:rows, :cols][chroma_region].astype(np.int16)
        cv = v[::STEP, ::STEP][:rows, :cols][chroma_region].astype(np.int16)
        chroma_bad = int((np.abs(cu - colour.u) > TOLERANCE).sum() + (np.abs(cv - colour.v) > TOLERANCE).sum())
    else:
        chroma_bad = 0
    return (int(bad.sum()) + chroma_bad) / total


def covered(planes: tuple[np.ndarray, np.ndarray, np.ndarray], region: np.ndarray, colour: Yuv) -> bool:
    return uncovered(planes, region, colour) <= OUTLIERS
