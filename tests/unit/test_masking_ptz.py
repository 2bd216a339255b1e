"""PTZ masks: projection through a camera's optics, the simulated dome's optics that differ from the
defaults, and the frame path failing closed when the position cannot be trusted or the set was
approved without a calibration."""

import numpy as np
import pytest

from services.common.optics import Optics
from services.common.pb.csu.v1.frame_pb2 import FramePacket, PtzPosition
from services.common.settings import Settings
from services.ingest.ptz.sim import SIM_OPTICS, SimPtzCamera
from services.masking.masks import rgb_hex_to_yuv
from services.masking.pipeline import CameraMasker, EncoderSettings
from services.masking.planner import (
    PTZ_SPEED_UNKNOWN,
    PTZ_STALE,
    PTZ_TOO_FAST,
    PTZ_UNCALIBRATED,
    PTZ_UNKNOWN,
    SPACE_MISMATCH,
    FrameInfo,
    MaskPlanner,
    MaskSet,
    PtzPolicy,
)
from services.masking.projection import Position, SphericalModel, default_optics
from tests.support.frames import T0_US, h264_packets
from tests.support.ptz import drawn_windows, private_pixels, window_masks

GREY = rgb_hex_to_yuv("#808080")
ENCODER = EncoderSettings(preset="ultrafast", crf=20, threads=1, keyframe_interval_s=1.0)
WINDOW = [(-0.42, 0.04), (-0.38, 0.04), (-0.38, 0.0), (-0.42, 0.0)]  # pan/tilt space: ahead at pan -0.4
DEFAULTS = Optics.from_zoom_ratio(60, 20)


@pytest.mark.parametrize(
    "at", [Position(0, 0, 0), Position(0.3, -0.1, 0.5), Position(-0.8, 0.4, 0.9), Position(0.99, -0.5, 0.1)]
)
def test_spherical_unproject_inverts_project(at: Position) -> None:
    model = SphericalModel(DEFAULTS)
    for point in [(0.5, 0.5), (0.1, 0.2), (0.9, 0.8), (0.0, 1.0)]:
        world = model.unproject(point, at, 16 / 9)
        back = model.project([world, world, world], at, 16 / 9)[0]
        assert back == pytest.approx(point, abs=1e-9)


def test_spherical_projection_follows_pan_and_zoom() -> None:
    model = SphericalModel(DEFAULTS)
    square = [(0.01, 0.01), (0.02, 0.01), (0.02, -0.01), (0.01, -0.01)]  # 1.8 to 3.6 degrees right of north
    centre = np.mean(model.project(square, Position(0, 0, 0), 4 / 3), axis=0)
    assert 0.5 < centre[0] < 0.6 and centre[1] == pytest.approx(0.5, abs=0.01)
    # Panning right by the same angle brings it to the middle; zooming in makes it bigger.
    middle = np.mean(model.project(square, Position(0.015, 0, 0), 4 / 3), axis=0)
    assert middle[0] == pytest.approx(0.5, abs=0.01)
    small = model.project(square, Position(0.015, 0, 0), 4 / 3)
    big = model.project(square, Position(0.015, 0, 1), 4 / 3)
    width = lambda poly: max(p[0] for p in poly) - min(p[0] for p in poly)  # noqa: E731
    assert width(big) / width(small) == pytest.approx(20, rel=0.05)


def test_spherical_polygon_behind_the_camera_is_not_drawn() -> None:
    model = SphericalModel()
    behind = [(0.95, 0.1), (0.99, 0.1), (0.99, -0.1), (0.95, -0.1)]  # ~175 degrees away
    assert model.project(behind, Position(0, 0, 0), 16 / 9) == []


def test_defaults_are_the_settings_and_any_optics_inverts() -> None:
    assert default_optics(Settings()) == DEFAULTS  # type: ignore[call-arg]
    assert DEFAULTS.hfov_tele_deg == pytest.approx(Optics().hfov_tele_deg, abs=1e-3)
    model = SphericalModel(SIM_OPTICS)
    for at in (Position(0.1, -0.05, 0.0), Position(-0.3, 0.2, 0.6)):
        for point in [(0.5, 0.5), (0.1, 0.2), (0.9, 0.8)]:
            world = model.unproject(point, at, 352 / 288)
            assert model.project([world, world, world], at, 352 / 288)[0] == pytest.approx(point, abs=1e-9)


def test_the_bearing_cancels_out_of_every_projection() -> None:
    """The pan offset is never fitted: masks live in the dome's own pan space."""
    from dataclasses import replace

    turned = SphericalModel(replace(SIM_OPTICS, pan_offset_deg=-73.0))
    for at in (Position(0.2, 0.1, 0.3), Position(-0.6, -0.2, 0.9)):
        np.testing.assert_allclose(
            turned.project(WINDOW, at, 4 / 3), SphericalModel(SIM_OPTICS).project(WINDOW, at, 4 / 3), atol=1e-9
        )


