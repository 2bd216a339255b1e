"""Cutting masked packets into segments: keyframe-aligned, sessions, gaps, mask versions."""

import hashlib
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


def test_a_crash_keeps_every_complete_fragment(tmp_path: Path) -> None:
    """kill -9 mid-segment: salvage keeps the fragments on disk, the one being written goes."""
    from services.archive.salvage import salvage

    builder = SegmentBuilder("cam-t", "main", tmp_path, duration_s=60, gap_s=3)
    packets = masked(h264_packets(45))  # keyframes every 10 packets (1 s)
    feed(builder, packets)
    open_seg = builder.open_segment()
    assert open_seg is not None
    # What a process dying in the middle of a write leaves: part of the next fragment.
    with open_seg.path.open("ab") as file:
        file.write(b"\x00\x01\x00\x00moof" + b"\x00" * 300)
    # The builder is abandoned as a killed process abandons it.
    marker = tmp_path / f"{open_seg.id}.open"
    seg = salvage(tmp_path, marker)
    assert seg is not None and not marker.exists()
    assert seg.frames == 40  # four complete GOPs; the fifth was in flight
    assert seg.start_us == T0_US and seg.end_us == packets[40].capture_time_us  # touches what follows
    assert seg.mask_version == "m-1"
    data = seg.media_path(tmp_path).read_bytes()
    assert len(data) == seg.bytes and hashlib.sha256(data).hexdigest() == seg.sha256
    assert frames_in(seg.media_path(tmp_path)) == 40
    assert ClosedSegment.load(seg.description_path(tmp_path)) == seg


def test_a_segment_with_no_complete_fragment_leaves_nothing(tmp_path: Path) -> None:
    from services.archive.salvage import salvage

    builder = SegmentBuilder("cam-t", "main", tmp_path, duration_s=60, gap_s=3)
    feed(builder, masked(h264_packets(5)))
    open_seg = builder.open_segment()
    assert open_seg is not None
    assert salvage(tmp_path, tmp_path / f"{open_seg.id}.open") is None
    assert list(tmp_path.iterdir()) == []


def test_sealing_ends_at_the_last_fragment_and_recording_resumes_from_its_keyframe(tmp_path: Path) -> None:
    """A camera handed over: sealed at a fragment, the next holder starts on the keyframe after it."""
    packets = masked(h264_packets(45))
    builder = SegmentBuilder("cam-t", "main", tmp_path, duration_s=60, gap_s=3)
    for i, p in enumerate(packets):
        builder.add(p, ack=f"ack-{i}")
    sealed = builder.seal()
    assert sealed is not None and sealed.frames == 40
    assert sealed.end_us == packets[40].capture_time_us
    assert sealed.ack == "ack-39"  # its last packet: the buffer replays from packet 40 on
    data = sealed.media_path(tmp_path).read_bytes()
    assert hashlib.sha256(data).hexdigest() == sealed.sha256 and len(data) == sealed.bytes
    assert frames_in(sealed.media_path(tmp_path)) == 40
    following = SegmentBuilder("cam-t", "main", tmp_path, duration_s=60, gap_s=3)
    feed(following, packets[40:])
    resumed = following.close()
    assert resumed is not None and resumed.start_us == sealed.end_us and resumed.frames == 5
    # Nothing complete yet: sealing keeps nothing and leaves no file.
    short = SegmentBuilder("cam-t", "main", tmp_path / "short", duration_s=60, gap_s=3)
    (tmp_path / "short").mkdir()
    feed(short, packets[:8])
    assert short.seal() is None and list((tmp_path / "short").iterdir()) == []


def test_segments_cut_on_a_keyframe_touch_it_exactly(tmp_path: Path) -> None:
    packets = masked(h264_packets(50))
    for i, p in enumerate(packets):
        p.capture_time_us += (i % 3) * 7_000  # a camera's jitter: durations are not all equal
    builder = SegmentBuilder("cam-t", "main", tmp_path, duration_s=1.5, gap_s=3)
    closed = feed(builder, packets)
    assert len(closed) >= 2
    keyframes = {p.capture_time_us for p in packets if p.keyframe}
    for seg, following in itertools.pairwise(closed):
        assert following.start_us in keyframes
        assert following.start_us - 12 <= seg.end_us <= following.start_us  # to the 90 kHz tick
