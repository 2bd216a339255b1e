"""A timed-text track ('tx3g', the MP4 text players show as subtitles) added to the fragmented MP4
that fmp4.Fmp4Writer writes: date, time and camera identity on every image of a stored segment and
of the live view (arrêté du 3 août 2007), one sample per second of video (and per fragment):
"2026-12-07 15:04:05 CET · Parvis de la mairie".

FFmpeg's mov muxer stops on an assertion when a subtitle stream is added to a fragmented output,
so the track is written here, between the muxer and the sink, box by box: the `moov` gains a
second `trak` and its `trex`; each `moof` gains a `traf` for the text (the video `trun`'s data
offset moves by the bytes it adds) and its `mdat` gains the text samples after the video's. The
text samples of a fragment cover exactly the video fragment's span (its `tfdt` and durations, in
the same 90 kHz time base), cut at every second of capture time (seconds are the same in UTC and
in Paris). The sink receives whole fragments, so what it hashes is the object stored; readers that
know only the video (fmp4.scan, salvage, clips) find it as the first `trak` and `traf`.

Never at the footage's cost: a muxer output this code does not expect (or a text it cannot write)
leaves the fragment as the muxer wrote it, video only (a track may have no samples in a fragment),
with a warning; a moov it cannot extend leaves the whole segment without the track.

The `mfra` index FFmpeg appends at the end is dropped: its offsets would point into the moved
boxes, it is optional, and a sealed segment never had one. Cost: about 60 bytes a second in a
segment (a sample of ~45 bytes and its 8-byte `trun` entry, ~60 bytes of `traf` a GOP), ~100 bytes
a frame in the live view (one fragment a frame); a few copies of each fragment in memory (0.5 MB a
second at 4 Mbit/s: well under a millisecond).
"""

import struct

from services.common.fmp4 import Sink, _boxes, _child, _fragment_timing, _header_defaults
from services.common.log import get_logger
from services.common.timefmt import paris_stamp

log = get_logger(__name__)

# Capture time in units of 1/9 us: exact for the 90 kHz ticks (1 tick = 100/9 us).
_NINTHS_PER_S = 9_000_000
_IDENTITY = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)


def _box(kind: bytes, *parts: bytes) -> bytes:
    payload = b"".join(parts)
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def _full(kind: bytes, version: int, flags: int, *parts: bytes) -> bytes:
    return _box(kind, struct.pack(">I", version << 24 | flags), *parts)


def sample_text(moment_us: int, camera_name: str) -> str:
    return f"{paris_stamp(moment_us)} \u00b7 {camera_name}"


def _text_trak(track_id: int) -> bytes:
    # Track enabled and in the movie; no duration (fragments carry it).
    tkhd = _full(b"tkhd", 0, 0x3, struct.pack(">IIIII8xhhhH", 0, 0, track_id, 0, 0, 0, 0, 0, 0), _IDENTITY, b"\0" * 8)
    language = (ord("f") - 0x60) << 10 | (ord("r") - 0x60) << 5 | (ord("a") - 0x60)
    mdhd = _full(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, 90_000, 0, language, 0))
    hdlr = _full(b"hdlr", 0, 0, struct.pack(">I4s12x", 0, b"sbtl"), b"Horodatage Europe/Paris\0")
    dinf = _box(b"dinf", _full(b"dref", 0, 0, struct.pack(">I", 1), _full(b"url ", 0, 1)))
    # 3GPP TS 26.245 sample entry: centred at the bottom, white 18 px text on a half-black box.
    style = struct.pack(">HHHBB4B", 0, 0, 1, 0, 18, 255, 255, 255, 255)
    font = b"Sans-Serif"
    ftab = _box(b"ftab", struct.pack(">HHB", 1, 1, len(font)), font)
    tx3g = _box(b"tx3g", b"\0" * 6, struct.pack(">HIbb4B4h", 1, 0, 1, -1, 0, 0, 0, 128, 0, 0, 0, 0), style, ftab)
    stbl = _box(
        b"stbl",
        _full(b"stsd", 0, 0, struct.pack(">I", 1), tx3g),
        _full(b"stts", 0, 0, struct.pack(">I", 0)),
        _full(b"stsc", 0, 0, struct.pack(">I", 0)),
        _full(b"stsz", 0, 0, struct.pack(">II", 0, 0)),
        _full(b"stco", 0, 0, struct.pack(">I", 0)),
    )
    minf = _box(b"minf", _full(b"nmhd", 0, 0), dinf, stbl)
    return _box(b"trak", tkhd, _box(b"mdia", mdhd, hdlr, minf))


