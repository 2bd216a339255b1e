"""PTZ masks: polygons fixed in the camera's pan/tilt space, projected onto each frame.

A PTZ mask point is a direction the camera can look at, written as the (pan, tilt) that points
the camera's optical axis at it, in ONVIF's generic space (pan and tilt in [-1, 1], tilt up). A
window stays covered at any pan, tilt or zoom because its polygon is re-projected onto every frame
from the position in that frame's envelope.

Two models:
- `SphericalModel` (ONVIF cameras): a camera turning about its centre; pan/tilt are angles
  (generic -1..1 over `pan_range_deg` / `tilt_range_deg`), zoom narrows the field of view
  (`hfov_wide_deg` at zoom 0, `zoom_ratio` times narrower at zoom 1). Projection is gnomonic
  (a pinhole), with polygon edges subdivided so straight edges in pan/tilt space bend as they do
  in the image, and clipped to the half-space in front of the camera.
- `SimulatedModel` (the simulated PTZ camera, services/ingest/ptz/sim.py): its view is a crop of
  a flat scene, so a mask point is a scene point, written in pan/tilt-like coordinates
  (x = -1..1 across the scene, y = 1..-1 down it); projection is the crop's linear map, taken from
  the simulator's own `view_rect` so the two can never disagree.

Both also unproject (image -> pan/tilt), so a mask administrator can draw on a preview image and
the set is stored in pan/tilt space.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from services.ingest.ptz.sim import SCENE_H, SCENE_W, view_rect

Point = tuple[float, float]


@dataclass(frozen=True)
class Position:
    pan: float
    tilt: float
    zoom: float


class PtzModel(Protocol):
    def project(self, polygon: Sequence[Point], at: Position, aspect: float) -> list[Point]:
        """The polygon in normalised image coordinates (may extend beyond 0..1; [] if not in view)."""
        ...

    def unproject(self, point: Point, at: Position, aspect: float) -> Point:
        """The pan/tilt-space point seen at normalised image point `point` from position `at`."""
        ...


# Edge subdivision for the spherical model: enough that a subdivided edge stays within a pixel
# of the true curve at any zoom used in practice; the margin and macroblock growth cover the rest.
_STEPS_PER_EDGE = 24
# Points closer than this to the camera's image plane (in front) are clipped: tan(89.4 degrees).
_NEAR = 0.01


@dataclass(frozen=True)
class SphericalModel:
    hfov_wide_deg: float = 60.0
    zoom_ratio: float = 20.0
    pan_range_deg: float = 360.0
    tilt_range_deg: float = 180.0

    def _angles(self, pan: float, tilt: float) -> tuple[float, float]:
        return math.radians(pan * self.pan_range_deg / 2), math.radians(tilt * self.tilt_range_deg / 2)

    def half_width_tan(self, zoom: float) -> float:
        """tan(hfov / 2) at this zoom (focal length grows linearly with zoom)."""
        return math.tan(math.radians(self.hfov_wide_deg) / 2) / (1 + (self.zoom_ratio - 1) * max(0.0, min(1.0, zoom)))

    def _rotation(self, at: Position) -> np.ndarray:
        """World -> camera rotation: undo the pan (about the vertical), then the tilt."""
        az, el = self._angles(at.pan, at.tilt)
        ca, sa, ce, se = math.cos(az), math.sin(az), math.cos(el), math.sin(el)
        yaw = np.array([[ca, 0, -sa], [0, 1, 0], [sa, 0, ca]])
        pitch = np.array([[1, 0, 0], [0, ce, -se], [0, se, ce]])
        return pitch @ yaw

    def _directions(self, points: np.ndarray) -> np.ndarray:
        az = np.radians(points[:, 0] * self.pan_range_deg / 2)
        el = np.radians(points[:, 1] * self.tilt_range_deg / 2)
        return np.stack([np.cos(el) * np.sin(az), np.sin(el), np.cos(el) * np.cos(az)], axis=1)

    def project(self, polygon: Sequence[Point], at: Position, aspect: float) -> list[Point]:
        pts = np.asarray(polygon, np.float64)
        if len(pts) < 3:
            return []
        # Subdivide edges in pan/tilt space, then rotate into the camera's frame.
        t = np.linspace(0, 1, _STEPS_PER_EDGE, endpoint=False)[:, None]
        dense = np.concatenate([a + t * (b - a) for a, b in zip(pts, np.roll(pts, -1, axis=0), strict=True)])
        cam = self._directions(dense) @ self._rotation(at).T
        clipped = _clip_front(cam)
        if len(clipped) < 3:
            return []
        tx = self.half_width_tan(at.zoom)
        ty = tx / aspect
        x = 0.5 + clipped[:, 0] / clipped[:, 2] / (2 * tx)
        y = 0.5 - clipped[:, 1] / clipped[:, 2] / (2 * ty)
        return list(zip(x.tolist(), y.tolist(), strict=True))

    def unproject(self, point: Point, at: Position, aspect: float) -> Point:
        tx = self.half_width_tan(at.zoom)
        ty = tx / aspect
        ray = np.array([(point[0] - 0.5) * 2 * tx, (0.5 - point[1]) * 2 * ty, 1.0])
        world = self._rotation(at).T @ (ray / np.linalg.norm(ray))
        az = math.atan2(world[0], world[2])
        el = math.asin(max(-1.0, min(1.0, world[1])))
        return math.degrees(az) * 2 / self.pan_range_deg, math.degrees(el) * 2 / self.tilt_range_deg


def _clip_front(points: np.ndarray) -> np.ndarray:
    """Sutherland-Hodgman against the plane z = _NEAR: the part of the polygon in front of the camera."""
    out: list[np.ndarray] = []
    n = len(points)
    for i in range(n):
        cur, nxt = points[i], points[(i + 1) % n]
        cur_in, nxt_in = cur[2] >= _NEAR, nxt[2] >= _NEAR
        if cur_in:
            out.append(cur)
        if cur_in != nxt_in:
            t = (_NEAR - cur[2]) / (nxt[2] - cur[2])
            out.append(cur + t * (nxt - cur))
    return np.array(out) if out else np.zeros((0, 3))


@dataclass(frozen=True)
class SimulatedModel:
    """The simulator's geometry (a crop of a flat scene), in pan/tilt-like scene coordinates."""

    @staticmethod
    def scene_point(point: Point) -> tuple[float, float]:
        return (point[0] + 1) / 2 * SCENE_W, (1 - point[1]) / 2 * SCENE_H

    def project(self, polygon: Sequence[Point], at: Position, aspect: float) -> list[Point]:
        x, y, w, h = view_rect(at.pan, at.tilt, at.zoom, aspect)
        result = []
        for point in polygon:
            sx, sy = self.scene_point(point)
            result.append(((sx - x) / w, (sy - y) / h))
        return result

    def unproject(self, point: Point, at: Position, aspect: float) -> Point:
        x, y, w, h = view_rect(at.pan, at.tilt, at.zoom, aspect)
        sx, sy = x + point[0] * w, y + point[1] * h
        return sx / SCENE_W * 2 - 1, 1 - sy / SCENE_H * 2


def model_for(ptz_driver: str, spherical: SphericalModel) -> PtzModel | None:
    """The projection of a camera's PTZ driver ("" : a fixed camera, None)."""
    if ptz_driver == "simulated":
        return SimulatedModel()
    if ptz_driver:
        return spherical
    return None
