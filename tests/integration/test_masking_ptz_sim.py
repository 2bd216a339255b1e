"""PTZ masks against the simulated PTZ camera's ground truth.

The simulator (services/ingest/ptz/sim.py) renders a crop of a flat street scene chosen by its
pan/tilt/zoom and reports the position each image was rendered at, as ingest puts it in every
envelope. A private area is fixed in the scene; while the camera moves through presets and
continuous moves, every masked frame must be grey over that area where the simulator says it is
(and show the scene well away from it); frames whose position is stale are masked entirely.
"""

import io
import itertools
import threading
import time
from fractions import Fraction

import av
import numpy as np

from services.common.fmp4 import Fmp4Writer
from services.common.pb.csu.v1.frame_pb2 import CodecParameters, FramePacket, PtzPosition
from services.ingest.ptz.sim import SCENE_H, SCENE_W, SimPtzSource, view_rect
from services.masking.masks import rgb_hex_to_yuv
from services.masking.pipeline import CameraMasker, EncoderSettings, MaskSet, PtzPolicy
from services.masking.projection import SimulatedModel
from tests.support.media import MASK_GREY, polygon_mask, psnr
from tests.support.servers import unique

W, H, FPS = 352, 288, 10
# The private area, in scene pixels (a block of facade), and the same in pan/tilt space.
AREA = (1250, 330, 1450, 520)
AREA_PTZ = [
    (x / SCENE_W * 2 - 1, 1 - y / SCENE_H * 2)
    for x, y in [(AREA[0], AREA[1]), (AREA[2], AREA[1]), (AREA[2], AREA[3]), (AREA[0], AREA[3])]
]


def _script(camera) -> None:  # type: ignore[no-untyped-def]
    """Presets and continuous moves, as an operator would: about 9 s."""
    camera.goto(0.0, 0.0, 0.0)
    camera.set_preset("entrance")
    time.sleep(1.0)
    camera.goto(0.3, -0.1, 0.4)  # absolute move: travels at the simulator's speed
    time.sleep(2.0)
    camera.continuous(-0.6, 0.0, 0.0)
    time.sleep(1.5)
    camera.continuous(0.0, 0.3, 0.3)
    time.sleep(1.0)
    camera.stop()
    time.sleep(0.5)
    camera.goto_preset(next(iter(camera.presets())))
    time.sleep(2.5)


def _capture(url: str, seconds: float, stale_us: int = 0) -> tuple[list[FramePacket], list[tuple[float, float, float]]]:
    """Envelopes as ingest builds them from the simulator (position read with the image), paced."""
    source = SimPtzSource(url)
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


def _area_px(position: tuple[float, float, float]) -> list[tuple[int, int]]:
    """Ground truth: where the simulator shows the private area at this position."""
    x, y, w, h = view_rect(*position, W / H)
    corners = [(AREA[0], AREA[1]), (AREA[2], AREA[1]), (AREA[2], AREA[3]), (AREA[0], AREA[3])]
    return [(round((sx - x) * W / w), round((sy - y) * H / h)) for sx, sy in corners]


def _masker(name: str) -> CameraMasker:
    return CameraMasker(
        name, MaskSet("v2", [AREA_PTZ], "ptz"), rgb_hex_to_yuv("#808080"),
        EncoderSettings("ultrafast", 20, 1, 1.0), ptz_model=SimulatedModel(), ptz_policy=PtzPolicy(500_000, 1.0),
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
    visible = 0
    for n, (image, original, position) in enumerate(zip(decoded, originals, positions, strict=True)):
        area = _area_px(position)
        inside = polygon_mask(area, (W, H), grow_px=-4)
        if inside.any():
            visible += 1
            worst = int(np.abs(image[inside].astype(int) - MASK_GREY).max())
            assert worst <= 6, f"frame {n} at {position}: the private area shows through ({worst})"
        grey = np.abs(image.astype(int) - MASK_GREY).max(axis=2) <= 3
        if not packets[n].moving:
            # Still: away from the area (beyond its margin and macroblocks) the scene is intact.
            away = ~polygon_mask(area, (W, H), grow_px=40)
            assert psnr(image, original, away) >= 28, f"frame {n}: the mask spread away from the private area"
        else:
            # Moving: the mask covers where the area may be during the frame's uncertainty window
            # (two frame intervals of motion either way), never somewhere else in the image: where
            # the simulator showed it in the neighbouring frames.
            allowed = np.zeros((H, W), bool)
            for k in range(max(0, n - 3), min(len(positions), n + 4)):
                allowed |= polygon_mask(_area_px(positions[k]), (W, H), grow_px=48)
            elsewhere = grey & ~allowed
            assert elsewhere.mean() < 0.01, f"frame {n}: masked away from the private area while moving"
            assert grey.mean() < 0.5, f"frame {n}: half the image masked while moving slowly"
    assert visible >= len(decoded) // 2, "the private area was hardly ever in view: the test proves nothing"


def test_stale_positions_mask_the_whole_frame() -> None:
    packets, _ = _capture(f"simptz://{unique('dome')}?width={W}&height={H}&fps={FPS}", seconds=3.0, stale_us=2_000_000)
    masked = _mask(_masker("dome-b"), packets)
    assert masked and all(p.fully_masked for p in masked)
    for image in _decode(masked):
        assert int(np.abs(image.astype(int) - MASK_GREY).max()) <= 6