class TimedText:
    """A sink for Fmp4Writer that passes its boxes on with the text track added (whole fragments)."""

    def __init__(self, sink: Sink, origin_us: int, camera_name: str) -> None:
        """origin_us: the capture time of the video's tick 0 (Fmp4Writer.origin_us)."""
        self._sink = sink
        self._origin_us = origin_us
        self._name = camera_name
        self._pending = bytearray()
        self._moof: tuple[bytes, int] | None = None  # the box as written, its header size
        self._track_id = 0
        self._trex_duration = 0

    def write(self, data: bytes) -> int:
        self._pending += data
        while len(self._pending) >= 8:
            size, kind = struct.unpack_from(">I4s", self._pending)
            header = 8
            if size == 1:
                if len(self._pending) < 16:
                    break
                size, header = struct.unpack_from(">Q", self._pending, 8)[0], 16
            if size < header:
                raise ValueError(f"malformed {kind!r} box from the muxer")
            if len(self._pending) < size:
                break
            box = bytes(self._pending[:size])
            del self._pending[:size]
            self._on_box(kind, box, header)
        return len(data)

    def _on_box(self, kind: bytes, box: bytes, header: int) -> None:
        if kind == b"moov":
            try:
                self._sink.write(self._moov(box[header:]))
            except Exception as exc:  # noqa: BLE001 - the text must never cost the footage: video only
                self._without_text("moov", exc)
                self._sink.write(box)
        elif kind == b"moof":
            self._moof = (box, header)
        elif kind == b"mdat":
            moof, self._moof = self._moof, None
            if moof is None or self._track_id == 0:
                self._sink.write((moof[0] if moof else b"") + box)  # no text track: as the muxer wrote it
                return
            try:
                fragment = self._fragment(moof[0][moof[1] :], box[header:], header)
            except Exception as exc:  # noqa: BLE001 - as above: this fragment without text (a track may skip one)
                self._without_text("fragment", exc)
                fragment = moof[0] + box
            self._sink.write(fragment)
        elif kind != b"mfra" or self._track_id == 0:
            self._sink.write(box)

    def _without_text(self, where: str, exc: Exception) -> None:
        log.warning("segment text track not written", where=where, error=str(exc)[:200] or type(exc).__name__)
        if where == "moov":
            self._track_id = 0

    def _moov(self, moov: bytes) -> bytes:
        mvhd = _child(moov, 0, len(moov), b"mvhd")
        mvex = _child(moov, 0, len(moov), b"mvex")
        if mvhd is None or mvex is None:
            raise ValueError("a fragmented MP4's moov has an mvhd and an mvex")
        _, self._trex_duration = _header_defaults(moov)
        # next_track_ID: the last field of mvhd; the text track takes it.
        self._track_id = struct.unpack_from(">I", moov, mvhd[1] - 4)[0]
        out = bytearray()
        for kind, start, end in _boxes(moov):
            whole = moov[start - 8 : end]
            if kind == b"mvhd":
                whole = whole[:-4] + struct.pack(">I", self._track_id + 1)
            elif kind == b"mvex":
                trex = _full(b"trex", 0, 0, struct.pack(">IIIII", self._track_id, 1, 0, 0, 0))
                out += _text_trak(self._track_id)
                whole = _box(b"mvex", moov[start:end], trex)
            out += whole
        return _box(b"moov", bytes(out))

    def _samples(self, base: int, duration: int) -> list[tuple[int, bytes]]:
        """(duration, tx3g sample) covering ticks [base, base + duration), cut at every second."""
        samples = []
        tick, end = base, base + duration
        origin = self._origin_us * 9
        while tick < end:
            second = (origin + tick * 100) // _NINTHS_PER_S
            # First tick at or after the next second (rounded up: that tick shows the new second).
            boundary = -((origin - (second + 1) * _NINTHS_PER_S) // 100)
            stop = min(boundary, end)
            text = sample_text(second * 1_000_000, self._name).encode()
            samples.append((stop - tick, struct.pack(">H", len(text)) + text))
            tick = stop
        return samples

    def _fragment(self, moof: bytes, mdat: bytes, mdat_header: int) -> bytes:
        traf = _child(moof, 0, len(moof), b"traf")
        trun = _child(moof, *traf, b"trun") if traf else None
        tfhd = _child(moof, *traf, b"tfhd") if traf else None
        if trun is None or tfhd is None:
            raise ValueError("moof without a video traf")
        if moof[tfhd[0] + 3] & 0x01 or not moof[trun[0] + 3] & 0x01:
            raise ValueError("the video fragment must be addressed from its moof (default_base_moof)")
        base, duration, _ = _fragment_timing(moof, self._trex_duration)
        samples = self._samples(base, duration)
        sizes = b"".join(struct.pack(">II", d, len(s)) for d, s in samples)
        text_traf_size = 8 + 16 + 20 + (8 + 12 + len(sizes))
        moof_size = 8 + len(moof) + text_traf_size
        moved = bytearray(moof)
        offset_at = trun[0] + 8  # version/flags, sample_count, then data_offset
        video_offset = struct.unpack_from(">i", moved, offset_at)[0]
        # The mdat is written again with an 8-byte header (a fragment is far below 4 GB).
        struct.pack_into(">i", moved, offset_at, video_offset + text_traf_size - (mdat_header - 8))
        text_offset = moof_size + 8 + len(mdat)
        text_traf = _box(
            b"traf",
            _full(b"tfhd", 0, 0x020000, struct.pack(">I", self._track_id)),
            _full(b"tfdt", 1, 0, struct.pack(">Q", base)),
            _full(b"trun", 0, 0x000301, struct.pack(">Ii", len(samples), text_offset), sizes),
        )
        assert len(text_traf) == text_traf_size
        text = b"".join(s for _, s in samples)
        return _box(b"moof", bytes(moved), text_traf) + _box(b"mdat", mdat, text)
