"""PTZ masks against the simulated PTZ camera's ground truth.

The simulator (services/ingest/ptz/sim.py) renders what its dome (optics of its own) sees of a
street panorama at its pan/tilt/zoom, and reports the position each image was rendered at, as
ingest puts it in every envelope. Its private windows are painted in a colour nothing else has, so
the raw frame itself says where they are. With masks drawn under a calibration matching the dome,
while the camera moves through presets and continuous moves, every masked frame must be grey where
the raw frame shows a window (and show the scene well away from them); frames whose position is
stale are masked entirely.
"""

import io
import itertools
import math
import threading
import time
from fractions import Fraction

import av
import cv2
import numpy as np

from services.common.fmp4 import Fmp4Writer
from services.common.optics import Optics
from services.common.pb.csu.v1.frame_pb2 import CodecParameters, FramePacket, PtzPosition
from services.ingest.ptz.sim import SIM_OPTICS, SimPtzSource
from services.masking.masks import rgb_hex_to_yuv
from services.masking.pipeline import CameraMasker, EncoderSettings, MaskSet, PtzPolicy
from services.masking.projection import Position, SphericalModel
from tests.support.media import MASK_GREY, psnr
from tests.support.ptz import private_pixels, window_masks
from tests.support.servers import unique

W, H, FPS = 352, 288, 10
FACADE = (-0.06, 0.08, 0.0)  # the dome looks at the facade with the private windows


def _script(camera) -> None:  # type: ignore[no-untyped-def]
    """Presets and continuous moves, as an operator would: about 9 s."""
    camera.set_preset("facade")  # where _capture put it: the facade with the private windows
    time.sleep(1.0)
    camera.goto(-0.06, 0.08, 0.4)  # absolute move (a zoom): travels at the simulator's speed
    time.sleep(2.0)
    camera.continuous(-0.1, 0.0, 0.0)
    time.sleep(1.5)
    camera.continuous(0.0, 0.1, 0.3)
    time.sleep(1.0)
    camera.stop()
    time.sleep(0.5)
    camera.goto_preset(next(iter(camera.presets())))
    time.sleep(2.5)


def _capture(url: str, seconds: float, stale_us: int = 0) -> tuple[list[FramePacket], list[tuple[float, float, float]]]:
    """Envelopes as ingest builds them from the simulator (position read with the image), paced."""
    source = SimPtzSource(url)
    source.camera.goto(*FACADE)
    while source.camera.snapshot().moving:
        time.sleep(0.05)
    mover = threading.Thread(target=_script, args=(source.camera,), daemon=True)
    mover.start()
    packets, positions = [], []
    started = time.monotonic()
    frames = source.packets()
    for n in itertools.count():
        # The simulator reads its position first thing when asked for the next image: that moment is
        # the position's read time, as a camera's driver would report it. Taking the time the packet
        # comes out instead would pair a position with a time a stall later, and the speed estimated
        # from such pairs is wrong (it failed closed: frames fully masked as "too fast").
        read_us = time.time_ns() // 1000
        packet = next(frames)
        if time.monotonic() - started > seconds:
            break
        capture_us = time.time_ns() // 1000
        pan, tilt, zoom = packet.ptz  # type: ignore[misc]
        envelope = FramePacket(
            camera_id="dome", stream="main", sequence=n, pts=packet.pts, dts=packet.dts, time_base_num=1,
            time_base_den=FPS, keyframe=packet.keyframe, capture_time_us=capture_us, source_session="s",
            frame_rate=FPS, data=packet.data, moving=packet.moving,
            ptz=PtzPosition(pan=pan, tilt=tilt, zoom=zoom, read_time_us=read_us - stale_us),
        )  # fmt: skip
        if packet.keyframe:
            envelope.codec.CopyFrom(CodecParameters(name="h264", width=W, height=H))
        packets.append(envelope)
        positions.append((pan, tilt, zoom))
        time.sleep(max(0.0, started + (n + 1) / FPS - time.monotonic()))
    mover.join(timeout=15)
    return packets, positions


def _decode(packets: list[FramePacket], fmt: str = "rgb24") -> list[np.ndarray]:
    sink = io.BytesIO()
    writer = Fmp4Writer(sink, packets[0])
    for p in packets[1:]:
        writer.write(p)
    writer.close()
    with av.open(io.BytesIO(sink.getvalue())) as c:
        return [f.to_ndarray(format=fmt) for f in c.decode(c.streams.video[0])]


def _raw(packets: list[FramePacket]) -> list[np.ndarray]:
    decoder = av.CodecContext.create("h264", "r")
    frames = []
    for p in packets:
        packet = av.Packet(p.data)
        packet.pts, packet.time_base = p.pts, Fraction(1, FPS)
        frames += [f.to_ndarray(format="rgb24") for f in decoder.decode(packet)]
    return frames + [f.to_ndarray(format="rgb24") for f in decoder.decode(None)]


def _grown(area: np.ndarray, px: int) -> np.ndarray:
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * px + 1, 2 * px + 1))
    return cv2.dilate(area.astype(np.uint8), kernel).astype(bool)


