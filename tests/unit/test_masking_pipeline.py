"""The masking pipeline in-process: masks burned in, keyframes by time, fail closed, bad packets."""

import io
import itertools

import av
import numpy as np

from services.common.fmp4 import Fmp4Writer
from services.common.pb.csu.v1.frame_pb2 import FramePacket
from services.masking.masks import MaskRaster, rasterise, rgb_hex_to_yuv
from services.masking.pipeline import NO_MASK_SET, CameraMasker, EncoderSettings, MaskSet
from tests.support.frames import h264_packets
from tests.support.media import polygon_mask

ENCODER = EncoderSettings(preset="ultrafast", crf=20, threads=1, keyframe_interval_s=1.0)
GREY = rgb_hex_to_yuv("#808080")
SQUARE = [(0.25, 0.25), (0.75, 0.25), (0.75, 0.75), (0.25, 0.75)]


def run(masker: CameraMasker, packets: list[FramePacket]) -> list[FramePacket]:
    out: list[FramePacket] = []
    for p in packets:
        out += masker.process(p)
    return out + masker.flush()


def decode(packets: list[FramePacket]) -> list[np.ndarray]:
    sink = io.BytesIO()
    writer = Fmp4Writer(sink, packets[0])
    for p in packets[1:]:
        writer.write(p)
    writer.close()
    with av.open(io.BytesIO(sink.getvalue())) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])]


def test_masks_are_burned_into_every_frame() -> None:
    masker = CameraMasker("cam-t", MaskSet("m-1", [SQUARE]), GREY, ENCODER)
    out = run(masker, h264_packets(25))
    assert len(out) == 25
    assert {p.mask_version for p in out} == {"m-1"}
    assert not any(p.fully_masked for p in out)
    inside = polygon_mask([(80, 60), (240, 60), (240, 180), (80, 180)], (320, 240), grow_px=-4)
    for image in decode(out):
        assert np.abs(image[inside].astype(int) - 128).max() <= 6


def test_keyframes_follow_capture_time_not_source_gop() -> None:
    # The source has a keyframe every 3 s; the masked stream must have one every second.
    masker = CameraMasker("cam-t", MaskSet("m-1", [SQUARE]), GREY, ENCODER)
    out = run(masker, h264_packets(60, gop=30))
    keyframe_times = [p.capture_time_us for p in out if p.keyframe]
    assert len(keyframe_times) == 6
    assert all(b - a == 1_000_000 for a, b in itertools.pairwise(keyframe_times))
    assert all(p.HasField("codec") for p in out if p.keyframe)


def test_camera_without_mask_set_is_masked_entirely() -> None:
    masker = CameraMasker("stranger", None, GREY, ENCODER)
    out = run(masker, h264_packets(12, camera_id="stranger"))
    assert out and all(p.fully_masked and p.mask_version == NO_MASK_SET for p in out)
    for image in decode(out):
        assert np.abs(image.astype(int) - 128).max() <= 6


def test_output_time_never_goes_backwards() -> None:
    packets = h264_packets(20)
    packets[10].capture_time_us = packets[3].capture_time_us  # the camera's clock jumped back
    out = run(CameraMasker("cam-t", MaskSet("m-1", []), GREY, ENCODER), packets)
    times = [p.capture_time_us for p in out]
    assert all(b > a for a, b in itertools.pairwise(times))


def test_undecodable_packet_is_counted_and_skipped() -> None:
    packets = h264_packets(30)
    garbage = FramePacket()
    garbage.CopyFrom(packets[15])
    garbage.data = b"\x00\x00\x01\x65" + bytes(range(256)) * 4  # a broken IDR slice
    masker = CameraMasker("cam-garbage", MaskSet("m-1", []), GREY, ENCODER)
    before = _decode_errors("cam-garbage")
    out = run(masker, [*packets[:15], garbage, *packets[16:]])
    assert _decode_errors("cam-garbage") == before + 1
    assert len(out) >= 28  # the stream went on after the bad packet


def test_new_source_session_restarts_on_a_keyframe() -> None:
    first = h264_packets(15, session="a")
    second = h264_packets(15, session="b", start_us=first[-1].capture_time_us + 5_000_000)
    out = run(CameraMasker("cam-t", MaskSet("m-1", []), GREY, ENCODER), first + second)
    session_b = [p for p in out if p.source_session == "b"]
    assert len(session_b) == 15 and session_b[0].keyframe


def _decode_errors(camera: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("csu_masking_decode_errors_total", {"camera": camera}) or 0.0


def test_raster_covers_chroma_of_touched_blocks() -> None:
    raster: MaskRaster = rasterise([[(0.5, 0.5), (0.52, 0.5), (0.52, 0.52)]], 101 * 2, 50 * 2)
    ys, xs = np.nonzero(raster.luma)
    # Every luma pixel's chroma sample is masked too.
    assert raster.chroma[ys // 2, xs // 2].all()
    assert rasterise([], 64, 48).empty
