"""RTSP/1.0 messages (RFC 2326): the requests ingest writes, the responses (and rare requests) a
camera writes back on the same connection, between interleaved RTP packets."""

from dataclasses import dataclass

USER_AGENT = "csu-ingest"
# A camera's message head longer than this is not an RTSP message: the stream is garbage.
MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 1024 * 1024


class MessageError(ValueError):
    """Bytes that are not an RTSP message where one was due."""


@dataclass(frozen=True)
class Message:
    """A response (status > 0) or a request from the camera (method set); header names in lower case."""

    start_line: str
    status: int
    reason: str
    method: str
    headers: dict[str, list[str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = self.headers.get(name)
        return values[0] if values else None

    @property
    def cseq(self) -> int | None:
        value = self.header("cseq")
        return int(value) if value is not None and value.strip().isdigit() else None


def request(method: str, url: str, cseq: int, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"{method} {url} RTSP/1.0", f"CSeq: {cseq}", f"User-Agent: {USER_AGENT}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def response(status: int, reason: str, cseq: int | None, headers: dict[str, str] | None = None) -> bytes:
    """An answer to a request the camera sent us."""
    lines = [f"RTSP/1.0 {status} {reason}"] + ([f"CSeq: {cseq}"] if cseq is not None else [])
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def head_end(data: bytes, pos: int) -> tuple[int, int]:
    """Where the head of the message at pos ends, and the length of its blank line ((-1, 0): not
    all here). Some cameras end their lines with a bare LF."""
    limit = pos + MAX_HEAD_BYTES + 4
    ends = [(i, n) for i, n in ((data.find(b"\r\n\r\n", pos, limit), 4), (data.find(b"\n\n", pos, limit), 2)) if i >= 0]
    return min(ends) if ends else (-1, 0)


def parse_head(head: bytes) -> tuple[str, int, str, str, dict[str, list[str]]]:
    """(start line, status, reason, method, headers) of a message head (without its blank line)."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = head.decode("latin-1")
    lines = text.split("\r\n") if "\r\n" in text else text.split("\n")
    start = lines[0].strip()
    status, reason, method = 0, "", ""
    if start.startswith("RTSP/"):
        parts = start.split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise MessageError(f"malformed status line {start[:80]!r}")
        status, reason = int(parts[1]), parts[2] if len(parts) > 2 else ""
    else:
        parts = start.split(" ")
        if len(parts) != 3 or not parts[2].startswith("RTSP/") or not parts[0].replace("_", "").isalpha():
            raise MessageError(f"not an RTSP message: {start[:80]!r}")
        method = parts[0].upper()
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise MessageError(f"malformed header line {line[:80]!r}")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return start, status, reason, method, headers


def content_length(headers: dict[str, list[str]]) -> int:
    values = headers.get("content-length")
    if not values:
        return 0
    value = values[0].strip()
    if not value.isdigit() or int(value) > MAX_BODY_BYTES:
        raise MessageError(f"unacceptable Content-Length {value[:20]!r}")
    return int(value)


def looks_like_message(data: bytes, pos: int) -> bool:
    """Whether an RTSP message (response, or a request from the camera) may start at pos."""
    first = data[pos : pos + 1]
    return first.isalpha() and first.isupper()


def session_id(value: str) -> tuple[str, float | None]:
    """The Session header's id and its timeout in seconds (None when the camera gives none)."""
    ident, _, params = value.partition(";")
    timeout = None
    for param in params.split(";"):
        name, _, number = param.strip().partition("=")
        if name.lower() == "timeout" and number.strip().isdigit():
            timeout = float(number.strip())
    return ident.strip(), timeout


def interleaved_channels(transport: str) -> tuple[int, int] | None:
    """The (RTP, RTCP) channels a SETUP answer's Transport header names, if any."""
    for param in transport.split(";"):
        name, _, value = param.strip().partition("=")
        if name.lower() == "interleaved":
            first, _, second = value.partition("-")
            if first.strip().isdigit():
                rtp = int(first)
                rtcp = int(second) if second.strip().isdigit() else rtp + 1
                return rtp, rtcp
    return None
