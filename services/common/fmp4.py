"""Fragmented MP4 from masked H.264 packets, without decoding (archive segments and live view).

PyAV cannot describe an H.264 stream from codec parameters alone without opening an encoder
(which would replace the stream's SPS/PPS with its own), so the output stream is templated on a
stream parsed from the first keyframe's in-band parameter sets: the MP4's avcC then describes
exactly the bytes we copy.

Reading back (`scan`): the complete fragments of a segment file whose writing stopped anywhere
(archive/salvage.py), with their timing (`tfdt` + the sample durations of `trun`/`tfhd`/`trex`, in
the track's `mdhd` timescale). A seek per top-level box, plus the `moof`s (a few hundred bytes each).

Time: samples are placed by capture time (the envelope's capture_time_us), rebased to the first
packet, in a 90 kHz time base; a sample's duration is the gap to the next one (the last sample
repeats the previous gap). So an MP4 plays at the cadence the camera captured.
"""

import io
import struct
from dataclasses import dataclass
from fractions import Fraction
from typing import BinaryIO, Protocol

import av

from services.common import h264
from services.common.pb.csu.v1.frame_pb2 import FramePacket

TIME_BASE = Fraction(1, 90_000)
# Archive segments: one fragment per GOP, so seeks land on keyframes.
SEGMENT_MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof"
# Live view: one fragment per frame, so a frame leaves as soon as it arrives.
LIVE_MOVFLAGS = "frag_every_frame+empty_moov+default_base_moof"


class Sink(Protocol):
    def write(self, data: bytes) -> int: ...


class _Forward(io.RawIOBase):
    """A write-only file object handing every chunk the muxer writes to a sink."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        chunk = bytes(data)
        self._sink.write(chunk)
        return len(chunk)


class Fmp4Writer:
    def __init__(self, sink: Sink | BinaryIO, first: FramePacket, live: bool = False) -> None:
        """live: mux each packet at once with the nominal frame duration (no one-frame hold)."""
        if not first.keyframe or not h264.has_parameter_sets(first.data):
            raise ValueError("an MP4 must start on a keyframe carrying its SPS and PPS")
        self._template = av.open(io.BytesIO(first.data), format="h264")
        self._output = av.open(
            _Forward(sink),
            "w",
            format="mp4",
            options={"movflags": LIVE_MOVFLAGS if live else SEGMENT_MOVFLAGS, "flush_packets": "1"},
        )
        self._stream = self._output.add_stream_from_template(self._template.streams.video[0])
        self._stream.time_base = TIME_BASE
        self.origin_us = first.capture_time_us
        self._live = live
        self._pending: FramePacket | None = None
        self._last_ts = -1
        self._last_duration = 0
        self._nominal = round(90_000 / first.frame_rate) if first.frame_rate > 0 else 9_000
        self.frames = 0
        self.end_us = first.capture_time_us
        self.write(first)

    def _ticks(self, capture_us: int) -> int:
        return (capture_us - self.origin_us) * 9 // 100

    def write(self, packet: FramePacket) -> None:
        """Mux a packet. Outside live mode each is held until the next arrives and gives its duration."""
        if self._live:
            self._mux(packet, None)
            return
        if self._pending is not None:
            self._mux(self._pending, self._ticks(packet.capture_time_us))
        self._pending = packet

    def _mux(self, packet: FramePacket, next_ts: int | None) -> None:
        ts = max(self._ticks(packet.capture_time_us), self._last_ts + 1)
        if next_ts is not None and next_ts > ts:
            duration = next_ts - ts
        else:
            duration = self._last_duration or self._nominal
        out = av.Packet(packet.data)
        out.pts = out.dts = ts
        out.duration = duration
        out.time_base = TIME_BASE
        out.is_keyframe = packet.keyframe
        out.stream = self._stream
        self._output.mux(out)
        self._last_ts, self._last_duration = ts, duration
        self.frames += 1
        # Capture time just after this sample: where the MP4's covered interval ends.
        self.end_us = self.origin_us + (ts + duration) * 100 // 9

    def close(self, next_us: int | None = None) -> None:
        """Write what is held; next_us: the capture time of the frame that follows (it ends the last one)."""
        if self._pending is not None:
            self._mux(self._pending, self._ticks(next_us) if next_us is not None else None)
            self._pending = None
        self._output.close()
        self._template.close()


# -- reading back -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scan:
    """What a (possibly cut) fragmented MP4 holds in complete fragments."""

    complete_bytes: int  # the file up to the end of its last complete fragment
    fragments: int
    frames: int
    end_ticks: int  # decode time just after the last complete fragment's last sample
    timescale: int


def _boxes(data: bytes, start: int = 0, end: int | None = None) -> list[tuple[bytes, int, int]]:
    """(type, payload offset, box end) of the complete boxes in data[start:end]."""
    end = len(data) if end is None else end
    found = []
    offset = start
    while offset + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, offset)
        header = 8
        if size == 1:
            if offset + 16 > end:
                break
            size = struct.unpack_from(">Q", data, offset + 8)[0]
            header = 16
        if size < header or offset + size > end:
            break
        found.append((kind, offset + header, offset + size))
        offset += size
    return found


def _child(data: bytes, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    for k, a, b in _boxes(data, start, end):
        if k == kind:
            return a, b
    return None


def _header_defaults(moov: bytes) -> tuple[int, int]:
    """(timescale from mdhd, default sample duration from trex) of the moov's first track (the video)."""
    timescale, default_duration = 90_000, 0
    trak = _child(moov, 0, len(moov), b"trak")
    mdia = _child(moov, *trak, b"mdia") if trak else None
    mdhd = _child(moov, *mdia, b"mdhd") if mdia else None
    if mdhd is not None:
        version = moov[mdhd[0]]
        timescale = struct.unpack_from(">I", moov, mdhd[0] + (20 if version == 1 else 12))[0]
    mvex = _child(moov, 0, len(moov), b"mvex")
    trex = _child(moov, *mvex, b"trex") if mvex else None
    if trex is not None:
        default_duration = struct.unpack_from(">I", moov, trex[0] + 12)[0]
    return timescale, default_duration


