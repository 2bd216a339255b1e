"""An RTSP session with a camera, from DESCRIBE to TEARDOWN, over one TCP connection.

`RtspSession.open` connects, asks OPTIONS (what the camera offers, for the keep-alive), DESCRIBE
(following up to MAX_REDIRECTS redirects), SETUP of the first video track with RTP interleaved
on the connection, and PLAY; from then on the track's access units go to the sink given. A 401 is
answered once with the URL's credentials (Digest preferred); a second 401 means they are wrong.

Every refusal is a SourceError whose words an operator can act on, in the same terms as FFmpeg's
("cannot open <url>: <why>", services/ingest/sources.py), and never with the URL's credentials.
A camera whose video track this client does not read (another codec, an H.265 stream with
decoding-order numbers), or that refuses its SETUP or PLAY as not taken (INCOMPATIBLE), raises
`NotHandled`: the worker then reads it with FFmpeg.
"""

import asyncio
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from services.ingest.rtsp import messages
from services.ingest.rtsp.auth import AuthError, Authorizer
from services.ingest.rtsp.connection import ConnectionFailed, RtspConnection, ignore
from services.ingest.rtsp.depacketize import Depacketizer, Sink, depacketizer
from services.ingest.rtsp.messages import Message
from services.ingest.rtsp.sdp import SdpError, VideoTrack, video_track
from services.ingest.sources import SourceError, describe

DEFAULT_PORT = 554
MAX_REDIRECTS = 3
# The keep-alive goes at half the session timeout the camera gives (60 s when it gives none).
DEFAULT_SESSION_TIMEOUT_S = 60.0
_REFUSALS = {
    403: "access refused by the camera (403 Forbidden)",
    404: "no such stream on the camera (404 Not Found)",
    454: "the camera ended the session (454 Session Not Found)",
    461: "the camera refuses RTSP over TCP (461 Unsupported Transport): set the camera's transport to udp",
}


# A camera refusing this client's SETUP or PLAY in these terms (a request it does not take as
# written) may still take FFmpeg's: the camera is handed to FFmpeg rather than left offline.
INCOMPATIBLE = {400, 405, 406, 451, 455, 457, 458, 459, 460, 501, 551}


class NotHandled(Exception):
    """The camera's video is not for this client (FFmpeg reads it); the message says what it is."""


class Refused(SourceError):
    """The camera answered a request with an error status."""

    def __init__(self, message: str, method: str, status: int) -> None:
        super().__init__(message)
        self.method, self.status = method, status


@dataclass(frozen=True)
class Target:
    """Where a camera URL points, split: what goes on the wire never carries the credentials."""

    url: str  # without credentials
    host: str
    port: int
    username: str
    password: str

    @classmethod
    def of(cls, url: str) -> "Target":
        try:
            parts = urlsplit(url)
            host, port = parts.hostname, parts.port or DEFAULT_PORT
        except ValueError as exc:
            raise SourceError(f"malformed URL: {exc}") from exc
        if not host:
            raise SourceError("malformed URL: no host")
        netloc = f"[{host}]" if ":" in host else host
        if parts.port:
            netloc += f":{parts.port}"
        bare = parts._replace(netloc=netloc).geturl()
        return cls(bare, host, port, unquote(parts.username or ""), unquote(parts.password or ""))


class RtspSession:
    def __init__(
        self, connection: RtspConnection, target: Target, authorizer: Authorizer, track: VideoTrack, timeout: float
    ) -> None:
        self.connection = connection
        self.target = target
        self.track = track
        self._authorizer = authorizer
        self._timeout = timeout
        self._session = ""
        self._keepalive_method = "OPTIONS"
        self.keepalive_s = DEFAULT_SESSION_TIMEOUT_S / 2
        self.depacketizer: Depacketizer | None = None

    @classmethod
    async def open(cls, url: str, timeout: float, sink: Sink) -> "RtspSession":
        """Playing, its access units going to sink; SourceError or NotHandled otherwise. `timeout`
        bounds each answer and the whole opening: a camera answering slowly at every step must not
        hold the stream for five times its limit."""
        try:
            async with asyncio.timeout(timeout):
                return await cls._open(url, timeout, sink)
        except SourceError as exc:
            raise SourceError(f"cannot open {describe(url)}: {exc}") from exc
        except TimeoutError as exc:
            raise SourceError(f"cannot open {describe(url)}: the camera did not open within {timeout:g} s") from exc

    @classmethod
    async def _open(cls, url: str, timeout: float, sink: Sink) -> "RtspSession":
        target = Target.of(url)
        authorizer = Authorizer(target.username, target.password)
        for _ in range(MAX_REDIRECTS + 1):
            connection = await _connect(target, timeout)
            try:
                offered = await _options(connection, target, authorizer, timeout)
                described = await _ask(connection, target, authorizer, "DESCRIBE", target.url, timeout,
                                       {"Accept": "application/sdp"}, redirect=True)  # fmt: skip
                if isinstance(described, str):
                    connection.close()
                    target = _redirected(target, described)
                    continue
                base = described.header("content-base") or described.header("content-location") or target.url
                try:
                    track = video_track(described.body, base)
                except SdpError as exc:
                    raise SourceError(str(exc)) from exc
                _check_handled(track)
                session = cls(connection, target, authorizer, track, timeout)
                if "GET_PARAMETER" in offered:
                    session._keepalive_method = "GET_PARAMETER"
                try:
                    await session._setup(sink)
                    await session._play()
                except Refused as exc:
                    if exc.status in INCOMPATIBLE:
                        raise NotHandled(f"the camera refused this client's {exc.method} ({exc})") from exc
                    raise
                return session
            except BaseException:
                connection.close()
                raise
        raise SourceError(f"more than {MAX_REDIRECTS} redirects")

    async def _setup(self, sink: Sink) -> None:
        answer = await self._ask("SETUP", self.track.control, {"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"})
        ident, session_timeout = messages.session_id(answer.header("session") or "")
        if not ident:
            raise SourceError("the camera answered SETUP without a session")
        self._session = ident
        if session_timeout:
            self.keepalive_s = max(1.0, session_timeout / 2)
        channels = messages.interleaved_channels(answer.header("transport") or "") or (0, 1)
        self.depacketizer = depacketizer(self.track.codec, self.track.payload_type, sink)
        self.connection.on_channel(channels[0], self.depacketizer.push)
        self.connection.on_channel(channels[1], ignore)  # RTCP: sender reports are not needed here

    async def _play(self) -> None:
        await self._ask("PLAY", self.track.session_control, {"Session": self._session, "Range": "npt=0.000-"})

    async def keepalive(self) -> None:
        """Keep the session open (a camera ends one it hears nothing from); a refusal ends it."""
        method, url = self._keepalive_method, self.track.session_control
        try:
            answer = await _ask(self.connection, self.target, self._authorizer, method, url, self._timeout,
                                {"Session": self._session}, accept_refusal=True)  # fmt: skip
        except (SourceError, ConnectionFailed, TimeoutError) as exc:
            self.connection.fail(SourceError(f"{describe(self.target.url)}: keep-alive failed: {exc}"))
            return
        assert isinstance(answer, Message)
        if answer.status in (405, 501) and method == "GET_PARAMETER":
            self._keepalive_method = "OPTIONS"  # offered, but not for us: OPTIONS from now on
        elif answer.status == 454:
            self.connection.fail(SourceError(f"{describe(self.target.url)}: {_REFUSALS[454]}"))

    def close(self) -> None:
        """TEARDOWN (best effort: the camera frees the session at once) and close."""
        if self._session:
            headers = {"Session": self._session}
            auth = self._authorizer.header("TEARDOWN", self.track.session_control)
            if auth:
                headers["Authorization"] = auth
            try:
                self.connection.send("TEARDOWN", self.track.session_control, headers)
            except ConnectionFailed:
                pass
        self.connection.close()

    async def _ask(self, method: str, url: str, headers: dict[str, str]) -> Message:
        answer = await _ask(self.connection, self.target, self._authorizer, method, url, self._timeout, headers)
        assert isinstance(answer, Message)
        return answer