def _rendered(at: tuple[float, float, float], size: tuple[int, int] = (352, 288)) -> np.ndarray:
    """What the simulated dome shows at this position (RGB)."""
    camera = SimPtzCamera(f"optics-{at}")
    camera._pos = list(at)
    image, _ = camera.render(*size, 0.0)
    return image[..., ::-1]


def _leaked(masks: MaskSet, at: tuple[float, float, float], size: tuple[int, int] = (352, 288)) -> int:
    """Private-window pixels the planner's fill would leave visible on the dome's image at `at`."""
    decision = MaskPlanner(masks, SphericalModel(DEFAULTS), PtzPolicy()).decide(*size, _info_at(at))
    assert decision.raster is not None, decision.reason
    return int((private_pixels(_rendered(at, size)) & ~decision.raster.luma).sum())


def _info_at(at: tuple[float, float, float]) -> FrameInfo:
    return FrameInfo(T0_US, 10.0, (*at, T0_US))


def test_the_simulated_dome_has_optics_of_its_own_that_the_defaults_get_wrong() -> None:
    """Masks drawn on the dome's image, converted and projected with the deployment's default optics,
    cover the windows where they were drawn and miss them once the dome pans or zooms; with the
    dome's own optics they hold everywhere."""
    aspect = 352 / 288
    home = (-0.09, 0.05, 0.0)  # the facade in view, a little left of centre
    assert private_pixels(_rendered(home)).sum() > 300
    drawn = drawn_windows(home, aspect)
    for optics, name in ((DEFAULTS, "defaults"), (SIM_OPTICS, "the dome's own")):
        model = SphericalModel(optics)
        converted = [[model.unproject(p, Position(*home), aspect) for p in poly] for poly in drawn]
        masks = MaskSet("v1", converted, "ptz", optics)
        assert _leaked(masks, home) == 0, name
        moved = [(-0.05, 0.06, 0.0), (-0.11, 0.03, 0.3), (-0.08, 0.05, 0.6)]
        leaks = [_leaked(masks, at) for at in moved]
        if optics is DEFAULTS:
            # Panned the dome's way, the masks go the other; zoomed, they grow by another curve.
            assert leaks[0] > 50 and leaks[2] > 50, leaks
        else:
            assert leaks == [0, 0, 0]
    # The exact windows through the dome's optics hold at tele too.
    assert _leaked(MaskSet("v1", window_masks(SIM_OPTICS), "ptz", SIM_OPTICS), (-0.075, 0.045, 1.0)) == 0


def test_a_ptz_set_approved_without_a_calibration_masks_the_whole_image() -> None:
    ahead = [(-0.02, 0.02), (0.02, 0.02), (0.02, -0.02), (-0.02, -0.02)]
    uncalibrated = MaskSet("v3", [ahead], "ptz")
    assert uncalibrated.uncalibrated and not MaskSet("v3", [], "ptz").uncalibrated
    decision = MaskPlanner(uncalibrated, SphericalModel(DEFAULTS)).decide(64, 64, _info())
    assert decision.raster is None and decision.reason == PTZ_UNCALIBRATED
    # An empty set has nothing to project: nothing to mask.
    empty = MaskPlanner(MaskSet("v3", [], "ptz"), SphericalModel(DEFAULTS)).decide(64, 64, _info())
    assert empty.raster is not None and empty.raster.empty
    # A mask editor's preview of an uncalibrated draft goes through the defaults, to be seen and fixed.
    preview = MaskPlanner(uncalibrated, SphericalModel(DEFAULTS), allow_uncalibrated=True).decide(704, 576, _info())
    assert preview.raster is not None and not preview.raster.empty


def _info(pan: float = 0.0, age_us: int = 0, moving: bool = False, velocity=None) -> FrameInfo:  # type: ignore[no-untyped-def]
    return FrameInfo(T0_US, 10.0, (pan, 0.0, 0.0, T0_US - age_us), moving, velocity)


def _planner() -> MaskPlanner:
    return MaskPlanner(MaskSet("v2", [WINDOW], "ptz", DEFAULTS), SphericalModel(DEFAULTS), PtzPolicy(500_000, 0.8))


