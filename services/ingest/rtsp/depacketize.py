"""RTP packets of a video track to Annex B access units (H.264: RFC 6184, H.265: RFC 7798).

An access unit is every NAL unit of one RTP timestamp; it ends at the packet whose marker bit is
set, or, for a camera that never sets it, when a packet with another timestamp arrives. Each NAL
unit is written after a four-byte start code, as FFmpeg's RTSP demuxer writes them, so the packets
ingest publishes are the same whichever client read the camera.

The payloads are not copied on the way: the depacketizer keeps views of the bytes the connection
received and the access unit is one join of them. Nothing broken is passed on: an access unit with
a packet missing (a sequence number skipped) or malformed is dropped whole and counted in `lost`;
the decoder downstream then waits for the next keyframe, as it would after any loss.

A unit without a picture (parameter sets or SEI that a camera sends under a timestamp of their
own) is not a frame: its NAL units go before the next picture's, as FFmpeg's parser puts them, so
every packet published is a picture and a keyframe carries its parameter sets.

Timestamps are the RTP clock's (90 kHz for video), extended past their 32-bit wrap (about 13 hours
at 90 kHz), counted from the track's first access unit like FFmpeg's.
"""

import struct
from collections.abc import Buffer, Callable

START_CODE = b"\x00\x00\x00\x01"
_BYTE = tuple(bytes((i,)) for i in range(256))
_RTP = struct.Struct("!BBHI")
# An access unit growing past this is a camera sending garbage, not a frame.
MAX_ACCESS_UNIT = 16 * 1024 * 1024

# What receives each access unit: (Annex B data, timestamp since the first unit, keyframe).
Sink = Callable[[bytes, int, bool], None]


class Depacketizer:
    """RTP packets of one track (`push`, in arrival order) to access units (the sink)."""

    def __init__(self, payload_type: int, sink: Sink) -> None:
        self._payload_type = payload_type
        self._sink = sink
        self._parts: list[Buffer] = []
        self._size = 0
        self._ts = -1  # RTP timestamp of the unit being assembled
        self._key = False
        self._picture = False  # the unit holds a coded slice (VCL NAL unit)
        self._broken = False
        self._in_fragment = False
        self._next_seq = -1
        self._started = False
        self._last_ts = 0
        self._extended = 0
        self.lost = 0  # access units dropped (packets missing or malformed)
        self.units = 0  # access units passed on

    def push(self, data: bytes, view: memoryview, start: int, end: int) -> None:
        """One RTP packet: data[start:end] (view is memoryview(data), made once per read)."""
        if end - start < 12:
            self._broken = True
            return
        b0, b1, seq, ts = _RTP.unpack_from(data, start)
        if b0 & 0xC0 != 0x80 or b1 & 0x7F != self._payload_type:
            return  # not RTP version 2, or another payload sharing the channel
        p = start + 12 + (b0 & 0x0F) * 4
        if b0 & 0x10:  # header extension: skipped
            if p + 4 > end:
                self._broken = True
                return
            p += 4 + ((data[p + 2] << 8) | data[p + 3]) * 4
        if b0 & 0x20:  # padding: its length is the last byte
            end -= data[end - 1]
        expected, self._next_seq = self._next_seq, (seq + 1) & 0xFFFF
        if expected >= 0 and seq != expected and self._parts:
            self._broken = True
        if ts != self._ts and (self._parts or self._broken):
            self._finish()
        self._ts = ts
        if p < end:
            self._size += end - p
            if self._size > MAX_ACCESS_UNIT:
                self._broken = True
                self._parts.clear()
            else:
                self._payload(data, view, p, end)
        if b1 & 0x80:
            self._finish()

    def _payload(self, data: bytes, view: memoryview, p: int, end: int) -> None:
        raise NotImplementedError

    def _mark(self, first: int) -> None:
        """Note a NAL unit of the unit being assembled (its header's first byte): a picture, a keyframe."""
        raise NotImplementedError

    def _unit(self, unit: memoryview) -> None:
        """A whole NAL unit."""
        if self._in_fragment:
            self._broken = True  # the fragmented unit before it lost its end
        self._parts += (START_CODE, unit)
        self._mark(unit[0])

    def _aggregate(self, data: bytes, view: memoryview, q: int, end: int) -> None:
        """NAL units each after a 16-bit size (STAP-A, H.265 AP)."""
        while q + 2 <= end:
            size = (data[q] << 8) | data[q + 1]
            q += 2
            if not size or q + size > end:
                self._broken = True
                return
            self._unit(view[q : q + size])
            q += size

    def _fragment(self, fu: int, header: tuple[bytes, ...], piece: memoryview) -> None:
        """A piece of a fragmented NAL unit (FU-A, H.265 FU): fu's start and end bits say which;
        the unit's own header, rebuilt, goes before the first."""
        if fu & 0x80:
            if self._in_fragment:
                self._broken = True
            self._parts += (START_CODE, *header)
            self._in_fragment = True
            self._mark(header[0][0])
        elif not self._in_fragment:
            self._broken = True  # the unit's start was lost
            return
        self._parts.append(piece)
        if fu & 0x40:
            self._in_fragment = False

    def _finish(self) -> None:
        parts = self._parts
        if self._broken or self._in_fragment:
            self.lost += 1
        elif parts and not self._picture:
            if self._size <= MAX_ACCESS_UNIT:
                return  # parameter sets or SEI alone: kept for the next picture
            self.lost += 1
        elif parts:
            ts = self._ts
            if not self._started:
                self._started, self._last_ts = True, ts
            # Signed 32-bit difference: B-frames step back, a wrap steps forward.
            self._extended += ((ts - self._last_ts + 0x80000000) & 0xFFFFFFFF) - 0x80000000
            self._last_ts = ts
            self.units += 1
            self._sink(b"".join(parts), self._extended, self._key)
        parts.clear()
        self._size = 0
        self._key = self._picture = self._broken = self._in_fragment = False


