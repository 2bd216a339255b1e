"""Cutting masked packets into segments: keyframe-aligned, sessions, gaps, mask versions."""

import io
import itertools
import time
from pathlib import Path

import av

from services.archive.segmenter import ClosedSegment, SegmentBuilder
from services.common.pb.csu.v1.frame_pb2 import FramePacket
from services.masking.masks import rgb_hex_to_yuv
from services.masking.pipeline import CameraMasker, EncoderSettings, MaskSet
from tests.support.frames import T0_US, h264_packets


def masked(packets: list[FramePacket], version: str = "m-1") -> list[FramePacket]:
    masker = CameraMasker(
        "cam-t", MaskSet(version, []), rgb_hex_to_yuv("#808080"), EncoderSettings("ultrafast", 23, 1, 1.0)
    )
    out: list[FramePacket] = []
    for p in packets:
        out += masker.process(p)
    return out


def feed(builder: SegmentBuilder, packets: list[FramePacket]) -> list[ClosedSegment]:
    closed: list[ClosedSegment] = []
    for p in packets:
        closed += builder.add(p)
    return closed


def frames_in(path: Path) -> int:
    with av.open(io.BytesIO(path.read_bytes())) as c:
        return sum(1 for _ in c.decode(c.streams.video[0]))


def test_segments_are_cut_on_keyframes_after_the_target_duration(tmp_path: Path) -> None:
    builder = SegmentBuilder("cam-t", "main", tmp_path, duration_s=2.5, gap_s=3)
    closed = feed(builder, masked(h264_packets(100)))  # 10 s at 10 fps, keyframe every 1 s
    last = builder.close()
    assert last is not None
    segments = [*closed, last]
    assert [s.frames for s in segments] == [30, 30, 30, 10]
    for a, b in itertools.pairwise(segments):
        assert a.end_us == b.start_us  # continuous recording: segments touch
    assert segments[0].start_us == T0_US and segments[-1].end_us == T0_US + 10_000_000
    for s in segments:
        assert frames_in(s.media_path(tmp_path)) == s.frames
        assert ClosedSegment.load(s.description_path(tmp_path)) == s


def test_session_change_and_gaps_end_segments(tmp_path: Path) -> None:
    builder = SegmentBuilder("cam-t", "main", tmp_path, duration_s=60, gap_s=3)
    a = masked(h264_packets(20, session="a"))
    b = masked(h264_packets(20, session="b", start_us=T0_US + 2_100_000))  # overlaps nothing, new session
    c = masked(h264_packets(20, session="b2", start_us=T0_US + 20_000_000))
    closed = feed(builder, a) + feed(builder, b)
    assert len(closed) == 1 and closed[0].frames == 20
    closed = feed(builder, c)
    assert len(closed) == 1 and closed[0].start_us == T0_US + 2_100_000
    # The same session with a jump in capture time longer than the gap threshold also cuts.
    builder2 = SegmentBuilder("cam-t", "main", tmp_path, duration_s=60, gap_s=3)
    packets = masked(h264_packets(40))
    for p in packets[20:]:
        p.capture_time_us += 10_000_000
    closed = feed(builder2, packets)
    assert len(closed) == 1 and closed[0].end_us <= packets[20].capture_time_us - 10_000_000 + 100_000


def test_mask_version_change_ends_segment(tmp_path: Path) -> None:
    builder = SegmentBuilder("cam-t", "main", tmp_path, duration_s=60, gap_s=3)
    packets = masked(h264_packets(30))
    for p in packets[20:]:
        p.mask_version = "m-2"
    closed = feed(builder, packets)
    assert [(s.mask_version, s.frames) for s in closed] == [("m-1", 20)]


def test_segment_waits_for_a_keyframe(tmp_path: Path) -> None:
    builder = SegmentBuilder("cam-t", "main", tmp_path, duration_s=60, gap_s=3)
    packets = masked(h264_packets(25))
    feed(builder, packets[3:])  # joins mid-GOP: the first 7 packets cannot start a segment
    closed = builder.close()
    assert closed is not None and closed.frames == 15 and closed.start_us == packets[10].capture_time_us


def test_idle_camera_closes_its_segment(tmp_path: Path) -> None:
    builder = SegmentBuilder("cam-t", "main", tmp_path, duration_s=60, gap_s=0.2)
    feed(builder, masked(h264_packets(12)))
    assert builder.close_if_idle() is None
    time.sleep(0.3)
    closed = builder.close_if_idle()
    assert closed is not None and closed.frames == 12
