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
Besides the video, a segment carries a text track with the Paris date and time and the camera's
name, one sample a second (fmp4_text.py): the date, time and camera identity the arrêté du 3 août
2007 wants on every recorded image, in the stored object itself (it is hashed with it).
A segment cut on a keyframe ends exactly where the next one starts (its last frame lasts until
that keyframe), so a recording resumed from that keyframe touches it.

`seal` ends the open segment at its last complete fragment instead (a camera handed over, a stop):
the frames after it are still in the masked-frame buffer and whoever records the camera next
starts again from that keyframe (intake.py), so nothing is recorded twice and nothing is lost.

Each packet may carry an `ack`: what acknowledges it in the masked-frame buffer. A closed segment
carries the ack of its last packet, to be sent once it is stored.

Spool files of one segment: `<id>.mp4` (the bytes, growing while open), `<id>.open` (camera,
start and mask version, written when it opens and removed when it closes: after a crash it lets
salvage.py keep the complete fragments), `<id>.json` (the description, written once the bytes are
complete).
Design: docs/design/time.md
"""

import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from prometheus_client import Counter

from services.common import h264
from services.common.fmp4 import Fmp4Writer, scan
from services.common.fmp4_text import TimedText
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
    # What acknowledges the segment's last packet in the masked-frame buffer ("" when unknown).
    ack: str = ""

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
        # Sealed: what the muxer still writes (the fragment in progress, the trailer) is dropped.
        self.sealed = False

    def write(self, data: bytes) -> int:
        if self.sealed:
            return len(data)
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
    def __init__(self, spool: Path, first: FramePacket, ack: str, camera_name: str) -> None:
        self.id = uuid.uuid4().hex
        self.path = spool / f"{self.id}.mp4"
        self.marker = open_marker_path(spool, self.id)
        self.marker.write_text(
            json.dumps(
                {
                    "camera_id": first.camera_id,
                    "stream": first.stream,
                    "start_us": first.capture_time_us,
                    "mask_version": first.mask_version,
                    "fully_masked": first.fully_masked,
                }
            )
        )
        self.file = _HashingFile(self.path)
        self.writer = Fmp4Writer(TimedText(self.file, first.capture_time_us, camera_name), first)
        self.session = first.source_session
        self.mask_version = first.mask_version
        self.fully_masked = first.fully_masked
        self.start_us = first.capture_time_us
        self.last_us = first.capture_time_us
        self.last_arrival = time.monotonic()
        self.ack = ack
        # (capture time of each keyframe after the first, ack of the packet just before it): where
        # a sealed segment ends, and what acknowledges its last packet.
        self.fragment_starts: list[tuple[int, str]] = []

    def add(self, packet: FramePacket, ack: str) -> None:
        if packet.keyframe:
            self.fragment_starts.append((packet.capture_time_us, self.ack))
        self.writer.write(packet)
        self.last_us = packet.capture_time_us
        self.last_arrival = time.monotonic()
        self.ack = ack


class SegmentBuilder:
    def __init__(
        self,
        camera_id: str,
        stream: str,
        spool: Path,
        duration_s: float,
        gap_s: float,
        name_for: Callable[[str], str] | None = None,
    ) -> None:
        """name_for: the camera's name now (read as each segment opens: a renamed camera's next
        segment carries its new name); the camera's id without it."""
        self.camera_id = camera_id
        self._name_for = name_for
        self.stream = stream
        self._spool = spool
        self._duration_us = int(duration_s * 1_000_000)
        self._gap_us = int(gap_s * 1_000_000)
        self._gap_s = gap_s
        self._open: _OpenSegment | None = None

    def add(self, packet: FramePacket, ack: str = "") -> list[ClosedSegment]:
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
                # Recording goes on from this packet: the last frame lasts until it.
                follows = 0 < packet.capture_time_us - seg.last_us <= self._gap_us
                closed.append(self._close(packet.capture_time_us if follows else None))
                seg = None
            else:
                seg.add(packet, ack)
                return closed
        if not (packet.keyframe and h264.has_parameter_sets(packet.data)):
            DROPPED.labels(self.camera_id, "waiting_for_keyframe").inc()
            return closed
        name = self._name_for(self.camera_id) if self._name_for is not None else self.camera_id
        self._open = _OpenSegment(self._spool, packet, ack, name)
        return closed

    def close_if_idle(self) -> ClosedSegment | None:
        """End the open segment when the camera has been silent longer than the gap threshold."""
        if self._open is not None and time.monotonic() - self._open.last_arrival > self._gap_s:
            return self._close()
        return None

    def close(self) -> ClosedSegment | None:
        return self._close() if self._open is not None else None

    def seal(self) -> ClosedSegment | None:
        """End the open segment at its last complete fragment; None when it has none (nothing kept).

        The fragment being written is dropped: its frames are recorded again by whoever takes the
        camera next, from its keyframe (see the module's docstring).
        """
        seg = self._open
        if seg is None:
            return None
        self._open = None
        seg.file.sealed = True
        seg.writer.close()
        seg.file.close()
        with seg.path.open("rb") as file:
            found = scan(file)
        if found.fragments == 0 or found.complete_bytes != seg.file.size:
            seg.path.unlink(missing_ok=True)
            seg.marker.unlink(missing_ok=True)
            return None
        end_us = seg.start_us + found.end_ticks * 1_000_000 // found.timescale
        # The fragment after the last complete one starts on a keyframe at end_us (to the tick).
        ack = next((a for at, a in seg.fragment_starts if at >= end_us - 1_000), seg.ack)
        return self._describe(seg, end_us, found.complete_bytes, found.frames, ack)

    def open_segment(self) -> OpenSegmentInfo | None:
        seg = self._open
        if seg is None:
            return None
        return OpenSegmentInfo(
            seg.id, self.camera_id, self.stream, seg.path, seg.start_us, seg.last_us, seg.mask_version
        )

    def _close(self, next_us: int | None = None) -> ClosedSegment:
        seg = self._open
        assert seg is not None
        self._open = None
        seg.writer.close(next_us)
        seg.file.close()
        return self._describe(seg, seg.writer.end_us, seg.file.size, seg.writer.frames, seg.ack)

    def _describe(self, seg: _OpenSegment, end_us: int, size: int, frames: int, ack: str) -> ClosedSegment:
        closed = ClosedSegment(
            id=seg.id,
            camera_id=self.camera_id,
            stream=self.stream,
            start_us=seg.start_us,
            end_us=end_us,
            bytes=size,
            sha256=seg.file.sha256.hexdigest(),
            frames=frames,
            mask_version=seg.mask_version,
            fully_masked=seg.fully_masked,
            ack=ack,
        )
        closed.save_description(self._spool)
        seg.marker.unlink(missing_ok=True)
        return closed
