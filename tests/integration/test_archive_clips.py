"""Clips and extraction through ArchiveService, from segments on the S3 server.

A clip must decode to exactly the frames of its range (starting at most one GOP early, on the
keyframe before the start) — bit for bit the frames the camera's packets decode to — and carry
the timestamp subtitle track and the camera's name. The last minutes are playable while the
segment is still being written, and while segments wait in the spool for the store.
"""

import hashlib
import io
from collections.abc import AsyncIterator
from fractions import Fraction
from pathlib import Path
from urllib.parse import urlsplit

import av
import grpc
import numpy as np
import pytest

from services.archive.keys import segment_key
from services.archive.segmenter import SegmentBuilder
from services.common.clock import from_us
from services.common.pb.csu.v1 import archive_pb2, ingest_pb2
from services.common.pb.csu.v1.frame_pb2 import FramePacket
from tests.support.archive import T0_US, ArchiveHarness, TcpProxy, harness, running_archive, s3_store
from tests.support.frames import h264_packets
from tests.support.servers import S3Server, unique

FPS, GOP = 10, 10
NAME = "Place d'Armes (nord)"


def packets(count: int, start_us: int = T0_US) -> list[FramePacket]:
    found = h264_packets(count, fps=FPS, gop=GOP, camera_id="cam-c", start_us=start_us)
    for p in found:
        p.mask_version = "m-test"
    return found


def reference_frames(source: list[FramePacket]) -> list[np.ndarray]:
    """What a decoder makes of the camera's own packets (the clip must match these exactly)."""
    decoder = av.CodecContext.create("h264", "r")
    frames = []
    for p in source:
        packet = av.Packet(p.data)
        packet.pts = packet.dts = p.pts
        packet.time_base = Fraction(1, FPS)
        frames += [f.to_ndarray(format="rgb24") for f in decoder.decode(packet)]
    frames += [f.to_ndarray(format="rgb24") for f in decoder.decode(None)]
    return frames


async def clip(h: ArchiveHarness, start_us: int, end_us: int) -> tuple[archive_pb2.ClipInfo, bytes]:
    call = h.stub.OpenClip(archive_pb2.ClipRequest(camera_id="cam-c", start_us=start_us, end_us=end_us, actor="t"))
    first = await call.read()
    assert first.HasField("info")
    data = bytearray()
    while (chunk := await call.read()) is not grpc.aio.EOF:
        data += chunk.data
    assert len(data) == first.info.size
    return first.info, bytes(data)


def decoded(data: bytes) -> list[np.ndarray]:
    with av.open(io.BytesIO(data)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(container.streams.video[0])]


def store_all(h: ArchiveHarness, source: list[FramePacket], segment_s: float):  # type: ignore[no-untyped-def]
    builder = SegmentBuilder("cam-c", "main", h.spool.root, segment_s, 3.0)
    closed = []
    for p in source:
        closed += builder.add(p)
    last = builder.close()
    return [*closed, last] if last else closed


@pytest.fixture
async def archive(tmp_path: Path, database_url: str, s3: S3Server) -> AsyncIterator[ArchiveHarness]:
    cameras = [ingest_pb2.Camera(id="cam-c", name=NAME, retention_days=15)]
    async with running_archive(tmp_path, database_url, s3, cameras) as h:
        yield h


async def test_clip_decodes_to_exactly_the_frames_of_the_range(archive: ArchiveHarness) -> None:
    source = packets(120)
    await archive.store_segments(store_all(archive, source, 3.0))
    start_us, end_us = T0_US + 2_350_000, T0_US + 8_620_000
    info, data = await clip(archive, start_us, end_us)

    # Frame 23 is the first in the range; its GOP starts at frame 20; frame 86 is the last.
    first, last = 20, 86
    assert (info.start_us, info.frames, info.segments) == (source[first].capture_time_us, last - first + 1, 3)
    assert info.end_us == T0_US + 8_700_000 and info.camera_name == NAME
    assert info.filename.startswith("cam-c_") and info.content_type == "video/mp4"
    frames = decoded(data)
    expected = reference_frames(source[first : last + 1])
    assert len(frames) == len(expected)
    for n, (got, want) in enumerate(zip(frames, expected, strict=True)):
        assert np.array_equal(got, want), f"frame {first + n} differs"

    with av.open(io.BytesIO(data)) as container:
        assert container.metadata["title"] == NAME
        video = container.streams.video[0]
        assert video.codec_context.name == "h264"
        # Presentation times follow the capture times (10 fps: 0.1 s apart).
        times = [float(p.pts * video.time_base) for p in container.demux(video) if p.pts is not None]
        assert times[:3] == pytest.approx([0.0, 0.1, 0.2])
    with av.open(io.BytesIO(data)) as container:
        text = container.streams.subtitles[0]
        assert text.codec_context.name == "mov_text"
        cues = [(p.pts, s.dialogue.decode()) for p in container.demux(text) for s in p.decode()]
    # One cue per second of the clip: camera name, UTC time, Paris time.
    assert len(cues) == 7
    moment = from_us(source[first].capture_time_us)
    assert NAME in cues[0][1] and f"{moment:%Y-%m-%d %H:%M:%S} UTC" in cues[0][1]
    assert "Paris" in cues[0][1]


