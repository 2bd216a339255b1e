"""A PTZ camera's calibration: its optics (services/common/optics.py) fitted from reference points.

Why: a PTZ mask is re-projected onto every frame from the camera's position, and where a window
lands depends on the dome's field of view at that zoom, its zoom curve, how its tilt is mounted and
which way it turns. One deployment-wide model (CSU_PTZ_*) is right for no dome in particular: on a
dome with a 54-degree lens, a non-linear zoom and a pan turning left, masks drawn and projected with
the defaults miss their windows as soon as the dome moves. So every PTZ camera is calibrated, and a
mask set keeps the calibration it was drawn under (frames of a PTZ set approved without one are
masked whole: planner.PTZ_UNCALIBRATED).

The operator's step (the mask editor): pick a few landmarks that do not move (a window corner, a
sign, a lamp post), and click each one in the image at two positions or more, at two zooms or more.
A click is (landmark, pan, tilt, zoom of that image, x, y in normalised image coordinates). The fit
finds the optics and each landmark's direction that best explain every click (least squares over
the pixel distances, Levenberg-Marquardt), and gives each click its residual: how far from the
click the fitted optics put its landmark.

What the points must contain (each refused with a message saying what to add):
- at least MIN_LANDMARKS landmarks, each clicked at least twice (a landmark seen once only fixes
  its own direction);
- at least two zoom levels MIN_ZOOM_SPREAD apart: the fields of view at wide and tele come from how
  far the points move apart with zoom; with three levels or more the zoom curve's exponent is fitted,
  with two the focal length is taken linear in zoom;
- positions that differ in pan and in tilt: a fit whose mirror image in pan (or tilt) explains the
  points nearly as well cannot tell which way the dome turns, and is refused;
- a residual within MAX_RMS_FRACTION of the image width (1 %: 7 px at 704): beyond it a click is
  wrong (or the camera is no pinhole dome), and saving would misplace masks.
What is fitted: the fields of view at wide and tele, the zoom exponent (3 zoom levels or more), the
tilt offset and both directions. Not the pan offset (a bearing): it cancels out of every projection,
since masks live in the dome's own pan space. The pan and tilt ranges are ONVIF's generic space's
(CSU_PTZ_PAN_RANGE_DEG, CSU_PTZ_TILT_RANGE_DEG). Beyond the zooms clicked the curve extrapolates:
the editor asks for points near tele, where masks are smallest on screen and errors largest.
Design: docs/design/masking.md
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from services.common.optics import Optics, angles

MIN_LANDMARKS = 3
MAX_LANDMARKS = 30
MAX_POINTS = 200
MIN_ZOOM_SPREAD = 0.2
# Zoom levels closer than this are one level (a click at 0.50 and one at 0.52).
ZOOM_LEVEL_STEP = 0.05
MAX_RMS_FRACTION = 0.01
# A mirrored fit within this of the best (times its RMS, plus a pixel) means the points cannot tell
# the directions apart.
MIRROR_MARGIN = 2.0
# Points this close to the camera's image plane are behind it for the fit.
_NEAR = 0.05
_ITERATIONS = 150
# Focal lengths (half image widths) of fields of view from 170 down to 0.01 degrees, and exponents.
_LOG_FOCAL = (math.log(1 / math.tan(math.radians(85))), math.log(1 / math.tan(math.radians(0.005))))
_LOG_EXPONENT = (math.log(0.2), math.log(5.0))


class CalibrationError(ValueError):
    """The points cannot calibrate the camera; the message says what to add or fix."""


@dataclass(frozen=True)
class ReferencePoint:
    landmark: str
    pan: float
    tilt: float
    zoom: float
    x: float
    y: float


@dataclass(frozen=True)
class Fit:
    optics: Optics
    residuals_px: tuple[float, ...]
    rms_px: float
    max_px: float
    fitted: tuple[str, ...]
    # Empty when the fit may be saved; else why not (the residuals show which points).
    problem: str = ""


def check_points(points: Sequence[ReferencePoint]) -> None:
    if len(points) > MAX_POINTS:
        raise CalibrationError(f"at most {MAX_POINTS} reference points ({len(points)} given)")
    for n, p in enumerate(points, start=1):
        if not p.landmark.strip() or len(p.landmark) > 64:
            raise CalibrationError(f"point {n}: name its landmark (1 to 64 characters)")
        values = (p.pan, p.tilt, p.zoom, p.x, p.y)
        if not all(math.isfinite(v) for v in values):
            raise CalibrationError(f"point {n}: coordinates must be finite numbers")
        if not (-1 <= p.pan <= 1 and -1 <= p.tilt <= 1 and 0 <= p.zoom <= 1):
            raise CalibrationError(
                f"point {n}: the position is outside ONVIF's generic space (pan, tilt -1..1, zoom 0..1)"
            )
        if not (0 <= p.x <= 1 and 0 <= p.y <= 1):
            raise CalibrationError(f"point {n}: ({p.x:g}, {p.y:g}) is outside the image (0..1)")
    seen: dict[str, int] = {}
    for p in points:
        seen[p.landmark] = seen.get(p.landmark, 0) + 1
    if len(seen) > MAX_LANDMARKS:
        raise CalibrationError(f"at most {MAX_LANDMARKS} landmarks ({len(seen)} given)")
    once = sorted(name for name, count in seen.items() if count < 2)
    if once:
        raise CalibrationError(f"click each landmark at two positions at least: {', '.join(once)} only once")
    if len(seen) < MIN_LANDMARKS:
        raise CalibrationError(f"at least {MIN_LANDMARKS} landmarks are needed ({len(seen)} given)")
    zooms = [p.zoom for p in points]
    if max(zooms) - min(zooms) < MIN_ZOOM_SPREAD:
        raise CalibrationError(
            f"click the landmarks at two zooms at least {MIN_ZOOM_SPREAD:g} apart (wide and near tele): the fields "
            "of view come from how the image grows with zoom"
        )


def zoom_levels(points: Sequence[ReferencePoint]) -> int:
    return len({round(p.zoom / ZOOM_LEVEL_STEP) for p in points})


def fit(points: Sequence[ReferencePoint], width: int, height: int, base: Optics) -> Fit:
    """The optics that best explain the points on an image of width x height pixels.

    `base` gives the ranges and the starting guess (the deployment's defaults)."""
    check_points(points)
    curve = zoom_levels(points) >= 3
    fits: dict[tuple[int, int], tuple[float, Fit]] = {}
    for pan_direction in (1, -1):
        for tilt_direction in (1, -1):
            start = replace(base, pan_direction=pan_direction, tilt_direction=tilt_direction, tilt_offset_deg=0.0)
            fits[(pan_direction, tilt_direction)] = _fit_one(points, width, height, start, curve)
    (best_key, (cost, best)) = min(fits.items(), key=lambda kv: kv[1][0])
    del cost
    for axis, mirror in (("pan", (-best_key[0], best_key[1])), ("tilt", (best_key[0], -best_key[1]))):
        other = fits[mirror][1]
        if other.rms_px < MIRROR_MARGIN * best.rms_px + 1.0:
            raise CalibrationError(
                f"the points cannot tell which way the camera {'pans' if axis == 'pan' else 'tilts'}: click the "
                f"landmarks at positions further apart in {axis}"
            )
    limit = MAX_RMS_FRACTION * width
    if best.rms_px > limit:
        worst = int(np.argmax(best.residuals_px)) + 1
        best = replace(
            best,
            problem=f"the points do not fit one dome's optics: {best.rms_px:.1f} px on average (at most {limit:.1f}); "
            f"check point {worst} first ({best.max_px:.1f} px off)",
        )
    return best


def _fit_one(
    points: Sequence[ReferencePoint], width: int, height: int, start: Optics, curve: bool
) -> tuple[float, Fit]:
    names = sorted({p.landmark for p in points})
    index = np.array([names.index(p.landmark) for p in points])
    pan = np.array([p.pan for p in points])
    tilt = np.array([p.tilt for p in points])
    zoom = np.array([p.zoom for p in points])
    observed = np.array([[p.x, p.y] for p in points])
    aspect = width / height
    scale = np.array([width, height], np.float64)
    sp, st = start.pan_direction, start.tilt_direction
    pan_half, tilt_half = math.radians(start.pan_range_deg / 2), math.radians(start.tilt_range_deg / 2)
    # Each observation's axis without the tilt offset (fitted) and the pan offset (cancels out).
    axis_az = sp * pan * pan_half
    axis_el0 = st * tilt * tilt_half

    # Landmarks start where their first click points through the starting optics.
    first: dict[str, int] = {}
    for n, p in enumerate(points):
        first.setdefault(p.landmark, n)
    seeds = []
    for name in names:
        p = points[first[name]]
        world = start.rays(np.array([[p.x, p.y]]), p.pan, p.tilt, p.zoom, aspect)
        az, el = angles(world)
        seeds += [float(az[0]) - math.radians(start.pan_offset_deg), float(el[0])]
    f_wide0, f_tele0 = start.focal(0.0), start.focal(1.0)
    head = [math.log(f_wide0), math.log(f_tele0), 0.0] + ([0.0] if curve else [])
    x0 = np.array(head + seeds)
    lead = len(head)

    def unpack(x: np.ndarray) -> tuple[float, float, float, float, np.ndarray]:
        # Held within what a dome can be (a fit wandering off with the wrong directions stays finite).
        f_wide, f_tele = (math.exp(min(max(v, _LOG_FOCAL[0]), _LOG_FOCAL[1])) for v in x[:2])
        tilt_offset = min(max(x[2], -math.pi / 2), math.pi / 2)
        exponent = math.exp(min(max(x[3], _LOG_EXPONENT[0]), _LOG_EXPONENT[1])) if curve else 1.0
        return f_wide, f_tele, tilt_offset, exponent, x[lead:].reshape(-1, 2)

    def residuals(x: np.ndarray) -> np.ndarray:
        f_wide, f_tele, tilt_offset, exponent, marks = unpack(x)
        f = f_wide + (f_tele - f_wide) * np.clip(zoom, 0, 1) ** exponent
        rel = marks[index, 0] - axis_az
        el_mark = marks[index, 1]
        el_axis = axis_el0 + tilt_offset
        ce_m = np.cos(el_mark)
        dx, dy, dz = ce_m * np.sin(rel), np.sin(el_mark), ce_m * np.cos(rel)
        ce, se = np.cos(el_axis), np.sin(el_axis)
        cy, cz = ce * dy - se * dz, se * dy + ce * dz
        cz = np.maximum(cz, _NEAR)
        image = np.stack([0.5 + f * dx / cz / 2, 0.5 - f * aspect * cy / cz / 2], axis=1)
        return ((image - observed) * scale).ravel()

    x = _levenberg_marquardt(residuals, x0)
    r = residuals(x).reshape(-1, 2)
    distances = np.hypot(r[:, 0], r[:, 1])
    f_wide, f_tele, tilt_offset, exponent, _ = unpack(x)
    if f_tele < f_wide:  # the zoom got inverted: no dome; keep it from being picked
        return math.inf, Fit(start, tuple(distances.tolist()), math.inf, math.inf, ())
    try:
        optics = replace(
            start,
            hfov_wide_deg=math.degrees(2 * math.atan(1 / f_wide)),
            hfov_tele_deg=math.degrees(2 * math.atan(1 / f_tele)),
            zoom_exponent=exponent,
            tilt_offset_deg=math.degrees(tilt_offset),
        )
    except ValueError:  # out of any dome's range: not a fit
        return math.inf, Fit(start, tuple(distances.tolist()), math.inf, math.inf, ())
    fitted = ("hfov_wide_deg", "hfov_tele_deg") + (("zoom_exponent",) if curve else ()) + (
        "tilt_offset_deg", "pan_direction", "tilt_direction",
    )  # fmt: skip
    rms = float(np.sqrt(np.mean(distances**2)))
    return float(r.ravel() @ r.ravel()), Fit(optics, tuple(distances.tolist()), rms, float(distances.max()), fitted)


def _levenberg_marquardt(fun: Callable[[np.ndarray], np.ndarray], x0: np.ndarray) -> np.ndarray:
    """Least squares by Levenberg-Marquardt with a forward-difference Jacobian (a few dozen
    parameters, a few hundred residuals: milliseconds per iteration)."""
    x, r = x0.copy(), fun(x0)
    cost, damping = float(r @ r), 1e-3
    for _ in range(_ITERATIONS):
        jacobian = np.empty((len(r), len(x)))
        for j in range(len(x)):
            step = 1e-7 * max(1.0, abs(x[j]))
            moved = x.copy()
            moved[j] += step
            jacobian[:, j] = (fun(moved) - r) / step
        normal, gradient = jacobian.T @ jacobian, jacobian.T @ r
        diagonal = np.diag(np.diag(normal) + 1e-12)
        while True:
            if damping > 1e12 or not np.isfinite(normal).all():
                return x  # no step lowers the cost any more: as good as it gets
            try:
                delta = np.linalg.solve(normal + damping * diagonal, -gradient)
            except np.linalg.LinAlgError:
                damping *= 10
                continue
            candidate = x + delta
            r_new = fun(candidate)
            new_cost = float(r_new @ r_new)
            if np.isfinite(new_cost) and new_cost < cost:
                improvement = cost - new_cost
                x, r, cost = candidate, r_new, new_cost
                damping = max(damping / 3, 1e-12)
                break
            damping *= 4
        if improvement < 1e-12 * (1 + cost):
            break
    return x