def _fragment_timing(moof: bytes, trex_duration: int) -> tuple[int, int, int]:
    """(base decode time, summed duration, sample count) of the moof's first traf (the video)."""
    traf = _child(moof, 0, len(moof), b"traf")
    if traf is None:
        raise ValueError("moof without traf")
    default_duration = trex_duration
    tfhd = _child(moof, *traf, b"tfhd")
    if tfhd is not None:
        flags = int.from_bytes(moof[tfhd[0] + 1 : tfhd[0] + 4])
        cursor = tfhd[0] + 8  # version/flags, track_ID
        for bit, width in ((0x01, 8), (0x02, 4)):  # base-data-offset, sample-description-index
            if flags & bit:
                cursor += width
        if flags & 0x08:
            default_duration = struct.unpack_from(">I", moof, cursor)[0]
    base = 0
    tfdt = _child(moof, *traf, b"tfdt")
    if tfdt is not None:
        version = moof[tfdt[0]]
        base = struct.unpack_from(">Q" if version == 1 else ">I", moof, tfdt[0] + 4)[0]
    trun = _child(moof, *traf, b"trun")
    if trun is None:
        raise ValueError("traf without trun")
    flags = int.from_bytes(moof[trun[0] + 1 : trun[0] + 4])
    count = struct.unpack_from(">I", moof, trun[0] + 4)[0]
    cursor = trun[0] + 8
    cursor += 4 if flags & 0x001 else 0  # data-offset
    cursor += 4 if flags & 0x004 else 0  # first-sample-flags
    per_sample = [(0x100, 4), (0x200, 4), (0x400, 4), (0x800, 4)]
    stride = sum(width for bit, width in per_sample if flags & bit)
    if not flags & 0x100:
        return base, count * default_duration, count
    total = 0
    for i in range(count):
        total += struct.unpack_from(">I", moof, cursor + i * stride)[0]
    return base, total, count


def scan(file: BinaryIO) -> Scan:
    """The complete fragments of a fragmented MP4 file (an empty scan when not even the header is whole)."""
    size = file.seek(0, 2)
    offset = 0
    complete, fragments, frames, end_ticks = 0, 0, 0, 0
    timescale, trex_duration = 90_000, 0
    header_done = False
    moof: bytes | None = None
    while offset + 8 <= size:
        file.seek(offset)
        head = file.read(16)
        box_size, kind = struct.unpack_from(">I4s", head)
        header = 8
        if box_size == 1 and len(head) >= 16:
            box_size, header = struct.unpack_from(">Q", head, 8)[0], 16
        if box_size < header or offset + box_size > size:
            break  # the box being written when the writing stopped
        if kind == b"moov":
            file.seek(offset + header)
            timescale, trex_duration = _header_defaults(file.read(box_size - header))
            header_done = True
            complete = offset + box_size
        elif kind == b"moof":
            file.seek(offset + header)
            moof = file.read(box_size - header)
        elif kind == b"mdat" and moof is not None and header_done:
            base, duration, count = _fragment_timing(moof, trex_duration)
            fragments += 1
            frames += count
            end_ticks = base + duration
            complete = offset + box_size
            moof = None
        offset += box_size
    return Scan(complete if fragments else 0, fragments, frames, end_ticks, timescale)