def _near_windows(position: tuple[float, float, float], px: int) -> np.ndarray:
    """The image area within px of where the dome shows its windows, counting windows just outside
    the image (a mask grown by its margin and the motion window may reach into it from there)."""
    pad = px + 8
    canvas = np.zeros((H + 2 * pad, W + 2 * pad), np.uint8)
    model = SphericalModel(SIM_OPTICS)
    for window in window_masks(SIM_OPTICS):
        projected = model.project(window, Position(*position), W / H)
        if len(projected) >= 3:
            points = np.array([(x * W + pad, y * H + pad) for x, y in projected], np.int32)
            cv2.fillPoly(canvas, [points], 1)
    return _grown(canvas, px)[pad : pad + H, pad : pad + W]


def _masker(name: str, optics: Optics | None = SIM_OPTICS) -> CameraMasker:
    """Masking with the windows drawn under a calibration that matches the dome (or none)."""
    return CameraMasker(
        name, MaskSet("v2", window_masks(SIM_OPTICS), "ptz", optics), rgb_hex_to_yuv("#808080"),
        EncoderSettings("ultrafast", 20, 1, 1.0), ptz_model=SphericalModel(), ptz_policy=PtzPolicy(500_000, 1.0),
    )  # fmt: skip


def _mask(masker: CameraMasker, packets: list[FramePacket]) -> list[FramePacket]:
    out: list[FramePacket] = []
    for p in packets:
        out += masker.process(p)
    return out + masker.flush()


def test_ptz_masks_stay_on_the_scene_area_while_the_camera_moves() -> None:
    packets, positions = _capture(f"simptz://{unique('dome')}?width={W}&height={H}&fps={FPS}", seconds=9.0)
    assert any(p.moving for p in packets) and any(not p.moving for p in packets)
    assert len({round(p[2], 2) for p in positions}) > 3, "the camera did not zoom"
    masked = _mask(_masker("dome-a"), packets)
    assert len(masked) == len(packets) and not any(p.fully_masked for p in masked)
    decoded, originals = _decode(masked), _raw(packets)
    truth = [private_pixels(original) for original in originals]  # where the raw frame shows a window
    visible = 0
    for n, (image, original, position) in enumerate(zip(decoded, originals, positions, strict=True)):
        if truth[n].any():
            visible += 1
            worst = int(np.abs(image[truth[n]].astype(int) - MASK_GREY).max())
            assert worst <= 6, f"frame {n} at {position}: a private window shows through ({worst})"
            assert not private_pixels(image).any(), f"frame {n} at {position}: a private window shows through"
        grey = np.abs(image.astype(int) - MASK_GREY).max(axis=2) <= 3
        if not packets[n].moving:
            # Still: away from the windows (beyond their margin and macroblocks) the scene is intact.
            away = ~_grown(truth[n], 40)
            if away.any():
                assert psnr(image, original, away) >= 28, f"frame {n}: the mask spread away from the windows"
        else:
            # Moving: the mask covers where the windows may be during the frame's uncertainty window
            # (the position's age plus two frame intervals of motion either way, at the camera's
            # speed), never somewhere else in the image: where the dome showed them in the frames
            # of that window, or would at that speed.
            window_s = abs(packets[n].capture_time_us - packets[n].ptz.read_time_us) / 1e6 + 2 / FPS
            reach = 1 + math.ceil(window_s * FPS)
            allowed = np.zeros((H, W), bool)
            for k in range(max(1, n - reach), min(len(truth), n + reach + 1)):
                allowed |= _grown(truth[k], 48) | _near_windows(positions[k], 48)
                # The speed as masking estimates it: between the positions' read times (frames paced
                # late, then early to catch up, under load are not 1/FPS apart).
                dt = (packets[k].ptz.read_time_us - packets[k - 1].ptz.read_time_us) / 1e6
                speed = (np.array(positions[k]) - np.array(positions[k - 1])) / max(dt, 1e-3)
                for sign in (-1, 1):
                    allowed |= _near_windows(tuple(np.array(positions[k]) + sign * speed * window_s), 48)
            elsewhere = grey & ~allowed
            assert elsewhere.mean() < 0.01, f"frame {n}: masked away from the private windows while moving"
            assert grey.mean() < 0.5, f"frame {n}: half the image masked while moving slowly"
    assert visible >= len(decoded) // 2, "the private windows were hardly ever in view: the test proves nothing"


def test_masks_approved_without_a_calibration_mask_the_whole_frame() -> None:
    packets, _ = _capture(f"simptz://{unique('dome')}?width={W}&height={H}&fps={FPS}", seconds=2.0)
    masked = _mask(_masker("dome-c", optics=None), packets)
    assert masked and all(p.fully_masked for p in masked)
    assert not any(private_pixels(image).any() for image in _decode(masked))


def test_stale_positions_mask_the_whole_frame() -> None:
    packets, _ = _capture(f"simptz://{unique('dome')}?width={W}&height={H}&fps={FPS}", seconds=3.0, stale_us=2_000_000)
    masked = _mask(_masker("dome-b"), packets)
    assert masked and all(p.fully_masked for p in masked)
    for image in _decode(masked):
        assert int(np.abs(image.astype(int) - MASK_GREY).max()) <= 6
