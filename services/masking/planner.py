"""What to fill in one frame: the mask set's raster, projected for PTZ cameras, or the whole image.

PTZ sets are projected through the optics of the calibration they were drawn under (MaskSet.optics);
the camera's `ptz_model` says it is a PTZ camera (and is the default a mask editor's preview of an
uncalibrated draft uses).

The decision is pure (frame size + frame info in, raster out) apart from its caches, so the frame
path, the preview and the tests all use the same rules. Fail-closed reasons are the metric labels
of csu_masking_fully_masked_frames_total.
Design: docs/design/masking.md
"""

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from services.common.optics import Optics
from services.masking.masks import DEFAULT_MARGIN_PX, MaskRaster, polygon_pixels, raster_from_pixels, rasterise
from services.masking.projection import Position, PtzModel, SphericalModel

# The mask_version of frames masked entirely because the camera has no mask set.
NO_MASK_SET = "none"

# Fail-closed reasons (metric label values).
NO_APPROVED_SET = "no_approved_set"
SET_UNAVAILABLE = "mask_set_unavailable"
PTZ_UNKNOWN = "ptz_position_unknown"
PTZ_STALE = "ptz_position_stale"
PTZ_TOO_FAST = "ptz_moving_too_fast"
PTZ_SPEED_UNKNOWN = "ptz_moving_speed_unknown"
SPACE_MISMATCH = "mask_space_mismatch"
# A PTZ camera's set approved without a calibration of the camera's optics: projected with another
# dome's optics its windows would be missed, so nothing is projected (services/masking/calibration.py).
PTZ_UNCALIBRATED = "ptz_uncalibrated"


@dataclass(frozen=True)
class MaskSet:
    version: str
    polygons: Sequence[Sequence[tuple[float, float]]]
    # "image": normalised image coordinates; "ptz": the camera's pan/tilt space.
    space: str = "image"
    # PTZ sets: the optics of the calibration the set was drawn under (None: none, fail closed).
    optics: Optics | None = None

    @property
    def uncalibrated(self) -> bool:
        """A PTZ set with something to mask and no calibration to project it with."""
        return self.space == "ptz" and bool(self.polygons) and self.optics is None


@dataclass(frozen=True)
class PtzPolicy:
    """When PTZ masks cannot be trusted to follow the image."""

    max_age_us: int = 1_000_000
    # Normalised units per second, on any axis.
    max_speed: float = 1.0


@dataclass(frozen=True)
class FrameInfo:
    capture_time_us: int
    frame_rate: float
    # (pan, tilt, zoom, read_time_us) from the envelope, None when absent.
    ptz: tuple[float, float, float, int] | None = None
    moving: bool = False
    # Estimated PTZ velocity (per second), None when unknown.
    velocity: tuple[float, float, float] | None = None


@dataclass(frozen=True)
class Decision:
    raster: MaskRaster | None  # None: the whole image
    reason: str = ""  # why the whole image, when it is


@dataclass
class Velocity:
    last: tuple[int, float, float, float] | None = None  # read_us, pan, tilt, zoom
    value: tuple[float, float, float] | None = None

    def update(self, read_us: int, pan: float, tilt: float, zoom: float, moving: bool) -> tuple | None:
        if self.last is not None and read_us > self.last[0]:
            dt = (read_us - self.last[0]) / 1e6
            self.value = ((pan - self.last[1]) / dt, (tilt - self.last[2]) / dt, (zoom - self.last[3]) / dt)
        if self.last is None or read_us > self.last[0]:
            self.last = (read_us, pan, tilt, zoom)
        if not moving:
            return (0.0, 0.0, 0.0)
        return self.value