class H264Depacketizer(Depacketizer):
    # NAL unit types: coded slice of an IDR picture, SEI (a recovery point makes a keyframe too,
    # as FFmpeg's parser counts it), aggregation (STAP-A) and fragmentation (FU-A) packets.
    IDR, SEI, STAP_A, FU_A = 5, 6, 24, 28
    RECOVERY_POINT = 6

    def _mark(self, first: int) -> None:
        kind = first & 0x1F
        if 1 <= kind <= 5:  # coded slices
            self._picture = True
            if kind == self.IDR:
                self._key = True

    def _payload(self, data: bytes, view: memoryview, p: int, end: int) -> None:
        header = data[p]
        kind = header & 0x1F
        if kind == self.FU_A:
            if p + 2 > end:
                self._broken = True
                return
            fu = data[p + 1]
            self._fragment(fu, (_BYTE[(header & 0xE0) | (fu & 0x1F)],), view[p + 2 : end])
        elif 1 <= kind <= 23:
            if kind == self.SEI and p + 1 < end and data[p + 1] == self.RECOVERY_POINT:
                self._key = True
            self._unit(view[p:end])
        elif kind == self.STAP_A:
            self._aggregate(data, view, p + 1, end)
        else:
            self._broken = True  # STAP-B, MTAP, FU-B (interleaved mode) or reserved: not sent in mode 0 or 1


class H265Depacketizer(Depacketizer):
    # NAL unit types: coded slices are 0-31, IRAP pictures (16-23) keyframes; aggregation (AP) and
    # fragmentation (FU) packets.
    AP, FU = 48, 49

    def _mark(self, first: int) -> None:
        kind = (first >> 1) & 0x3F
        if kind <= 31:  # coded slices
            self._picture = True
            if 16 <= kind <= 23:  # IRAP pictures
                self._key = True

    def _payload(self, data: bytes, view: memoryview, p: int, end: int) -> None:
        if p + 2 > end:
            self._broken = True
            return
        header = data[p]
        kind = (header >> 1) & 0x3F
        if kind == self.FU:
            if p + 3 > end:
                self._broken = True
                return
            fu = data[p + 2]
            unit_type = fu & 0x3F
            rebuilt = (_BYTE[(header & 0x81) | (unit_type << 1)], _BYTE[data[p + 1]])
            self._fragment(fu, rebuilt, view[p + 3 : end])
        elif kind < self.AP:
            self._unit(view[p:end])
        elif kind == self.AP:
            self._aggregate(data, view, p + 2, end)
        else:
            self._broken = True  # PACI or reserved


def depacketizer(codec: str, payload_type: int, sink: Sink) -> Depacketizer:
    if codec == "h264":
        return H264Depacketizer(payload_type, sink)
    if codec == "hevc":
        return H265Depacketizer(payload_type, sink)
    raise ValueError(f"no RTP depacketizer for {codec!r}")
