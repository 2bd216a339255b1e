"""PTZ masks: projection models, and the frame path failing closed when the position cannot be trusted."""

import numpy as np
import pytest

from services.common.pb.csu.v1.frame_pb2 import FramePacket, PtzPosition
from services.ingest.ptz.sim import SCENE_H, SCENE_W, view_rect
from services.masking.masks import rgb_hex_to_yuv
from services.masking.pipeline import CameraMasker, EncoderSettings
from services.masking.planner import (
    PTZ_SPEED_UNKNOWN,
    PTZ_STALE,
    PTZ_TOO_FAST,
    PTZ_UNKNOWN,
    SPACE_MISMATCH,
    FrameInfo,
    MaskPlanner,
    MaskSet,
    PtzPolicy,
)
from services.masking.projection import Position, SimulatedModel, SphericalModel
from tests.support.frames import T0_US, h264_packets

GREY = rgb_hex_to_yuv("#808080")
ENCODER = EncoderSettings(preset="ultrafast", crf=20, threads=1, keyframe_interval_s=1.0)
WINDOW = [(-0.30, 0.40), (-0.20, 0.40), (-0.20, 0.30), (-0.30, 0.30)]  # pan/tilt space


@pytest.mark.parametrize(
    "at", [Position(0, 0, 0), Position(0.3, -0.1, 0.5), Position(-0.8, 0.4, 0.9), Position(0.99, -0.5, 0.1)]
)
def test_spherical_unproject_inverts_project(at: Position) -> None:
    model = SphericalModel(hfov_wide_deg=60, zoom_ratio=20)
    for point in [(0.5, 0.5), (0.1, 0.2), (0.9, 0.8), (0.0, 1.0)]:
        world = model.unproject(point, at, 16 / 9)
        back = model.project([world, world, world], at, 16 / 9)[0]
        assert back == pytest.approx(point, abs=1e-9)


def test_spherical_projection_follows_pan_and_zoom() -> None:
    model = SphericalModel(hfov_wide_deg=60, zoom_ratio=20, pan_range_deg=360)
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


def test_simulated_model_matches_the_simulator_view() -> None:
    model = SimulatedModel()
    at, aspect = Position(0.4, -0.2, 0.3), 704 / 576
    x, y, w, h = view_rect(at.pan, at.tilt, at.zoom, aspect)
    # The view rectangle's corners, in scene coordinates, land on the image corners.
    corners = [(x / SCENE_W * 2 - 1, 1 - y / SCENE_H * 2), ((x + w) / SCENE_W * 2 - 1, 1 - (y + h) / SCENE_H * 2)]
    projected = model.project(corners, at, aspect)
    assert projected[0] == pytest.approx((0.0, 0.0), abs=1e-9)
    assert projected[1] == pytest.approx((1.0, 1.0), abs=1e-9)
    assert model.unproject((0.25, 0.75), at, aspect) == pytest.approx(
        ((x + 0.25 * w) / SCENE_W * 2 - 1, 1 - (y + 0.75 * h) / SCENE_H * 2)
    )


def _info(pan: float = 0.0, age_us: int = 0, moving: bool = False, velocity=None) -> FrameInfo:  # type: ignore[no-untyped-def]
    return FrameInfo(T0_US, 10.0, (pan, 0.0, 0.0, T0_US - age_us), moving, velocity)


def _planner() -> MaskPlanner:
    return MaskPlanner(MaskSet("v2", [WINDOW], "ptz"), SimulatedModel(), PtzPolicy(500_000, 0.8))


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
    assert MaskPlanner(MaskSet("v1", [WINDOW], "image"), SimulatedModel()).decide(64, 64, _info()).reason == (
        SPACE_MISMATCH
    )
    assert MaskPlanner(MaskSet("v1", [WINDOW], "ptz"), None).decide(64, 64, _info()).reason == SPACE_MISMATCH


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

    fresh = CameraMasker("ptz-fresh", MaskSet("v2", [WINDOW], "ptz"), GREY, ENCODER, ptz_model=SimulatedModel())
    out = _run(fresh, _ptz_packets(10, read_lag_us=50_000))
    assert out and not any(p.fully_masked for p in out) and {p.mask_version for p in out} == {"v2"}

    stale = CameraMasker(
        "ptz-stale", MaskSet("v2", [WINDOW], "ptz"), GREY, ENCODER, ptz_model=SimulatedModel(),
        ptz_policy=PtzPolicy(max_age_us=500_000),
    )  # fmt: skip
    out = _run(stale, _ptz_packets(10, read_lag_us=2_000_000))
    assert out and all(p.fully_masked for p in out)
    assert counted("ptz-stale", PTZ_STALE) == len(out)

    blind = CameraMasker("ptz-blind", MaskSet("v2", [WINDOW], "ptz"), GREY, ENCODER, ptz_model=SimulatedModel())
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
