"""Fragmented MP4 from masked H.264 packets, without decoding (archive segments and live view).

PyAV cannot describe an H.264 stream from codec parameters alone without opening an encoder
(which would replace the stream's SPS/PPS with its own), so the output stream is templated on a
stream parsed from the first keyframe's in-band parameter sets: the MP4's avcC then describes
exactly the bytes we copy.

Time: samples are placed by capture time (the envelope's capture_time_us), rebased to the first
packet, in a 90 kHz time base; a sample's duration is the gap to the next one (the last sample
repeats the previous gap). So an MP4 plays at the cadence the camera captured.
"""

import io
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

    def write(self, data) -> int:  # type: ignore[no-untyped-def,override]
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

    def close(self) -> None:
        if self._pending is not None:
            self._mux(self._pending, None)
            self._pending = None
        self._output.close()
        self._template.close()
