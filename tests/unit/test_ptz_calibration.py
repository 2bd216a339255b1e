"""A PTZ camera's calibration: the simulated dome's optics recovered from the reference points a mask
administrator clicks, masks drawn under the fit holding on the dome's real images while it pans and
zooms, and every set of points that cannot calibrate refused with what to add."""

import pytest

from services.common.optics import Optics
from services.ingest.ptz.sim import SIM_OPTICS, SimPtzCamera
from services.masking.calibration import CalibrationError, ReferencePoint, fit
from services.masking.planner import FrameInfo, MaskPlanner, MaskSet, PtzPolicy
from services.masking.projection import Position, SphericalModel
from tests.support.ptz import clicks, drawn_windows, private_pixels

W, H = 352, 288
ASPECT = W / H
DEFAULTS = Optics()


def _points(rows: list[dict]) -> list[ReferencePoint]:
    return [ReferencePoint(r["landmark"], r["pan"], r["tilt"], r["zoom"], r["x"], r["y"]) for r in rows]


def test_the_dome_is_recovered_from_an_administrators_clicks() -> None:
    points = _points(clicks(ASPECT))
    assert len({p.landmark for p in points}) >= 3 and len({p.zoom for p in points}) >= 3
    result = fit(points, W, H, DEFAULTS)
    assert result.problem == "" and result.rms_px < 1.0 and result.max_px < 2.0
    o = result.optics
    assert (o.pan_direction, o.tilt_direction) == (SIM_OPTICS.pan_direction, SIM_OPTICS.tilt_direction)
    assert o.hfov_wide_deg == pytest.approx(SIM_OPTICS.hfov_wide_deg, abs=1.0)
    assert o.hfov_tele_deg == pytest.approx(SIM_OPTICS.hfov_tele_deg, abs=0.3)
    assert o.zoom_exponent == pytest.approx(SIM_OPTICS.zoom_exponent, abs=0.2)
    assert o.tilt_offset_deg == pytest.approx(SIM_OPTICS.tilt_offset_deg, abs=2.5)
    assert set(result.fitted) == {
        "hfov_wide_deg", "hfov_tele_deg", "zoom_exponent", "tilt_offset_deg", "pan_direction", "tilt_direction",
    }  # fmt: skip
    # Two zoom levels only: the curve is taken linear, and the fit says so.
    two = [p for p in points if p.zoom != 0.5]
    assert "zoom_exponent" not in fit(two, W, H, DEFAULTS).fitted


def _leaked(masks: MaskSet, at: tuple[float, float, float]) -> int:
    camera = SimPtzCamera(f"calibration-{at}")
    camera._pos = list(at)
    image, _ = camera.render(W, H, 0.0)
    decision = MaskPlanner(masks, SphericalModel(), PtzPolicy()).decide(W, H, FrameInfo(0, 10.0, (*at, 0)))
    assert decision.raster is not None, decision.reason
    return int((private_pixels(image[..., ::-1]) & ~decision.raster.luma).sum())


def test_masks_drawn_under_the_fit_hold_while_the_dome_pans_and_zooms() -> None:
    optics = fit(_points(clicks(ASPECT)), W, H, DEFAULTS).optics
    home = (-0.06, 0.08, 0.0)
    model = SphericalModel(optics)
    drawn = [[model.unproject(p, Position(*home), ASPECT) for p in poly] for poly in drawn_windows(home, ASPECT)]
    masks = MaskSet("v2", drawn, "ptz", optics)
    for at in [
        home,
        (-0.03, 0.06, 0.0),
        (-0.09, 0.1, 0.2),
        (-0.05, 0.07, 0.5),
        (-0.07, 0.09, 0.75),
        (-0.075, 0.045, 1),
    ]:
        assert _leaked(masks, at) == 0, at


def test_points_that_cannot_calibrate_are_refused_with_what_to_add() -> None:
    rows = clicks(ASPECT)
    points = _points(rows)
    few = [p for p in points if p.landmark in {points[0].landmark, points[-1].landmark}]
    with pytest.raises(CalibrationError, match="at least 3 landmarks"):
        fit(few, W, H, DEFAULTS)
    with pytest.raises(CalibrationError, match="only once"):
        fit([*points, ReferencePoint("a lamp", 0.0, 0.0, 0.0, 0.5, 0.5)], W, H, DEFAULTS)
    with pytest.raises(CalibrationError, match="two zooms"):
        fit([p for p in points if p.zoom == 0.0], W, H, DEFAULTS)
    # Every click at one tilt: which way the dome tilts cannot be told.
    flat = _points([r | {"tilt": 0.05} for r in rows])
    with pytest.raises(CalibrationError, match="which way the camera"):
        fit(flat, W, H, DEFAULTS)
    for bad, message in (
        (ReferencePoint("x", 0.0, 0.0, 1.5, 0.5, 0.5), "outside ONVIF's generic space"),
        (ReferencePoint("x", 0.0, 0.0, 0.5, 1.2, 0.5), "outside the image"),
        (ReferencePoint("", 0.0, 0.0, 0.5, 0.2, 0.5), "name its landmark"),
        (ReferencePoint("x", float("nan"), 0.0, 0.5, 0.2, 0.5), "finite"),
    ):
        with pytest.raises(CalibrationError, match=message):
            fit([*points, bad, bad], W, H, DEFAULTS)
    with pytest.raises(CalibrationError, match="at most 200"):
        fit(points * 20, W, H, DEFAULTS)


def test_a_wrong_click_is_shown_and_the_fit_may_not_be_saved() -> None:
    rows = clicks(ASPECT)
    rows[5] = rows[5] | {"x": min(1.0, rows[5]["x"] + 0.15)}  # clicked on the wrong corner
    result = fit(_points(rows), W, H, DEFAULTS)
    assert result.problem.startswith("the points do not fit one dome's optics")
    assert "check point 6 first" in result.problem
    assert max(range(len(rows)), key=lambda n: result.residuals_px[n]) == 5
