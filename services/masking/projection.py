"""PTZ masks: polygons fixed in the camera's pan/tilt space, projected onto each frame.

A PTZ mask point is a direction the camera can look at, written as the (pan, tilt) that points
the camera's optical axis at it, in ONVIF's generic space (pan and tilt in [-1, 1], tilt up). A
window stays covered at any pan, tilt or zoom because its polygon is re-projected onto every frame
from the position in that frame's envelope, through the optics of that camera
(services/common/optics.py): those of the calibration its approved mask set was drawn under
(services/masking/calibration.py). A set approved without a calibration is not projected at all:
its frames are masked whole (planner.PTZ_UNCALIBRATED).

Projection is gnomonic (a pinhole), with polygon edges subdivided so straight edges in pan/tilt
space bend as they do in the image, and clipped to the half-space in front of the camera. The
model also unprojects (image -> pan/tilt), so a mask administrator can draw on a preview image
and the set is stored in pan/tilt space.

Masking knows the optics only through this model and the calibration; it never reads a camera
simulator's (a test would then prove nothing about real domes).
Design: docs/design/masking.md
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from services.common.optics import Optics, angles
from services.common.settings import Settings

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
    """Mask projection through a camera's optics."""

    optics: Optics = field(default_factory=Optics)

    def project(self, polygon: Sequence[Point], at: Position, aspect: float) -> list[Point]:
        pts = np.asarray(polygon, np.float64)
        if len(pts) < 3:
            return []
        # Subdivide edges in pan/tilt space, then rotate into the camera's frame.
        t = np.linspace(0, 1, _STEPS_PER_EDGE, endpoint=False)[:, None]
        dense = np.concatenate([a + t * (b - a) for a, b in zip(pts, np.roll(pts, -1, axis=0), strict=True)])
        cam = self.optics.to_camera(self.optics.directions(dense), at.pan, at.tilt)
        clipped = _clip_front(cam)
        if len(clipped) < 3:
            return []
        image = self.optics.to_image(clipped, at.zoom, aspect)
        return list(zip(image[:, 0].tolist(), image[:, 1].tolist(), strict=True))

    def unproject(self, point: Point, at: Position, aspect: float) -> Point:
        world = self.optics.rays(np.array([point], np.float64), at.pan, at.tilt, at.zoom, aspect)
        az, el = angles(world)
        return self.optics.position(float(az[0]), float(el[0]))


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


def model_for(ptz_driver: str, optics: Optics) -> PtzModel | None:
    """The projection of a camera with this PTZ driver through these optics ("": a fixed camera, None)."""
    return SphericalModel(optics) if ptz_driver else None


def default_optics(settings: Settings) -> Optics:
    """The deployment's default optics (CSU_PTZ_*): only what uncalibrated drafts are previewed and
    catalogue masks converted with; never what an approved set is projected with."""
    return Optics.from_zoom_ratio(
        settings.ptz_hfov_wide_deg, settings.ptz_zoom_ratio, settings.ptz_pan_range_deg, settings.ptz_tilt_range_deg
    )
