"""Unmasked stills kept in memory for the mask editor's previews; they leave only masked.

The latest keyframe of each camera, and the latest still image at each PTZ position (so a preset
can be previewed as last seen there without moving the camera), at most STILL_MAX_WIDTH wide.
"""

from dataclasses import dataclass

import cv2
import numpy as np

from services.masking.masks import Yuv, fill_planes
from services.masking.planner import Decision, FrameInfo, MaskPlanner

STILL_MAX_WIDTH = 1280
PRESET_STILLS = 16


@dataclass(frozen=True)
class Still:
    """An unmasked decoded image kept for previews: planes at reduced size and how it was taken."""

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray
    info: FrameInfo
    source_size: tuple[int, int]


def position_key(ptz: tuple[float, float, float, int]) -> tuple[float, float, float]:
    return round(ptz[0], 3), round(ptz[1], 3), round(ptz[2], 3)


def make_still(planes: tuple[np.ndarray, np.ndarray, np.ndarray], info: FrameInfo) -> Still:
    y, u, v = planes
    height, width = y.shape
    if width > STILL_MAX_WIDTH:
        w = STILL_MAX_WIDTH
        h = max(2, round(height * w / width / 2) * 2)
        y = cv2.resize(y, (w, h), interpolation=cv2.INTER_AREA)
        u = cv2.resize(u, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        v = cv2.resize(v, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    else:
        y, u, v = y.copy(), u.copy(), v.copy()
    return Still(y, u, v, info, (width, height))


def render_still(still: Still, planner: MaskPlanner, colour: Yuv, max_width: int = 0) -> tuple[np.ndarray, Decision]:
    """The still masked with the planner's set, as a BGR image (for JPEG previews)."""
    y, u, v = still.y.copy(), still.u.copy(), still.v.copy()
    height, width = y.shape
    decision = planner.decide(width, height, still.info)
    fill_planes(y, u, v, decision.raster, colour)
    i420 = np.concatenate([y.ravel(), u.ravel(), v.ravel()]).reshape(height * 3 // 2, width)
    bgr = cv2.cvtColor(i420, cv2.COLOR_YUV2BGR_I420)
    if max_width and width > max_width:
        bgr = cv2.resize(bgr, (max_width, max(1, round(height * max_width / width))), interpolation=cv2.INTER_AREA)
    return bgr, decision
