"""A PTZ camera's optics: where its optical axis points for an ONVIF position, and what each pixel sees.

One model, shared by what renders a PTZ camera's image (the simulated dome, services/ingest/ptz/sim.py)
and what projects privacy masks onto it (services/masking/projection.py), each with its own numbers:
the simulator has the optics of its dome, masking those of each camera's calibration
(services/masking/calibration.py). A deployment-wide default (the CSU_PTZ_* settings) is only a
starting point: real domes differ in field of view, zoom curve, mounting and axis directions, and a
mask projected with another dome's optics misses its window.

ONVIF's generic spaces: pan and tilt in [-1, 1], zoom in [0, 1]. The dome turns about its centre:
pan about the vertical, then tilt.

- Axis: azimuth = pan_direction * pan * pan_range_deg / 2 + pan_offset_deg, and elevation =
  tilt_direction * tilt * tilt_range_deg / 2 + tilt_offset_deg (tilt up positive). The directions
  are a dome's mounting and firmware (ceiling-mounted domes often report tilt upside down); the
  tilt offset is where tilt 0 really points. The pan offset (a bearing) cancels out of every
  projection, since mask points live in the dome's own pan space: it is kept for what a bearing
  is good for (maps), never fitted.
- Zoom: the focal length, in half image widths, is f(z) = f_wide + (f_tele - f_wide) * z**zoom_exponent,
  with f = 1 / tan(hfov / 2) at each end. Exponent 1 is a focal length linear in the zoom command,
  what the CSU_PTZ_ZOOM_RATIO default assumes; domes' zoom motors are rarely linear (1.3 to 2 is
  common), and at the middle of a 20x range an exponent of 1.5 instead of 1 is a field of view 2.3
  times wider than assumed.
- Image: a pinhole centred on the axis (gnomonic projection), square pixels; x to the right and y
  down in normalised coordinates 0..1.
Design: docs/design/masking.md
"""

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

# The ranges each parameter may take: beyond them it is not a PTZ dome (or a typo).
HFOV_RANGE_DEG = (0.01, 170.0)
ZOOM_EXPONENT_RANGE = (0.2, 5.0)
OFFSET_RANGE_DEG = (-180.0, 180.0)


