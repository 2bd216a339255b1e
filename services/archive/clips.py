"""Clips of any time range, built on request by remuxing segments (never re-encoding).

The clip starts on the keyframe at or before the requested start (a decoder needs it; at most one
GOP early) and ends with the last frame captured before the requested end. Samples are placed by
capture time, so a hole in the recording is a held frame, and the player's clock is the camera's.

Besides the video the MP4 carries:
- a timestamp subtitle track (mov_text, the MP4 text format players show as subtitles): one cue
  per second with the camera's name, the UTC time and the Europe/Paris time — the date, time and
  camera identity every image must carry (arrêté du 3 août 2007);
- the camera's name and the range in its metadata (title, comment).

The index (moov) comes before the media, so a browser can start playing and seek with HTTP range
requests as soon as the first bytes arrive. Cost (bench/archive.py, target <= 2x a byte copy of
the segments): FFmpeg's "faststart" moves the index to the front by rewriting the whole file once
more at the end; instead, space for the index is reserved at the front (`moov_size`, sized from
the range at MOOV_BYTES_PER_S, a padding "free" box after it), and faststart is used only when a
clip's index outgrows it (the clip is then written again). Segments are opened without FFmpeg's
stream probing (our segments describe themselves in their moov): 15 -> 9 ms a segment.

Sources are file objects: segments downloaded from the store, waiting in the spool, or the one
being written (read up to its last complete fragment: live-to-recent).
"""

import io
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av
from av.subtitles.subtitle import SubtitleSet

from services.common.clock import from_us
from services.common.log import get_logger
from services.common.timefmt import PARIS

log = get_logger(__name__)
VIDEO_TB = Fraction(1, 90_000)
TEXT_TB = Fraction(1, 1000)
# mov_text is encoded from ASS events; this header gives them a readable default style.
ASS_HEADER = b"""[Script Info]
ScriptType: v4.00+
PlayResX: 640
PlayResY: 360

[V4+ Styles]
Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, \
Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, \
MarginV, Encoding
Style: Default,Sans,16,&H00FFFFFF,&H000000FF,&H00000000,&H80000000,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,1

[Events]
Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text
"""


# Our segments' moov describes the stream: no need for FFmpeg to read ahead and decode to find out.
NO_PROBING = {"probesize": "32", "analyzeduration": "0", "fpsprobesize": "0"}
# Index bytes reserved per second of clip: a sample costs at most ~16 bytes of index (size, time,
# chunk offset, keyframe): 60 frames and a cue a second; plus a fixed part. A 10 fps hour uses 0.3 MB.
MOOV_BYTES_PER_S = 1_000
MOOV_FIXED_BYTES = 64 * 1024


class IndexTooLarge(RuntimeError):
    """The clip's index did not fit the space reserved for it."""


class NothingRecorded(LookupError):
    """No frame of the camera falls in the range."""


@dataclass(frozen=True)
class ClipSource:
    segment_id: str
    # Capture time of the segment's first frame: its samples' time zero.
    start_us: int
    open: Callable[[], BinaryIO]
    # The segment being written: its last fragment may be incomplete.
    growing: bool = False


@dataclass(frozen=True)
class ClipResult:
    path: Path
    size: int
    start_us: int
    end_us: int
    frames: int
    segments: int


def cue_text(camera_name: str, moment_us: int) -> str:
    utc = from_us(moment_us)
    paris = utc.astimezone(PARIS)
    # "\N" is the ASS line break; mov_text keeps it as a new line.
    return f"{camera_name}\\N{utc:%Y-%m-%d %H:%M:%S} UTC \u00b7 {paris:%d/%m/%Y %H:%M:%S} Paris"


