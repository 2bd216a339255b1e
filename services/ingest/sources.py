"""Video sources: open a URL with PyAV and yield its encoded packets, never decoding them.

- rtsp:// (TCP by default, UDP on request) and http(s):// (e.g. MJPEG) are live: the camera sets
  the pace.
- A file path (or file://) is played in a loop at its own frame rate, like a camera that never
  stops; its timestamps keep increasing across loops.
- demo://<scene> is a synthetic camera (see demo.py) for `make run` and tests without files.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import av
import av.error


class SourceError(RuntimeError):
    """The source cannot be opened or stopped delivering; the message says why, for operators."""


@dataclass(frozen=True)
class SourcePacket:
    data: bytes
    # Presentation time in seconds on the source's own timeline (None when the source gives none).
    pts_s: float | None
    # Decode time in seconds, always increasing: used to pace non-live sources.
    dts_s: float
    pts: int
    dts: int
    time_base: Fraction
    keyframe: bool


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
    scheme = urlsplit(url).scheme.lower()
    if scheme == "demo":
        from services.ingest.demo import DemoSource

        return DemoSource(url)
    if scheme in ("rtsp", "rtsps", "http", "https"):
        options = {"rtsp_transport": transport} if scheme.startswith("rtsp") else {}
        return AvSource(url, options, (open_timeout, read_timeout), live=True)
    path = Path(url[len("file://") :] if scheme == "file" else url)
    if scheme not in ("", "file") or not path.is_file():
        raise SourceError(f"unsupported or missing source {describe(url)!r}")
    return AvSource(str(path), {}, (open_timeout, read_timeout), live=False)


def describe(url: str) -> str:
    """The URL without credentials: safe for logs, statuses and the API."""
    parts = urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return parts._replace(netloc=f"***@{netloc}").geturl()


class AvSource:
    def __init__(self, url: str, options: dict[str, str], timeout: tuple[float, float], live: bool) -> None:
        self._url = url
        try:
            self._container = av.open(url, options=options, timeout=timeout)
        except av.error.FFmpegError as exc:
            raise SourceError(f"cannot open {describe(url)}: {_reason(exc)}") from exc
        if not self._container.streams.video:
            self._container.close()
            raise SourceError(f"{describe(url)} has no video stream")
        self._stream = self._container.streams.video[0]
        ctx = self._stream.codec_context
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
        frame_ticks = int(1 / (self.info.frame_rate * tb)) if self.info.frame_rate > 0 else 1
        offset = 0  # added to every timestamp after each loop of a file
        while True:
            last_dts = None
            first_dts = None
            try:
                for packet in self._container.demux(self._stream):
                    if packet.size == 0:
                        continue
                    dts = packet.dts if packet.dts is not None else packet.pts
                    if dts is None:
                        dts = (last_dts + frame_ticks) if last_dts is not None else 0
                    pts = packet.pts if packet.pts is not None else dts
                    if first_dts is None:
                        first_dts = dts
                    last_dts = dts
                    yield SourcePacket(
                        data=bytes(packet),
                        pts_s=float((pts + offset) * tb) if packet.pts is not None else None,
                        dts_s=float((dts + offset) * tb),
                        pts=pts + offset,
                        dts=dts + offset,
                        time_base=tb,
                        keyframe=packet.is_keyframe,
                    )
            except av.error.FFmpegError as exc:
                raise SourceError(f"{describe(self._url)}: {_reason(exc)}") from exc
            if self.info.live or last_dts is None or first_dts is None:
                raise SourceError(f"{describe(self._url)}: stream ended")
            offset += last_dts - first_dts + frame_ticks
            self._container.seek(0, stream=self._stream)

    def close(self) -> None:
        self._container.close()


def _reason(exc: av.error.FFmpegError) -> str:
    return exc.strerror or type(exc).__name__
