"""Date, time and camera identity burned into the image where masking encodes."""

import numpy as np

from services.masking.masks import rgb_hex_to_yuv
from services.masking.osd import Osd, OsdSettings, ascii_label
from services.masking.pipeline import CameraMasker, EncoderSettings, MaskSet
from tests.support.frames import T0_US, h264_packets

ENCODER = EncoderSettings(preset="ultrafast", crf=20, threads=1, keyframe_interval_s=1.0)
GREY = rgb_hex_to_yuv("#808080")


def planes(width: int = 640, height: int = 360) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (np.full((height, width), 100, np.uint8), np.full((height // 2, width // 2), 90, np.uint8),
            np.full((height // 2, width // 2), 160, np.uint8))  # fmt: skip


def test_text_is_paris_time_with_its_zone_and_the_camera() -> None:
    osd = Osd("cam-01", "Place d'Armes — nord", OsdSettings())
    # 2025-11-24T16:00:00Z is 17:00 in Paris (CET); in July it is CEST, UTC+2.
    assert osd.text(T0_US) == "2025-11-24 17:00:00 CET  cam-01 Place d'Armes ? nord"
    assert osd.text(1_751_371_200_000_000).startswith("2025-07-01 14:00:00 CEST")
    assert ascii_label("Démo é") == "Demo e"


def test_overlay_sits_in_the_chosen_corner_and_only_there() -> None:
    for position in ("top-left", "bottom-right"):
        y, u, v = planes()
        Osd("cam-01", "Nord", OsdSettings(True, position)).draw((y, u, v), T0_US)
        rows, cols = np.nonzero(y != 100)
        assert len(rows) > 500
        if position == "top-left":
            assert rows.max() < 40 and cols.min() < 10
        else:
            assert rows.min() >= 320 and cols.max() > 630
        assert (u[(y != 100)[::2, ::2]] == 128).all()
    y, u, v = planes()
    Osd("cam-01", "Nord", OsdSettings(False)).draw((y, u, v), T0_US)
    assert (y == 100).all()


def test_bitmap_is_rendered_once_per_second() -> None:
    osd = Osd("cam-01", "Nord", OsdSettings())
    y, u, v = planes()
    osd.draw((y, u, v), T0_US)
    first = osd._bitmap
    osd.draw((y, u, v), T0_US + 400_000)
    assert osd._bitmap is first
    osd.draw((y, u, v), T0_US + 1_000_000)
    assert osd._bitmap is not first


def test_burned_in_frames_carry_the_overlay() -> None:
    plain = CameraMasker("cam-t", MaskSet("v1", []), GREY, ENCODER)
    stamped = CameraMasker("cam-t", MaskSet("v1", []), GREY, ENCODER, osd=Osd("cam-t", "Nord", OsdSettings()))
    packets = h264_packets(3)
    a = [o for p in packets for o in plain.process(p)]
    b = [o for p in packets for o in stamped.process(p)]
    assert len(a) == len(b) == 3 and a[0].data != b[0].data
