"""The simulated dome as a test sees it: where its private windows are, and a mask administrator's
eye for its landmarks.

The simulator (services/ingest/ptz/sim.py) paints the windows of homes in a colour found nowhere
else in its scene, so a leak is any such pixel in a frame that left masking. Its true optics
(SIM_OPTICS) stand for what a mask administrator sees on screen: `clicks` are the reference points
they would click, and `window_polygons` where they would draw, at a given position; the platform
never gets SIM_OPTICS any other way.
"""

from collections.abc import Iterable

import numpy as np

from services.common.optics import Optics, unit_vectors
from services.ingest.ptz.sim import PRIVATE_WINDOWS, SIM_OPTICS, scene_direction

Position = tuple[float, float, float]


def private_pixels(rgb: np.ndarray) -> np.ndarray:
    """Pixels of a decoded RGB frame that show a private window (magenta survives H.264's 4:2:0 and
    quantisation well within these bounds; grey masks, facades and sky are far from them)."""
    r, g, b = (rgb[..., i].astype(np.int16) for i in range(3))
    return (r > 170) & (b > 170) & (g < 100)


def _corners(rect: tuple[int, int, int, int]) -> list[tuple[float, float]]:
    x0, y0, x1, y1 = rect
    return [scene_direction(x, y) for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1))]


def window_masks(optics: Optics, grow_deg: float = 0.3) -> list[list[tuple[float, float]]]:
    """The private windows as pan/tilt-space polygons through these optics (grown a little, as a
    careful administrator draws): exact masks when `optics` is the dome's own."""
    grow = np.radians(grow_deg)
    out = []
    for rect in PRIVATE_WINDOWS:
        (az0, el0), _, (az1, el1), _ = _corners(rect)
        box = [(az0 - grow, el0 + grow), (az1 + grow, el0 + grow), (az1 + grow, el1 - grow), (az0 - grow, el1 - grow)]
        out.append([optics.position(az, el) for az, el in box])
    return out


def image_points(directions: Iterable[tuple[float, float]], at: Position, aspect: float) -> list[tuple[float, float]]:
    """Where the dome shows these (azimuth, elevation) directions at this position (normalised)."""
    az, el = (np.array(v) for v in zip(*directions, strict=True))
    camera = SIM_OPTICS.to_camera(unit_vectors(az, el), at[0], at[1])
    assert (camera[:, 2] > 0).all(), "behind the camera"
    return [(float(x), float(y)) for x, y in SIM_OPTICS.to_image(camera, at[2], aspect)]


def drawn_windows(at: Position, aspect: float, grow_deg: float = 0.6) -> list[list[tuple[float, float]]]:
    """The private windows as an administrator draws them on the image seen at `at`."""
    grow = np.radians(grow_deg)
    out = []
    for rect in PRIVATE_WINDOWS:
        (az0, el0), _, (az1, el1), _ = _corners(rect)
        box = [(az0 - grow, el0 + grow), (az1 + grow, el0 + grow), (az1 + grow, el1 - grow), (az0 - grow, el1 - grow)]
        out.append(image_points(box, at, aspect))
    return out


# Landmarks an administrator would pick: the corners of the facade's windows and a lamp at its foot.
LANDMARKS = {
    "window A, top left": scene_direction(PRIVATE_WINDOWS[0][0], PRIVATE_WINDOWS[0][1]),
    "window B, top right": scene_direction(PRIVATE_WINDOWS[1][2], PRIVATE_WINDOWS[1][1]),
    "window C, bottom left": scene_direction(PRIVATE_WINDOWS[2][0], PRIVATE_WINDOWS[2][3]),
    "facade, foot left": scene_direction(1580, 800),
}


def clicks(aspect: float) -> list[dict]:
    """Reference points for the calibration step: each landmark clicked at two wide views apart in
    pan and tilt, at mid zoom and near tele, rounded to a pixel of a 352-pixel-wide preview."""
    out = []
    for name, (az, el) in LANDMARKS.items():
        pan, tilt = SIM_OPTICS.position(az, el)
        for dp, dt, zoom in ((0.02, 0.03, 0.0), (-0.04, -0.05, 0.0), (0.006, 0.004, 0.5), (0.004, -0.003, 0.95)):
            at = (pan + dp, tilt + dt, zoom)
            [(x, y)] = image_points([(az, el)], at, aspect)
            if 0.02 < x < 0.98 and 0.02 < y < 0.98:
                out.append(
                    {"landmark": name, "pan": at[0], "tilt": at[1], "zoom": zoom, "x": round(x * 352) / 352,
                     "y": round(y * 352 / aspect) / (352 / aspect)}
                )  # fmt: skip
    return out