def test_planner_fails_closed_when_the_position_cannot_be_trusted() -> None:
    planner = _planner()
    assert planner.decide(704, 576, FrameInfo(T0_US, 10.0)).reason == PTZ_UNKNOWN
    assert planner.decide(704, 576, _info(age_us=600_000)).reason == PTZ_STALE
    assert planner.decide(704, 576, _info(age_us=-600_000)).reason == PTZ_STALE  # read after the frame
    assert planner.decide(704, 576, _info(moving=True)).reason == PTZ_SPEED_UNKNOWN
    assert planner.decide(704, 576, _info(moving=True, velocity=(1.0, 0, 0))).reason == PTZ_TOO_FAST
    fresh = planner.decide(704, 576, _info(pan=-0.4, age_us=100_000))
    assert fresh.raster is not None and not fresh.raster.empty and fresh.reason == ""
    # Image masks on a PTZ camera (or PTZ masks on a fixed one) cannot be placed: whole image.
    assert MaskPlanner(MaskSet("v1", [WINDOW], "image"), SphericalModel()).decide(64, 64, _info()).reason == (
        SPACE_MISMATCH
    )
    assert MaskPlanner(MaskSet("v1", [WINDOW], "ptz", DEFAULTS), None).decide(64, 64, _info()).reason == SPACE_MISMATCH


def test_moving_camera_masks_cover_the_whole_uncertainty_window() -> None:
    planner = _planner()
    still = planner.decide(704, 576, _info(pan=-0.4))
    moving = planner.decide(704, 576, _info(pan=-0.4, moving=True, velocity=(0.5, 0, 0)))
    assert still.raster is not None and moving.raster is not None
    assert moving.raster.coverage() > still.raster.coverage()
    assert (moving.raster.luma | ~still.raster.luma).all(), "the moving mask must contain the still one"


def _ptz_packets(count: int, read_lag_us: int, with_ptz: bool = True) -> list[FramePacket]:
    packets = h264_packets(count, size=(352, 288))
    for p in packets:
        if with_ptz:
            p.ptz.CopyFrom(PtzPosition(pan=-0.4, tilt=0.0, zoom=0.0, read_time_us=p.capture_time_us - read_lag_us))
    return packets


def _run(masker: CameraMasker, packets: list[FramePacket]) -> list[FramePacket]:
    out: list[FramePacket] = []
    for p in packets:
        out += masker.process(p)
    return out + masker.flush()


def test_stale_or_missing_positions_mask_whole_frames_and_are_counted() -> None:
    from prometheus_client import REGISTRY

    def counted(camera: str, reason: str) -> float:
        labels = {"camera": camera, "reason": reason}
        return REGISTRY.get_sample_value("csu_masking_fully_masked_frames_total", labels) or 0.0

    fresh = CameraMasker(
        "ptz-fresh", MaskSet("v2", [WINDOW], "ptz", DEFAULTS), GREY, ENCODER, ptz_model=SphericalModel()
    )
    out = _run(fresh, _ptz_packets(10, read_lag_us=50_000))
    assert out and not any(p.fully_masked for p in out) and {p.mask_version for p in out} == {"v2"}

    stale = CameraMasker(
        "ptz-stale", MaskSet("v2", [WINDOW], "ptz", DEFAULTS), GREY, ENCODER, ptz_model=SphericalModel(),
        ptz_policy=PtzPolicy(max_age_us=500_000),
    )  # fmt: skip
    out = _run(stale, _ptz_packets(10, read_lag_us=2_000_000))
    assert out and all(p.fully_masked for p in out)
    assert counted("ptz-stale", PTZ_STALE) == len(out)

    blind = CameraMasker(
        "ptz-blind", MaskSet("v2", [WINDOW], "ptz", DEFAULTS), GREY, ENCODER, ptz_model=SphericalModel()
    )
    out = _run(blind, _ptz_packets(10, 0, with_ptz=False))
    assert out and all(p.fully_masked for p in out)
    assert counted("ptz-blind", PTZ_UNKNOWN) == len(out)


def test_a_new_mask_set_starts_on_a_keyframe() -> None:
    masker = CameraMasker("cam-switch", MaskSet("v1", [[(0.1, 0.1), (0.3, 0.1), (0.3, 0.3)]]), GREY, ENCODER)
    packets = h264_packets(30, gop=30)
    out = [m for p in packets[:14] for m in masker.process(p)]
    masker.set_masks(MaskSet("v2", [[(0.5, 0.5), (0.9, 0.5), (0.9, 0.9)]]))
    out += _run(masker, packets[14:])
    versions = [p.mask_version for p in out]
    first_v2 = versions.index("v2")
    assert set(versions[:first_v2]) == {"v1"} and set(versions[first_v2:]) == {"v2"}
    assert out[first_v2].keyframe, "the first frame of a new mask set must be a keyframe"
    assert first_v2 == 14, "the new set must apply from the very next frame"


def test_masking_knows_no_camera_simulator() -> None:
    """Masking's only idea of a dome's optics is a camera's calibration: it imports nothing of
    ingest (whose simulated dome would otherwise agree with it by construction)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "services" / "masking"
    imported = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            imported += [f"{path.name}: {n}" for n in names if n.startswith("services.ingest")]
    assert imported == []