@dataclass(frozen=True)
class Optics:
    hfov_wide_deg: float = 60.0
    # 60 degrees at wide with a 20x zoom (CSU_PTZ_HFOV_WIDE_DEG, CSU_PTZ_ZOOM_RATIO).
    hfov_tele_deg: float = 3.3071
    zoom_exponent: float = 1.0
    pan_offset_deg: float = 0.0
    tilt_offset_deg: float = 0.0
    pan_direction: int = 1
    tilt_direction: int = 1
    pan_range_deg: float = 360.0
    tilt_range_deg: float = 180.0

    def __post_init__(self) -> None:
        problems = []
        if not HFOV_RANGE_DEG[0] <= self.hfov_tele_deg <= self.hfov_wide_deg <= HFOV_RANGE_DEG[1]:
            problems.append(f"fields of view wide {self.hfov_wide_deg:g} and tele {self.hfov_tele_deg:g} degrees")
        if not ZOOM_EXPONENT_RANGE[0] <= self.zoom_exponent <= ZOOM_EXPONENT_RANGE[1]:
            problems.append(f"zoom exponent {self.zoom_exponent:g}")
        if not all(
            OFFSET_RANGE_DEG[0] <= v <= OFFSET_RANGE_DEG[1] for v in (self.pan_offset_deg, self.tilt_offset_deg)
        ):
            problems.append("offsets")
        if self.pan_direction not in (1, -1) or self.tilt_direction not in (1, -1):
            problems.append("directions (1 or -1)")
        if not (0 < self.pan_range_deg <= 720 and 0 < self.tilt_range_deg <= 360):
            problems.append("pan/tilt ranges")
        values = (self.hfov_wide_deg, self.hfov_tele_deg, self.zoom_exponent, self.pan_offset_deg, self.tilt_offset_deg)
        if problems or not all(math.isfinite(v) for v in values):
            raise ValueError(f"impossible optics: {', '.join(problems) or 'non-finite values'}")

    @classmethod
    def from_zoom_ratio(
        cls, hfov_wide_deg: float, zoom_ratio: float, pan_range_deg: float = 360.0, tilt_range_deg: float = 180.0
    ) -> "Optics":
        """The deployment's default (CSU_PTZ_*): a focal length linear in zoom, zoom_ratio times longer at 1."""
        tele = math.degrees(2 * math.atan(math.tan(math.radians(hfov_wide_deg) / 2) / zoom_ratio))
        return cls(hfov_wide_deg, tele, 1.0, 0.0, 0.0, 1, 1, pan_range_deg, tilt_range_deg)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, float]) -> "Optics":
        fields: dict[str, Any] = {
            k: (int(v) if k.endswith("direction") else float(v)) for k, v in values.items() if k in _FIELDS
        }
        return cls(**fields)

    # -- zoom ----------------------------------------------------------------------------------

    def focal(self, zoom: float) -> float:
        """Focal length in half image widths: 1 / tan(hfov / 2) at this zoom."""
        z = max(0.0, min(1.0, zoom))
        wide = 1 / math.tan(math.radians(self.hfov_wide_deg) / 2)
        tele = 1 / math.tan(math.radians(self.hfov_tele_deg) / 2)
        return wide + (tele - wide) * z**self.zoom_exponent

    def hfov_deg(self, zoom: float) -> float:
        return math.degrees(2 * math.atan(1 / self.focal(zoom)))

    # -- axis ----------------------------------------------------------------------------------

    def axis(self, pan: float, tilt: float) -> tuple[float, float]:
        """(azimuth, elevation) in radians of the optical axis at this position."""
        az = self.pan_direction * pan * self.pan_range_deg / 2 + self.pan_offset_deg
        el = self.tilt_direction * tilt * self.tilt_range_deg / 2 + self.tilt_offset_deg
        return math.radians(az), math.radians(el)

    def position(self, azimuth: float, elevation: float) -> tuple[float, float]:
        """The (pan, tilt) that points the axis at this direction (radians): axis()'s inverse."""
        az = (math.degrees(azimuth) - self.pan_offset_deg) % 360.0
        if az > 180.0:
            az -= 360.0
        pan = az * 2 / self.pan_range_deg * self.pan_direction
        tilt = (math.degrees(elevation) - self.tilt_offset_deg) * 2 / self.tilt_range_deg * self.tilt_direction
        return pan, tilt

    def rotation(self, pan: float, tilt: float) -> np.ndarray:
        """World -> camera rotation: undo the pan (about the vertical), then the tilt."""
        az, el = self.axis(pan, tilt)
        ca, sa, ce, se = math.cos(az), math.sin(az), math.cos(el), math.sin(el)
        yaw = np.array([[ca, 0, -sa], [0, 1, 0], [sa, 0, ca]])
        pitch = np.array([[1, 0, 0], [0, ce, -se], [0, se, ce]])
        return pitch @ yaw

    def directions(self, points: np.ndarray) -> np.ndarray:
        """World unit vectors of pan/tilt-space points (N x 2): where the axis points at each."""
        sign_p, sign_t = self.pan_direction, self.tilt_direction
        az = np.radians(sign_p * points[:, 0] * self.pan_range_deg / 2 + self.pan_offset_deg)
        el = np.radians(sign_t * points[:, 1] * self.tilt_range_deg / 2 + self.tilt_offset_deg)
        return unit_vectors(az, el)

    # -- image ---------------------------------------------------------------------------------

    def to_camera(self, world: np.ndarray, pan: float, tilt: float) -> np.ndarray:
        """World unit vectors (N x 3) in the camera's frame at this position (z along the axis)."""
        return world @ self.rotation(pan, tilt).T

    def to_image(self, camera: np.ndarray, zoom: float, aspect: float) -> np.ndarray:
        """Normalised image points (N x 2) of camera-frame vectors in front of the camera (z > 0)."""
        f = self.focal(zoom)
        x = 0.5 + f * camera[:, 0] / camera[:, 2] / 2
        y = 0.5 - f * aspect * camera[:, 1] / camera[:, 2] / 2
        return np.stack([x, y], axis=1)

    def rays(self, image: np.ndarray, pan: float, tilt: float, zoom: float, aspect: float) -> np.ndarray:
        """World unit vectors seen at normalised image points (N x 2) from this position."""
        f = self.focal(zoom)
        cam = np.stack(
            [(image[:, 0] - 0.5) * 2 / f, (0.5 - image[:, 1]) * 2 / (f * aspect), np.ones(len(image))], axis=1
        )
        cam /= np.linalg.norm(cam, axis=1, keepdims=True)
        return cam @ self.rotation(pan, tilt)


_FIELDS = frozenset(Optics.__dataclass_fields__)


def unit_vectors(azimuth: np.ndarray, elevation: np.ndarray) -> np.ndarray:
    """World unit vectors: x east of the reference bearing, y up, z along azimuth 0 at the horizon."""
    ce = np.cos(elevation)
    return np.stack([ce * np.sin(azimuth), np.sin(elevation), ce * np.cos(azimuth)], axis=1)


def angles(world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(azimuth, elevation) in radians of world unit vectors (N x 3)."""
    return np.arctan2(world[:, 0], world[:, 2]), np.arcsin(np.clip(world[:, 1], -1.0, 1.0))