async def _connect(target: Target, timeout: float) -> RtspConnection:
    try:
        return await RtspConnection.open(target.host, target.port, timeout)
    except TimeoutError as exc:
        raise SourceError(f"no answer within {timeout:g} s") from exc
    except ConnectionRefusedError as exc:
        raise SourceError("Connection refused") from exc
    except OSError as exc:
        raise SourceError(exc.strerror or str(exc)) from exc


async def _options(connection: RtspConnection, target: Target, authorizer: Authorizer, timeout: float) -> set[str]:
    """The methods the camera offers (a camera that does not answer OPTIONS well still streams)."""
    answer = await _ask(connection, target, authorizer, "OPTIONS", target.url, timeout, {}, accept_refusal=True)
    assert isinstance(answer, Message)
    if not 200 <= answer.status < 300:
        return set()
    return {m.strip().upper() for m in (answer.header("public") or "").split(",")}


async def _ask(
    connection: RtspConnection,
    target: Target,
    authorizer: Authorizer,
    method: str,
    url: str,
    timeout: float,
    headers: dict[str, str],
    *,
    redirect: bool = False,
    accept_refusal: bool = False,
) -> Message | str:
    """The camera's answer; a 401 is answered once with the credentials. With redirect, a 3xx
    gives its Location instead; with accept_refusal, other refusals are returned, not raised.
    SourceError says why in words without the URL (the caller says where)."""
    for attempt in range(2):
        sent = dict(headers)
        auth = authorizer.header(method, url)
        if auth:
            sent["Authorization"] = auth
        try:
            answer = await connection.request(method, url, sent, timeout)
        except TimeoutError as exc:
            raise SourceError(f"the camera did not answer {method} within {timeout:g} s") from exc
        except ConnectionFailed as exc:
            raise SourceError(str(exc)) from exc
        if answer.status != 401:
            break
        if not authorizer.has_credentials:
            raise SourceError("no credentials for the camera (it answered 401 Unauthorized)")
        if attempt:
            raise SourceError("wrong credentials (the camera answered 401 Unauthorized)")
        try:
            authorizer.challenged(answer.headers.get("www-authenticate", []))
        except AuthError as exc:
            raise SourceError(str(exc)) from exc
    if redirect and 300 <= answer.status < 400 and answer.header("location"):
        return answer.header("location") or ""
    if 200 <= answer.status < 300 or accept_refusal:
        return answer
    words = _REFUSALS.get(answer.status, f"the camera refused {method} ({answer.status} {answer.reason})")
    raise Refused(words, method, answer.status)


def _redirected(target: Target, location: str) -> Target:
    moved = Target.of(location)
    if moved.username or moved.password:
        return moved
    # The camera's redirect keeps its credentials (urlsplit gives none back in the location).
    return Target(moved.url, moved.host, moved.port, target.username, target.password)


def _check_handled(track: VideoTrack) -> None:
    if track.codec not in ("h264", "hevc"):
        raise NotHandled(f"the camera sends {track.codec} over RTP")
    mode = track.fmtp.get("packetization-mode", "0")
    if track.codec == "h264" and mode not in ("0", "1"):
        raise NotHandled(f"H.264 in RTP packetization mode {mode}")
    if track.codec == "hevc" and track.fmtp.get("sprop-max-don-diff", "0") not in ("", "0"):
        raise NotHandled("H.265 with decoding-order numbers (sprop-max-don-diff)")
