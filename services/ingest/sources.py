"""Video sources: open a URL with PyAV and yield its encoded packets, never decoding them.

- rtsp:// (TCP by default, UDP on request) and http(s):// (e.g. MJPEG) are live: the camera sets
  the pace.
- A file path (or file://) is played in a loop at its own frame rate, like a camera that never
  stops; its timestamps keep increasing across loops.
- demo://<scene> is a synthetic camera (see demo.py) for `make run` and tests without files.
- simptz://<name> is a simulated PTZ camera (see ptz/sim.py): its driver's pan/tilt/zoom select
  the view of a large scene, and every packet carries the position it was rendered at.

Only video codecs that the rest of the platform can take are accepted; the rest is refused with a
reason (the camera's status). A live source that delivers no video for the read timeout (a frozen
camera, a cut cable, a stream of audio only) fails with a watchdog reason and is reconnected.
"""

import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import av
import av.error
from av.rational import AVRational

# Longest stretch of a live stream FFmpeg reads while opening it (its probe).
PROBE_S = 1.0
# Codecs passed through untouched; masking decodes them once.
SUPPORTED_CODECS = {"h264": "H.264", "hevc": "H.265", "mjpeg": "MJPEG", "mpeg4": "MPEG-4 Part 2"}


class SourceError(RuntimeError):
    """The source cannot be opened or stopped delivering; the message says why, for operators."""


@dataclass(slots=True)  # not frozen: a frozen dataclass costs more to build than demuxing the packet
class SourcePacket:
    # The encoded packet: bytes, or a view of the demuxer's own buffer, read once into the envelope
    # (copying every packet out of PyAV first would cost a copy and an allocation per packet).
    data: bytes | memoryview
    # Presentation time in seconds on the source's own timeline (None when the source gives none).
    pts_s: float | None
    # Decode time in seconds, always increasing: used to pace non-live sources.
    dts_s: float
    pts: int
    dts: int
    time_base: AVRational | Fraction  # PyAV answers its own AVRational; synthetic sources a Fraction
    keyframe: bool
    # Simulated PTZ cameras: the pan/tilt/zoom this image was rendered at, and whether it moved.
    ptz: tuple[float, float, float] | None = None
    moving: bool = False


@dataclass(frozen=True)
class StreamInfo:
    codec: str
    extradata: bytes
    width: int
    height: int
    frame_rate: float
    # True when the source delivers in real time by itself (a camera); False for files and the
    # demo scene, which ingest paces to their frame rate.
    live: bool


class Source(Protocol):
    info: StreamInfo

    def packets(self) -> Iterator[SourcePacket]: ...

    def close(self) -> None: ...


def open_source(url: str, transport: str, open_timeout: float, read_timeout: float) -> Source:
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError as exc:
        raise SourceError(f"malformed URL {describe(url)!r}: {exc}") from exc
    if scheme == "demo":
        from services.ingest.demo import DemoSource

        return DemoSource(url)
    if scheme == "simptz":
        from services.ingest.ptz.sim import SimPtzSource

        return SimPtzSource(url)
    if scheme in ("rtsp", "rtsps", "http", "https"):
        return AvSource(url, live_options(scheme, transport, read_timeout), open_timeout, read_timeout, live=True)
    path = Path(url[len("file://") :] if scheme == "file" else url)
    if scheme not in ("", "file"):
        raise SourceError(f"unsupported source {describe(url)!r}")
    if not path.is_file():
        raise SourceError(f"no such file {describe(url)!r}")
    # A local file does not stall: no read timeout.
    return AvSource(str(path), {}, open_timeout, read_timeout, live=False)


def live_options(scheme: str, transport: str, read_timeout: float) -> dict[str, str]:
    """FFmpeg's options for a live camera (rtsp, rtsps, http, https): the bench's bare loop uses them too."""
    options = {"rtsp_transport": transport} if scheme.startswith("rtsp") else {}
    # Probe at most PROBE_S of a live stream: enough to learn an RTSP/HTTP camera's codec (its
    # SDP or first frames carry it), and it bounds how early the first packets may date from.
    options["analyzeduration"] = str(int(PROBE_S * 1_000_000))
    # The watchdog on reads is FFmpeg's own socket timeout (RTSP's, or TCP's under HTTP), in µs.
    # PyAV's read timeout would do the same from an interrupt callback that FFmpeg calls on every
    # socket read and that takes the GIL each time: with 32 camera threads that callback cost
    # four times the demuxing itself (bench/ingest.py). PyAV keeps the open timeout only.
    options["timeout"] = str(int(read_timeout * 1_000_000))
    return options


