"""A segment's text track (Paris date and time, camera name), as the archive writes it: across the
autumn change of hour, in a sealed segment, after a camera is renamed; the segment's hash is the
hash of the file that carries it, and the video readers (scan, frame decoding) still see the video."""

import hashlib
import io
from datetime import UTC, datetime
from pathlib import Path

import av

from services.archive.segmenter import ClosedSegment, SegmentBuilder
from services.common.fmp4 import scan
from tests.support.frames import h264_packets
from tests.support.timed_text import check_cues, tracks

# 2026-10-25 00:59:58.3 UTC = 02:59:58.3 CEST; at 01:00:00 UTC Paris goes back to 02:00:00 CET.
AUTUMN_US = int(datetime(2026, 10, 25, 0, 59, 58, 300_000, tzinfo=UTC).timestamp() * 1_000_000)


def feed(builder: SegmentBuilder, packets: list) -> list[ClosedSegment]:  # type: ignore[type-arg]
    closed: list[ClosedSegment] = []
    for p in packets:
        closed += builder.add(p)
    return closed


def test_the_text_track_says_cest_then_cet_across_the_autumn_change(tmp_path: Path) -> None:
    builder = SegmentBuilder("cam-t", "main", tmp_path, 60, 3, name_for=lambda _: "Rue de l'Église")
    feed(builder, h264_packets(45, fps=10, gop=10, start_us=AUTUMN_US))
    segment = builder.close()
    assert segment is not None
    data = segment.media_path(tmp_path).read_bytes()
    kinds, cues, end = tracks(data)
    assert kinds == [("video", "h264"), ("subtitle", "mov_text")]
    check_cues(cues, segment.start_us, end, "Rue de l'Église")
    texts = sorted({c.text.split(" \u00b7 ")[0] for c in cues})
    assert texts == [
        "2026-10-25 02:00:00 CET",
        "2026-10-25 02:00:01 CET",
        "2026-10-25 02:00:02 CET",
        "2026-10-25 02:59:58 CEST",
        "2026-10-25 02:59:59 CEST",
    ]
    # Hashed as stored; the video readers find the video as before.
    assert segment.sha256 == hashlib.sha256(data).hexdigest() and segment.bytes == len(data)
    found = scan(io.BytesIO(data))
    assert (found.frames, found.complete_bytes, found.timescale) == (45, len(data), 90_000)
    with av.open(io.BytesIO(data)) as container:
        assert sum(1 for _ in container.decode(container.streams.video[0])) == 45


def test_a_sealed_segment_keeps_the_text_of_its_complete_fragments(tmp_path: Path) -> None:
    builder = SegmentBuilder("cam-t", "main", tmp_path, 60, 3, name_for=lambda _: "Parvis")
    feed(builder, h264_packets(35, fps=10, gop=10, start_us=AUTUMN_US))
    sealed = builder.seal()
    assert sealed is not None and sealed.frames == 30  # the fourth GOP was still being written
    data = sealed.media_path(tmp_path).read_bytes()
    assert sealed.sha256 == hashlib.sha256(data).hexdigest() and sealed.bytes == len(data)
    _, cues, end = tracks(data)
    check_cues(cues, sealed.start_us, end, "Parvis")
    assert sealed.start_us + end * 100 // 9 == sealed.end_us


def test_a_renamed_camera_s_next_segment_carries_its_new_name(tmp_path: Path) -> None:
    names = {"cam-t": "Ancien nom"}
    builder = SegmentBuilder("cam-t", "main", tmp_path, 1.5, 3, name_for=names.__getitem__)
    packets = h264_packets(40, fps=10, gop=10, start_us=AUTUMN_US)
    first = feed(builder, packets[:15])  # the first segment is open
    names["cam-t"] = "Nouveau nom"
    closed = first + feed(builder, packets[15:])
    last = builder.close()
    assert not first and len(closed) == 1 and last is not None
    closed.append(last)
    _, old, _ = tracks(closed[0].media_path(tmp_path).read_bytes())
    _, new, _ = tracks(closed[1].media_path(tmp_path).read_bytes())
    assert {c.text.split(" \u00b7 ")[1] for c in old} == {"Ancien nom"}
    assert {c.text.split(" \u00b7 ")[1] for c in new} == {"Nouveau nom"}


def test_a_text_it_cannot_write_costs_the_text_not_the_footage(tmp_path: Path) -> None:
    # A name longer than a tx3g sample holds (65,535 bytes): each fragment is stored as the muxer
    # wrote it, video only, and the segment is whole, hashed as stored and playable.
    builder = SegmentBuilder("cam-t", "main", tmp_path, 60, 3, name_for=lambda _: "x" * 70_000)
    feed(builder, h264_packets(25, fps=10, gop=10, start_us=AUTUMN_US))
    segment = builder.close()
    assert segment is not None and segment.frames == 25
    data = segment.media_path(tmp_path).read_bytes()
    assert segment.sha256 == hashlib.sha256(data).hexdigest() and segment.bytes == len(data)
    found = scan(io.BytesIO(data))
    assert (found.frames, found.complete_bytes) == (25, len(data))
    with av.open(io.BytesIO(data)) as container:
        assert sum(1 for _ in container.decode(container.streams.video[0])) == 25
