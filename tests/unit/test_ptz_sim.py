"""The simulated PTZ camera: moving it really changes the image, and packets say where it looked."""

import time

import av
import numpy as np

from services.ingest.ptz.sim import SimPtzCamera, SimPtzSource, camera_for, view_rect


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


def test_zoom_narrows_the_view_and_pan_moves_it() -> None:
    wide, narrow = view_rect(0, 0, 0, 704 / 576), view_rect(0, 0, 1, 704 / 576)
    assert narrow[2] * 7.9 < wide[2] < narrow[2] * 8.1
    left, right = view_rect(-1, 0, 0.5, 1.2), view_rect(1, 0, 0.5, 1.2)
    assert left[0] == 0 and right[0] + right[2] >= 2815


def test_continuous_moves_stop_at_the_end_stops() -> None:
    camera = SimPtzCamera("sim-test-stops")
    camera.continuous(1.0, 0.0, 0.0)
    time.sleep(0.2)
    assert camera.snapshot().moving and camera.snapshot().pan > 0
    camera.stop()
    stopped = camera.snapshot().pan
    time.sleep(0.1)
    assert camera.snapshot().pan == stopped and not camera.snapshot().moving
