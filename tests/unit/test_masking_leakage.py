"""Nothing of the original survives inside a mask after H.264: not through chroma, not at the edges.

Adversarial content: inside the mask, saturated high-contrast patterns that change every frame
(luma and chroma-only variants); outside, a saturated pattern hugging the mask's edge so that
deblocking and ringing have the most to smear. Three proofs:
1. Independence: two runs whose images differ only inside the mask polygon produce byte-identical
   masked streams — the output is a function of the outside alone, so it carries nothing of the
   inside (no correlation test can find what is not there).
2. Flatness: inside the polygon every decoded pixel is within ±6 of the mask grey, in every frame,
   even next to saturated outside content.
3. No correlation: the decoded inside does not correlate with the secret pattern.
"""

import io
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest
import shapely

from services.common.fmp4 import Fmp4Writer
from services.common.pb.csu.v1.frame_pb2 import CodecParameters, FramePacket
from services.masking.masks import BLOCK, rasterise, rgb_hex_to_yuv
from services.masking.pipeline import CameraMasker, EncoderSettings, MaskSet
from tests.support.frames import T0_US

GREY = rgb_hex_to_yuv("#808080")
ENCODER = EncoderSettings(preset="veryfast", crf=21, threads=1, keyframe_interval_s=1.0)
# A deliberately unaligned polygon (not on the macroblock grid, not a rectangle).
POLYGON = [(0.213, 0.171), (0.617, 0.143), (0.655, 0.487), (0.241, 0.523)]


def _polygon_px(size: tuple[int, int]) -> np.ndarray:
    w, h = size
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [np.array([[x * w, y * h] for x, y in POLYGON], np.int32)], 1)
    return mask.astype(bool)