def describe(url: str) -> str:
    """The URL without credentials: safe for logs, statuses and the API."""
    try:
        parts = urlsplit(url)
        if parts.password is None and parts.username is None:
            return url
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
    except ValueError:
        # Unparseable: drop everything between the scheme and the last "@", where credentials sit.
        head, sep, tail = url.partition("://")
        return f"{head}{sep}***@{tail.rpartition('@')[2]}" if "@" in tail else url
    return parts._replace(netloc=f"***@{netloc}").geturl()


class AvSource:
    def __init__(self, url: str, options: dict[str, str], open_timeout: float, read_timeout: float, live: bool) -> None:
        """`read_timeout` is the watchdog's limit for a live source without video; `options` enforce
        it on reads (PyAV's timeout covers the open only: see open_source)."""
        self._url = url
        self._read_timeout = read_timeout
        try:
            self._container = av.open(url, options=options, timeout=(open_timeout, None))
        except av.error.FFmpegError as exc:
            raise SourceError(f"cannot open {describe(url)}: {_reason(exc, open_timeout)}") from exc
        if not self._container.streams.video:
            self._container.close()
            raise SourceError(f"{describe(url)} has no video stream")
        self._stream = self._container.streams.video[0]
        ctx = self._stream.codec_context
        if ctx.name not in SUPPORTED_CODECS:
            self._container.close()
            raise SourceError(
                f"unsupported codec {ctx.name!r} from {describe(url)}: ingest takes "
                f"{', '.join(SUPPORTED_CODECS.values())}"
            )
        rate = self._stream.average_rate or self._stream.guessed_rate or 0
        self.info = StreamInfo(
            codec=ctx.name,
            extradata=bytes(ctx.extradata or b""),
            width=ctx.width,
            height=ctx.height,
            frame_rate=float(rate),
            live=live,
        )

    def packets(self) -> Iterator[SourcePacket]:
        tb = self._stream.time_base or Fraction(1, 90_000)
        tb_s = float(tb)  # float arithmetic per packet: Fractions cost more than the demuxing
        frame_ticks = int(1 / (self.info.frame_rate * tb)) if self.info.frame_rate > 0 else 1
        video = self._stream.index
        live = self.info.live
        read_timeout = self._read_timeout
        monotonic = time.monotonic
        offset = 0  # added to every timestamp after each loop of a file
        while True:
            last_dts = None
            first_dts = None
            last_video = monotonic()
            try:
                # Every stream is demuxed so a camera sending only audio (or data) trips the watchdog.
                for packet in self._container.demux():
                    if packet.stream_index != video or packet.size == 0:
                        if live and monotonic() - last_video > read_timeout:
                            raise SourceError(f"{describe(self._url)}: no video for {read_timeout:g} s (watchdog)")
                        continue
                    if live:
                        last_video = monotonic()
                    # Each PyAV attribute read is a call: read once.
                    packet_pts, dts = packet.pts, packet.dts
                    if dts is None:
                        dts = packet_pts
                        if dts is None:
                            dts = (last_dts + frame_ticks) if last_dts is not None else 0
                    pts = packet_pts if packet_pts is not None else dts
                    if first_dts is None:
                        first_dts = dts
                    last_dts = dts
                    pts += offset
                    dts += offset
                    # Positional: data, pts_s, dts_s, pts, dts, time_base, keyframe.
                    yield SourcePacket(
                        memoryview(packet),
                        pts * tb_s if packet_pts is not None else None,
                        dts * tb_s,
                        pts,
                        dts,
                        tb,
                        packet.is_keyframe,
                    )
            except av.error.FFmpegError as exc:
                raise SourceError(f"{describe(self._url)}: {_reason(exc, self._read_timeout)}") from exc
            if self.info.live or last_dts is None or first_dts is None:
                raise SourceError(f"{describe(self._url)}: stream ended")
            offset += last_dts - first_dts + frame_ticks
            self._container.seek(0, stream=self._stream)

    def close(self) -> None:
        self._container.close()


def _reason(exc: av.error.FFmpegError, timeout: float) -> str:
    """FFmpeg's error in words an operator can act on."""
    text = exc.strerror or type(exc).__name__
    lowered = text.lower()
    if "401" in text or "unauthorized" in lowered:
        return "wrong credentials (the camera answered 401 Unauthorized)"
    if "403" in text or "forbidden" in lowered:
        return "access refused by the camera (403 Forbidden)"
    if "404" in text:
        return "no such stream on the camera (404 Not Found)"
    if "immediate exit" in lowered or "timed out" in lowered:
        return f"no data from the camera for {timeout:g} s (watchdog)"
    if "invalid data" in lowered:
        return "the camera sends data that is not a video stream (invalid data)"
    if "end of file" in lowered:
        return "the camera closed the stream"
    return text
