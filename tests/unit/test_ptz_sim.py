"""The simulated PTZ camera: moving it really changes the image, and packets say where it looked."""

import time

import av
import numpy as np
import pytest

from services.common.optics import Optics
from services.ingest.ptz.sim import PRIVATE_WINDOWS, SIM_OPTICS, SimPtzCamera, SimPtzSource, camera_for, scene_direction
from tests.support.ptz import image_points, private_pixels


def _frames(packets, decoder, count: int) -> list[tuple[np.ndarray, tuple[float, float, float] | None, bool]]:  # type: ignore[no-untyped-def]
    out = []
    for packet in packets:
        for frame in decoder.decode(av.Packet(packet.data)):
            out.append((frame.to_ndarray(format="gray"), packet.ptz, packet.moving))
        if len(out) >= count:
            return out
    return out


def test_the_view_follows_the_position_and_every_packet_carries_it() -> None:
    source = SimPtzSource("simptz://sim-test-view?width=352&height=288&fps=10")
    camera = source.camera
    assert camera is camera_for("simptz://sim-test-view")  # the driver reaches the same device
    packets, decoder = source.packets(), av.CodecContext.create("h264", "r")
    home = _frames(packets, decoder, 3)
    assert home[-1][1] == (0.0, 0.0, 0.0) and not home[-1][2]
    camera.goto(0.8, -0.5, 0.7)
    moving = _frames(packets, decoder, 1)
    assert moving[0][2] is True
    deadline = time.monotonic() + 10
    while camera.snapshot().moving and time.monotonic() < deadline:
        time.sleep(0.05)
    there = _frames(packets, decoder, 2)
    assert there[-1][1] == (0.8, -0.5, 0.7) and not there[-1][2]
    # The image changed (bottom lines hold the text overlay; compare above it).
    difference = np.abs(home[-1][0][:250].astype(int) - there[-1][0][:250].astype(int)).mean()
    assert difference > 20, difference


def test_the_dome_renders_through_optics_of_its_own() -> None:
    """Where the image shows a window is where SIM_OPTICS put it, and SIM_OPTICS are not the defaults."""
    defaults = Optics()
    assert SIM_OPTICS.hfov_wide_deg != defaults.hfov_wide_deg and SIM_OPTICS.pan_direction == -defaults.pan_direction
    assert SIM_OPTICS.zoom_exponent != 1.0 and SIM_OPTICS.tilt_offset_deg != 0.0
    camera = SimPtzCamera("sim-test-optics")
    x0, y0, x1, y1 = PRIVATE_WINDOWS[0]
    centre = scene_direction((x0 + x1) / 2, (y0 + y1) / 2)
    pan, tilt = SIM_OPTICS.position(*centre)
    for at in ((pan + 0.03, tilt - 0.02, 0.0), (pan - 0.004, tilt + 0.003, 0.8)):
        camera._pos = list(at)
        image, _ = camera.render(352, 288, 0.0)
        [(x, y)] = image_points([centre], at, 352 / 288)
        assert private_pixels(image[..., ::-1])[round(y * 288), round(x * 352)], at
    # Positive pan turns this dome left: the window moves right in the image.
    camera._pos = [pan, tilt, 0.0]
    middle, _ = camera.render(352, 288, 0.0)
    camera._pos = [pan + 0.02, tilt, 0.0]
    turned, _ = camera.render(352, 288, 0.0)
    columns = [np.nonzero(private_pixels(img[..., ::-1]).any(axis=0))[0].mean() for img in (middle, turned)]
    assert columns[1] > columns[0] + 10
    # Zoom 1 narrows the view 9 times (54 to 6 degrees): a window 9 times as wide.
    assert SIM_OPTICS.hfov_deg(0.0) / SIM_OPTICS.hfov_deg(1.0) == pytest.approx(9.0, rel=1e-6)


def test_continuous_moves_stop_at_the_end_stops() -> None:
    camera = SimPtzCamera("sim-test-stops")
    camera.continuous(1.0, 0.0, 0.0)
    time.sleep(0.2)
    assert camera.snapshot().moving and camera.snapshot().pan > 0
    camera.stop()
    stopped = camera.snapshot().pan
    time.sleep(0.1)
    assert camera.snapshot().pan == stopped and not camera.snapshot().moving