async def test_last_minutes_play_while_being_written_and_spooled(
    tmp_path: Path, database_url: str, s3: S3Server
) -> None:
    target = urlsplit(s3.endpoint)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 80)
    h = harness(tmp_path, database_url, s3_store(s3, endpoint=proxy.endpoint))
    h.retention.update([ingest_pb2.Camera(id="cam-c", name=NAME, retention_days=15)])
    await h.start()
    try:
        source = packets(85)
        # 0-3 s stored; 3-6 s closed but waiting in the spool (store cut off); 6-8.5 s being written.
        stored = store_all(h, source[:30], 3.0)
        await h.store_segments(stored)
        proxy.cut()
        spooled = store_all(h, source[30:60], 3.0)
        for seg in spooled:
            h.recorder.submit(seg)
        assert h.live is not None
        h.live.builder = SegmentBuilder("cam-c", "main", h.spool.root, 60.0, 3.0)
        for p in source[60:]:
            h.live.builder.add(p)

        timeline = await h.stub.GetTimeline(
            archive_pb2.TimelineRequest(camera_id="cam-c", start_us=T0_US, end_us=T0_US + 10_000_000)
        )
        assert [(c.start_us, c.recording) for c in timeline.covered] == [(T0_US, False), (T0_US + 3_000_000, True)]

        # The last seconds (while the store is away, spooled and open segments only). The open
        # segment is readable up to its last complete fragment (the GOPs of 6-7 s and 7-8 s).
        info, data = await clip(h, T0_US + 3_000_000, T0_US + 10_000_000)
        frames = decoded(data)
        expected = reference_frames(source[30:80])
        assert len(frames) == len(expected) == info.frames
        assert all(np.array_equal(a, b) for a, b in zip(frames, expected, strict=True))
    finally:
        proxy.restore()
        await h.stop()
        proxy.close()


async def test_extract_range_copies_segments_unchanged_with_their_chain(archive: ArchiveHarness, s3: S3Server) -> None:
    segments = store_all(archive, packets(90), 3.0)
    await archive.store_segments(segments)
    bucket = unique("extract-")
    request = archive_pb2.ExtractRangeRequest(
        camera_id="cam-c",
        start_us=T0_US + 3_500_000,
        end_us=T0_US + 6_500_000,
        target_bucket=bucket,
        target_prefix="req-42",
        actor="t",
    )
    response = await archive.stub.ExtractRange(request)
    assert [e.segment.id for e in response.segments] == [segments[1].id, segments[2].id]
    target = s3_store(s3, bucket)
    for extracted, seg in zip(response.segments, segments[1:3], strict=True):
        assert extracted.target_key == f"req-42/{segment_key('cam-c', seg.start_us)}"
        data = target.get(extracted.target_key)
        assert hashlib.sha256(data).hexdigest() == seg.sha256 == extracted.segment.sha256
        assert extracted.segment.prev_sha256 == segments[segments.index(seg) - 1].sha256
    # Into the recordings bucket itself: refused.
    same = archive_pb2.ExtractRangeRequest(
        camera_id="cam-c", start_us=T0_US, end_us=T0_US + 1_000_000, target_bucket=archive.store.bucket
    )
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await archive.stub.ExtractRange(same)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # A segment whose bytes changed is not handed over.
    key = segment_key("cam-c", segments[1].start_us)
    archive.store.put(key, b"tampered", archive.store.stat(key).metadata)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await archive.stub.ExtractRange(request)
    assert error.value.code() == grpc.StatusCode.DATA_LOSS and "SHA-256" in (error.value.details() or "")