def _packets(source: ClipSource, raw: BinaryIO) -> Iterator[tuple[av.Packet, int, av.video.stream.VideoStream]]:
    """The source's video packets with their capture times (and the stream, a muxing template)."""
    try:
        container = av.open(raw, mode="r", format="mp4", options=NO_PROBING)
    except av.error.FFmpegError:
        raw.close()
        if source.growing:
            return  # not even one complete fragment yet
        raise
    with raw, container:
        stream = container.streams.video[0]
        tb = stream.time_base or VIDEO_TB
        demuxed = container.demux(stream)
        while True:
            try:
                packet = next(demuxed)
            except StopIteration:
                return
            except (av.error.InvalidDataError, av.error.EOFError, EOFError):
                if source.growing:
                    return  # the fragment being written: stop at the last complete one
                raise
            if packet.pts is None or packet.size == 0:
                continue
            yield packet, source.start_us + int(packet.pts * tb.numerator * 1_000_000 // tb.denominator), stream


def build_clip(
    sources: Sequence[ClipSource], start_us: int, end_us: int, camera_id: str, camera_name: str, out: Path
) -> ClipResult:
    """Write the MP4 of [start_us, end_us) to `out`; NothingRecorded when no frame falls in it."""
    reserve = MOOV_FIXED_BYTES + MOOV_BYTES_PER_S * max(1, (end_us - start_us) // 1_000_000)
    try:
        return _build(sources, start_us, end_us, camera_id, camera_name, out, reserve)
    except IndexTooLarge:
        log.warning("clip index larger than reserved: written again with faststart", camera=camera_id)
        return _build(sources, start_us, end_us, camera_id, camera_name, out, 0)


def _build(
    sources: Sequence[ClipSource],
    start_us: int,
    end_us: int,
    camera_id: str,
    camera_name: str,
    out: Path,
    reserve: int,
) -> ClipResult:
    ordered = sorted(sources, key=lambda s: s.start_us)
    # The next segment is fetched (from the store, to a file) while this one is remuxed.
    prefetch = ThreadPoolExecutor(1, thread_name_prefix="clip-fetch")
    opened = [prefetch.submit(ordered[0].open)] if ordered else []
    consumed = 0
    writer: _ClipWriter | None = None
    gop: list[tuple[av.Packet, int]] = []
    started = False
    used: set[str] = set()
    try:
        for n, source in enumerate(ordered):
            raw = opened[n].result()
            consumed = n + 1
            if n + 1 < len(ordered):
                opened.append(prefetch.submit(ordered[n + 1].open))
            try:
                for packet, capture_us, stream in _packets(source, raw):
                    if capture_us >= end_us:
                        break
                    if not started:
                        # Keep the current GOP until a frame reaches the start: the clip begins at
                        # that GOP's keyframe.
                        if packet.is_keyframe:
                            gop = [(packet, capture_us)]
                        elif gop:
                            gop.append((packet, capture_us))
                        if not gop or capture_us < start_us:
                            continue
                        started = True
                        writer = _ClipWriter(out, stream, gop[0][1], camera_id, camera_name, start_us, end_us, reserve)
                        for held, held_us in gop:
                            writer.write(held, held_us)
                        gop = []
                        used.add(source.segment_id)
                        continue
                    assert writer is not None
                    writer.write(packet, capture_us)
                    used.add(source.segment_id)
            except av.error.FFmpegError as exc:
                log.error("segment unreadable while building a clip", segment=source.segment_id, error=str(exc))
                raise
        if writer is None:
            raise NothingRecorded(
                f"nothing was recorded between {from_us(start_us):%Y-%m-%d %H:%M:%S} and "
                f"{from_us(end_us):%Y-%m-%d %H:%M:%S} UTC"
            )
        return writer.finish(len(used))
    except BaseException:
        if writer is not None:
            writer.abort()
        out.unlink(missing_ok=True)
        raise
    finally:
        prefetch.shutdown(wait=True)
        for future in opened[consumed:]:
            if future.done() and future.exception() is None:
                future.result().close()


class _ClipWriter:
    def __init__(
        self,
        out: Path,
        template: av.video.stream.VideoStream,
        origin_us: int,
        camera_id: str,
        camera_name: str,
        start_us: int,
        end_us: int,
        reserve: int = 0,
    ) -> None:
        self._out_path = out
        options = {"moov_size": str(reserve)} if reserve else {"movflags": "+faststart"}
        self._output = av.open(str(out), "w", format="mp4", options=options)
        self._output.metadata["title"] = camera_name
        self._output.metadata["comment"] = (
            f"camera {camera_id} ({camera_name}); requested {from_us(start_us).isoformat()} to "
            f"{from_us(end_us).isoformat()}"
        )
        self._output.metadata["creation_time"] = from_us(origin_us).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        self._video = self._output.add_stream_from_template(template)
        self._video.time_base = VIDEO_TB
        self._text = self._output.add_stream("mov_text")
        self._text.codec_context.subtitle_header = ASS_HEADER
        self._text.time_base = TEXT_TB
        self._text.metadata["language"] = "fre"
        self._text.metadata["handler_name"] = "Horodatage UTC / Europe-Paris"
        self._output.start_encoding()
        self._camera_name = camera_name
        self.origin_us = origin_us
        self._last_ts = -1
        self._last_duration = 0
        self._next_cue_us = origin_us
        self.frames = 0
        self.end_us = origin_us

    def write(self, packet: av.Packet, capture_us: int) -> None:
        self._cues_until(capture_us)
        ts = max((capture_us - self.origin_us) * 9 // 100, self._last_ts + 1)
        packet.pts = packet.dts = ts
        packet.time_base = VIDEO_TB
        packet.stream = self._video
        duration = packet.duration or self._last_duration or 9_000
        self._output.mux(packet)
        self._last_ts, self._last_duration = ts, duration
        self.frames += 1
        self.end_us = self.origin_us + (ts + duration) * 100 // 9

    def _cues_until(self, until_us: int) -> None:
        """Cues for every second up to until_us: one per UTC second, the first one partial."""
        while self._next_cue_us <= until_us:
            start = self._next_cue_us
            end = start - start % 1_000_000 + 1_000_000
            subtitle = SubtitleSet.create(
                text=f"0,0,Default,,0,0,0,,{cue_text(self._camera_name, start)}".encode(),
                start=0,
                end=(end - start) // 1000,
                pts=0,
            )
            packet = self._text.codec_context.encode_subtitle(subtitle)
            packet.pts = packet.dts = (start - self.origin_us) // 1000
            packet.duration = (end - start) // 1000
            packet.time_base = TEXT_TB
            packet.stream = self._text
            self._output.mux(packet)
            self._next_cue_us = end

    def finish(self, segments: int) -> ClipResult:
        self._cues_until(self.end_us - 1)
        try:
            self._output.close()
        except av.error.FFmpegError as exc:
            raise IndexTooLarge(str(exc)) from exc
        return ClipResult(
            path=self._out_path,
            size=self._out_path.stat().st_size,
            start_us=self.origin_us,
            end_us=self.end_us,
            frames=self.frames,
            segments=segments,
        )

    def abort(self) -> None:
        try:
            self._output.close()
        except Exception:  # noqa: BLE001 - already failing; the file is removed
            pass


class HeldFile:
    """A spool file opened now, so it stays readable after the recorder stores and removes it."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDONLY)

    def open(self) -> BinaryIO:
        fd = os.dup(self._fd)
        os.lseek(fd, 0, os.SEEK_SET)
        return os.fdopen(fd, "rb")

    def close(self) -> None:
        os.close(self._fd)


def snapshot(path: Path) -> Callable[[], BinaryIO]:
    """An opener for the segment being written: its bytes as they are now."""
    data = path.read_bytes()
    return lambda: io.BytesIO(data)
