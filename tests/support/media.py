"""Test media: the shared CCTV footage, transcoded like a camera would send it, and image checks."""

import os
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
VTEST_SHA256 = "45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf"
# The windows of the building at the top of vtest.avi (768x576): the area the law requires masked.
VTEST_SIZE = (768, 576)
VTEST_WINDOWS_PX = [(325, 30), (575, 30), (575, 110), (325, 110)]
VTEST_WINDOWS = [(x / 768, y / 576) for x, y in VTEST_WINDOWS_PX]
MASK_GREY = 128
# Rows at the top of a 576-line image where masking burns date, time and camera (osd.py, top-left
# by default: 30 rows from row 6); image comparisons with the source leave them out.
OSD_ROWS = 40


def testdata_dir() -> Path | None:
    """CSU_TESTDATA_DIR, ../shared/testdata next to the project, or .testdata (what `make testdata`
    takes from Debian's opencv-doc package); None when this clone has none."""
    candidates = [
        os.environ.get("CSU_TESTDATA_DIR"),
        ROOT.parent / "shared" / "testdata",
        "/work/shared/testdata",
        ROOT / ".testdata",
    ]
    for candidate in candidates:
        if candidate and (Path(candidate) / "vtest.avi").is_file():
            return Path(candidate)
    return None


def transcode_h264(source: Path, target: Path, gop: int = 10) -> Path:
    """The footage as an H.264 camera would send it (High profile, no B-frames, keyframe each GOP)."""
    with av.open(str(source)) as src, av.open(str(target), "w") as out:
        stream = src.streams.video[0]
        rate = stream.average_rate or Fraction(10)
        encoded = out.add_stream("libx264", rate=rate)
        encoded.width, encoded.height, encoded.pix_fmt = (
            stream.codec_context.width,
            stream.codec_context.height,
            "yuv420p",
        )
        encoded.codec_context.options = {"preset": "veryfast", "crf": "18", "g": str(gop), "bf": "0"}
        for frame in src.decode(stream):
            frame.pts = None
            for packet in encoded.encode(frame):
                out.mux(packet)
        for packet in encoded.encode():
            out.mux(packet)
    return target


def decode_rgb(data_or_path: bytes | Path, truncated_tail: bool = False) -> list[np.ndarray]:
    """Every frame as RGB. truncated_tail: the bytes were cut from a live stream at an arbitrary
    point, so the last sample may be incomplete; only that one may fail to decode."""
    import io

    source = io.BytesIO(data_or_path) if isinstance(data_or_path, bytes) else str(data_or_path)
    frames: list[np.ndarray] = []
    with av.open(source) as container:
        stream = container.streams.video[0]
        packets = [p for p in container.demux(stream) if p.size]
        for n, packet in enumerate(packets):
            try:
                frames += [f.to_ndarray(format="rgb24") for f in stream.decode(packet)]
            except av.error.InvalidDataError:
                if not (truncated_tail and n == len(packets) - 1):
                    raise
        frames += [f.to_ndarray(format="rgb24") for f in stream.decode(None)]
    return frames


def polygon_mask(polygon_px: list[tuple[int, int]], size: tuple[int, int], grow_px: int = 0) -> np.ndarray:
    """A boolean mask of the polygon; grow_px > 0 dilates it, grow_px < 0 erodes it."""
    width, height = size
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [np.array(polygon_px, np.int32)], 1)
    if grow_px:
        kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * abs(grow_px) + 1, 2 * abs(grow_px) + 1))
        mask = cv2.dilate(mask, kernel) if grow_px > 0 else cv2.erode(mask, kernel)
    return mask.astype(bool)


def psnr(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float:
    diff = a[where].astype(np.float64) - b[where].astype(np.float64)
    mse = float(np.mean(diff * diff))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def write_clip(path: Path, seconds: float, fps: int = 10, size: tuple[int, int] = (320, 240)) -> Path:
    """A short H.264 MP4 of moving shapes: a file camera for tests that need no shared footage."""
    width, height = size
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.options = {"preset": "ultrafast", "g": str(fps), "bf": "0"}
        for i in range(int(seconds * fps)):
            img = np.full((height, width, 3), 60, np.uint8)
            cv2.circle(img, ((i * 11) % width, height // 2), 25, (40, 200, 250), -1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path