@dataclass
class MaskPlanner:
    """Decides, for one frame size and frame info, what to fill. Pure apart from its caches."""

    masks: MaskSet | None
    ptz_model: PtzModel | None = None
    policy: PtzPolicy = field(default_factory=PtzPolicy)
    margin_px: int = DEFAULT_MARGIN_PX
    missing_reason: str = NO_APPROVED_SET
    # Mask editors' previews of a draft drawn before any calibration: projected with the camera's
    # default model (ptz_model) so that the administrator can see and calibrate. Never the frame path.
    allow_uncalibrated: bool = False
    _image_raster: tuple[tuple[int, int], MaskRaster] | None = None
    _ptz_cache: "OrderedDict[tuple, MaskRaster]" = field(default_factory=OrderedDict)
    _exact_cache: "OrderedDict[tuple, np.ndarray]" = field(default_factory=OrderedDict)

    @property
    def version(self) -> str:
        return self.masks.version if self.masks is not None else NO_MASK_SET

    def decide(self, width: int, height: int, info: FrameInfo) -> Decision:
        masks = self.masks
        if masks is None:
            return Decision(None, self.missing_reason)
        if not masks.polygons:
            return Decision(MaskRaster(width, height, ()))
        if masks.space == "image":
            if self.ptz_model is not None:
                return Decision(None, SPACE_MISMATCH)
            if self._image_raster is None or self._image_raster[0] != (width, height):
                self._image_raster = ((width, height), rasterise(masks.polygons, width, height, self.margin_px))
            return Decision(self._image_raster[1])
        if self.ptz_model is None:
            return Decision(None, SPACE_MISMATCH)
        if masks.optics is None and not self.allow_uncalibrated:
            return Decision(None, PTZ_UNCALIBRATED)
        return self._ptz(width, height, info)

    def exact(self, width: int, height: int, info: FrameInfo) -> tuple[np.ndarray | None, str]:
        """The approved polygons' own pixels in this frame (no margin, no motion window), to check a
        camera's masks against; (None, reason) when they cannot be placed (unknown position...)."""
        masks = self.masks
        if masks is None:
            return None, self.missing_reason
        if masks.space == "image":
            if self.ptz_model is not None:
                return None, SPACE_MISMATCH
            key: tuple = (width, height)
            polygons = masks.polygons
        else:
            if self.ptz_model is None:
                return None, SPACE_MISMATCH
            if info.ptz is None:
                return None, PTZ_UNKNOWN
            pan, tilt, zoom, read_us = info.ptz
            if abs(info.capture_time_us - read_us) > self.policy.max_age_us:
                return None, PTZ_STALE
            if info.moving and (info.velocity is None or max(abs(c) for c in info.velocity) > self.policy.max_speed):
                return None, PTZ_TOO_FAST if info.velocity is not None else PTZ_SPEED_UNKNOWN
            at = Position(pan, tilt, max(0.0, min(1.0, zoom)))
            key = (width, height, round(pan, 4), round(tilt, 4), round(at.zoom, 4))
            polygons = [self.ptz_model.project(poly, at, width / height) for poly in masks.polygons]
        cached = self._exact_cache.get(key)
        if cached is None:
            cached = polygon_pixels([p for p in polygons if len(p) >= 3], width, height)
            self._exact_cache[key] = cached
            if len(self._exact_cache) > 16:
                self._exact_cache.popitem(last=False)
        return cached, ""

    def _ptz(self, width: int, height: int, info: FrameInfo) -> Decision:
        if info.ptz is None:
            return Decision(None, PTZ_UNKNOWN)
        pan, tilt, zoom, read_us = info.ptz
        age_us = abs(info.capture_time_us - read_us)
        if age_us > self.policy.max_age_us:
            return Decision(None, PTZ_STALE)
        positions = [(pan, tilt, zoom)]
        if info.moving:
            if info.velocity is None:
                return Decision(None, PTZ_SPEED_UNKNOWN)
            if max(abs(c) for c in info.velocity) > self.policy.max_speed:
                return Decision(None, PTZ_TOO_FAST)
            interval = 1.0 / info.frame_rate if info.frame_rate > 0 else 0.1
            window = age_us / 1e6 + 2 * interval
            vp, vt, vz = info.velocity
            positions += [(pan + k * vp * window, tilt + k * vt * window, zoom + k * vz * window) for k in (-1, 1)]
        key = (width, height, *(round(c, 4) for p in positions for c in p))
        cached = self._ptz_cache.get(key)
        if cached is not None:
            self._ptz_cache.move_to_end(key)
            return Decision(cached)
        assert self.masks is not None and self.ptz_model is not None
        model = SphericalModel(self.masks.optics) if self.masks.optics is not None else self.ptz_model
        aspect = width / height
        pixels = np.zeros((height, width), np.uint8)
        for p, t, z in positions:
            at = Position(p, t, max(0.0, min(1.0, z)))
            projected = [model.project(poly, at, aspect) for poly in self.masks.polygons]
            pixels |= polygon_pixels([poly for poly in projected if len(poly) >= 3], width, height)
        raster = raster_from_pixels(pixels, self.margin_px)
        self._ptz_cache[key] = raster
        if len(self._ptz_cache) > 64:
            self._ptz_cache.popitem(last=False)
        return Decision(raster)
