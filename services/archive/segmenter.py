"""Cutting one camera's masked packets into keyframe-aligned fMP4 segments, without re-encoding.

A segment starts on a keyframe and is written to the spool as it grows. It ends:
- on the first keyframe at or after the target duration (so every segment starts on a keyframe
  and consecutive segments touch);
- when the producer's session changes (a source reconnect or a masking restart: their packets
  never share a segment);
- when the mask set changes (each segment records exactly one mask version);
- when the capture times jump forward by more than the gap threshold, or when no packet has
  arrived for that long (the camera went silent): the hole is a gap in the index.
A closed segment's bytes and description stay in the spool until they are stored and indexed.

Spool files of one segment: `<id>.mp4` (the bytes, growing while open), `<id>.open` (camera and
start, written when it opens and removed when it closes: after a crash it says which camera lost
what), `<id>.json` (the description, written once the bytes are complete).
"""

import hashlib
import json
import os
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from prometheus_client import Counter

from services.common import h264
from services.common.fmp4 import Fmp4Writer
from services.common.pb.csu.v1.frame_pb2 import FramePacket

DROPPED = Counter("csu_archive_dropped_packets_total", "Masked packets not recorded", ["camera", "reason"])


@dataclass(frozen=True)
class OpenSegmentInfo:
    """The segment being written now: readable up to its last complete fragment (live-to-recent)."""

    id: str
    camera_id: str
    stream: str
    path: Path
    start_us: int
    last_us: int
    mask_version: str


def open_marker_path(spool: Path, segment_id: str) -> Path:
    return spool / f"{segment_id}.open"


@dataclass(frozen=True)
class ClosedSegment:
    id: str
    camera_id: str
    stream: str
    start_us: int
    end_us: int
    bytes: int
    sha256: str
    frames: int
    mask_version: str
    fully_masked: bool

    def media_path(self, spool: Path) -> Path:
        return spool / f"{self.id}.mp4"

    def description_path(self, spool: Path) -> Path:
        return spool / f"{self.id}.json"

    def save_description(self, spool: Path) -> None:
        """Written once the media file is complete: its presence marks a segment ready to store."""
        tmp = spool / f"{self.id}.json.tmp"
        tmp.write_text(json.dumps(asdict(self)))
        tmp.replace(self.description_path(spool))

    @classmethod
    def load(cls, path: Path) -> "ClosedSegment":
        return cls(**json.loads(path.read_text()))


class _HashingFile:
    def __init__(self, path: Path) -> None:
        self._file = path.open("wb")
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self._file.write(data)
        # Straight to the OS, so the segment being written is readable up to its last fragment
        # (live-to-recent playback reads it).
        self._file.flush()
        self.sha256.update(data)
        self.size += len(data)
        return len(data)

    def close(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()


class _OpenSegment:
    def __init__(self, spool: Path, first: FramePacket) -> None:
        self.id = uuid.uuid4().hex
        self.path = spool / f"{self.id}.mp4"
        self.marker = open_marker_path(spool, self.id)
        self.marker.write_text(
            json.dumps({"camera_id": first.camera_id, "stream": first.stream, "start_us": first.capture_time_us})
        )
        self.file = _HashingFile(self.path)
        self.writer = Fmp4Writer(self.file, first)
        self.session = first.source_session
        self.mask_version = first.mask_version
        self.fully_masked = first.fully_masked
        self.start_us = first.capture_time_us
        self.last_us = first.capture_time_us
        self.last_arrival = time.monotonic()

    def add(self, packet: FramePacket) -> None:
        self.writer.write(packet)
        self.last_us = packet.capture_time_us
        self.last_arrival = time.monotonic()


class SegmentBuilder:
    def __init__(self, camera_id: str, stream: str, spool: Path, duration_s: float, gap_s: float) -> None:
        self.camera_id = camera_id
        self.stream = stream
        self._spool = spool
        self._duration_us = int(duration_s * 1_000_000)
        self._gap_us = int(gap_s * 1_000_000)
        self._gap_s = gap_s
        self._open: _OpenSegment | None = None

    def add(self, packet: FramePacket) -> list[ClosedSegment]:
        closed: list[ClosedSegment] = []
        seg = self._open
        if seg is not None:
            must_cut = (
                packet.source_session != seg.session
                or packet.mask_version != seg.mask_version
                or packet.fully_masked != seg.fully_masked
                or packet.capture_time_us - seg.last_us > self._gap_us
                or packet.capture_time_us <= seg.last_us
            )
            long_enough = packet.keyframe and packet.capture_time_us - seg.start_us >= self._duration_us
            if must_cut or long_enough:
                closed.append(self._close())
                seg = None
            else:
                seg.add(packet)
                return closed
        if not (packet.keyframe and h264.has_parameter_sets(packet.data)):
            DROPPED.labels(self.camera_id, "waiting_for_keyframe").inc()
            return closed
        self._open = _OpenSegment(self._spool, packet)
        return closed

    def close_if_idle(self) -> ClosedSegment | None:
        """End the open segment when the camera has been silent longer than the gap threshold."""
        if self._open is not None and time.monotonic() - self._open.last_arrival > self._gap_s:
            return self._close()
        return None

    def close(self) -> ClosedSegment | None:
        return self._close() if self._open is not None else None

    def open_segment(self) -> OpenSegmentInfo | None:
        seg = self._open
        if seg is None:
            return None
        return OpenSegmentInfo(
            seg.id, self.camera_id, self.stream, seg.path, seg.start_us, seg.last_us, seg.mask_version
        )

    def _close(self) -> ClosedSegment:
        seg = self._open
        assert seg is not None
        self._open = None
        seg.writer.close()
        seg.file.close()
        closed = ClosedSegment(
            id=seg.id,
            camera_id=self.camera_id,
            stream=self.stream,
            start_us=seg.start_us,
            end_us=seg.writer.end_us,
            bytes=seg.file.size,
            sha256=seg.file.sha256.hexdigest(),
            frames=seg.writer.frames,
            mask_version=seg.mask_version,
            fully_masked=seg.fully_masked,
        )
        closed.save_description(self._spool)
        seg.marker.unlink(missing_ok=True)
        return closed