def _frames(count: int, size: tuple[int, int], secret_seed: int, chroma_only: bool) -> list[np.ndarray]:
    """Outside: a fixed saturated scene with stripes up to the polygon. Inside: a secret pattern."""
    w, h = size
    inside = _polygon_px(size)
    rng = np.random.default_rng(secret_seed)
    outside = np.zeros((h, w, 3), np.uint8)
    outside[:, :, 2] = 255  # saturated red...
    outside[:, ::4, 1] = 255  # ...with thin yellow stripes for ringing
    outside[::6, :, 0] = 255
    frames = []
    for i in range(count):
        if chroma_only:
            # Equal luma, opposite chroma: only the colour planes carry the secret.
            a = np.array([[0, 180, 90]], np.uint8)[0]
            b = np.array([[180, 90, 130]], np.uint8)[0]
            cells = rng.integers(0, 2, (h // 8 + 1, w // 8 + 1)).repeat(8, 0).repeat(8, 1)[:h, :w]
            secret = np.where(cells[..., None] == 1, a, b).astype(np.uint8)
        else:
            secret = (rng.integers(0, 2, (h, w, 1)) * 255).astype(np.uint8).repeat(3, 2)
            secret[:, :, i % 3] = 255 - secret[:, :, i % 3]
        image = outside.copy()
        image[inside] = secret[inside]
        cv2.putText(image, f"{i}", (8, h - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2)
        frames.append(image)
    return frames


def _raw_packets(images: list[np.ndarray], fps: int = 10) -> list[FramePacket]:
    h, w = images[0].shape[:2]
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = w, h, "yuv444p"  # keep the camera's chroma sharp
    encoder.time_base, encoder.gop_size, encoder.max_b_frames = Fraction(1, fps), 10, 0
    encoder.options = {"preset": "ultrafast", "tune": "zerolatency", "qp": "0"}
    out = []
    for i, image in enumerate(images):
        frame = av.VideoFrame.from_ndarray(image, format="bgr24").reformat(format="yuv444p")
        frame.pts = i
        for p in encoder.encode(frame):
            env = FramePacket(
                camera_id="cam-leak", stream="main", sequence=len(out), pts=p.pts, dts=p.dts, time_base_num=1,
                time_base_den=fps, keyframe=p.is_keyframe, capture_time_us=T0_US + p.pts * 100_000,
                source_session="s", frame_rate=fps, data=bytes(p),
            )  # fmt: skip
            if p.is_keyframe:
                env.codec.CopyFrom(CodecParameters(name="h264", width=w, height=h))
            out.append(env)
    return out


def _mask(images: list[np.ndarray]) -> list[FramePacket]:
    masker = CameraMasker("cam-leak", MaskSet("v1", [POLYGON]), GREY, ENCODER)
    out: list[FramePacket] = []
    for packet in _raw_packets(images):
        out += masker.process(packet)
    return out + masker.flush()


def _decode(packets: list[FramePacket], fmt: str = "yuv420p") -> list[np.ndarray]:
    sink = io.BytesIO()
    writer = Fmp4Writer(sink, packets[0])
    for p in packets[1:]:
        writer.write(p)
    writer.close()
    with av.open(io.BytesIO(sink.getvalue())) as c:
        return [f.to_ndarray(format=fmt) for f in c.decode(c.streams.video[0])]


@pytest.mark.parametrize("size", [(320, 240), (704, 576)])
@pytest.mark.parametrize("chroma_only", [False, True])
def test_output_does_not_depend_on_what_is_inside_the_mask(size: tuple[int, int], chroma_only: bool) -> None:
    first = _mask(_frames(15, size, secret_seed=1, chroma_only=chroma_only))
    second = _mask(_frames(15, size, secret_seed=2, chroma_only=chroma_only))
    assert len(first) == len(second) == 15
    assert [p.data for p in first] == [p.data for p in second], "the masked stream depends on the masked content"


@pytest.mark.parametrize("size", [(320, 240), (704, 576), (1280, 720)])
def test_inside_the_polygon_is_flat_grey_next_to_saturated_edges(size: tuple[int, int]) -> None:
    images = _frames(12, size, secret_seed=3, chroma_only=False)
    decoded = _decode(_mask(images), "rgb24")
    inside = _polygon_px(size)
    assert len(decoded) == 12
    for n, image in enumerate(decoded):
        worst = int(np.abs(image[inside].astype(int) - 128).max())
        assert worst <= 6, f"frame {n}: a pixel inside the polygon is {worst} away from the grey"


def test_decoded_mask_does_not_correlate_with_the_secret() -> None:
    size = (704, 576)
    images = _frames(10, size, secret_seed=4, chroma_only=False)
    decoded = _decode(_mask(images), "rgb24")
    inside = _polygon_px(size)
    for secret, image in zip(images, decoded, strict=True):
        s = secret[inside].astype(float).ravel()
        d = image[inside].astype(float).ravel()
        if d.std() == 0:
            continue  # perfectly flat: nothing to correlate with
        assert abs(np.corrcoef(s, d)[0, 1]) < 0.05


def test_fill_is_whole_macroblocks_beyond_the_margin() -> None:
    w, h = 704, 576
    raster = rasterise([POLYGON], w, h, margin_px=4)
    for y0, y1, x0, x1 in raster.rects:
        assert y0 % BLOCK == 0 and x0 % BLOCK == 0
        assert y1 % BLOCK == 0 or y1 == h
        assert x1 % BLOCK == 0 or x1 == w
    # Every pixel left unfilled lies more than the margin away from the polygon (exact geometry).
    polygon = shapely.Polygon([(x * w, y * h) for x, y in POLYGON])
    ys, xs = np.nonzero(~raster.luma)
    distances = shapely.distance(polygon, shapely.points(xs + 0.5, ys + 0.5))
    assert distances.min() > 4 - 0.5, "a pixel within the margin of the polygon is not filled"
    ys, xs = np.nonzero(raster.luma)
    assert raster.chroma[ys // 2, xs // 2].all()
