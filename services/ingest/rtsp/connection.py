"""One TCP connection to a camera: RTSP messages both ways, RTP packets interleaved from it.

RFC 2326 §10.12: on the RTSP connection, an interleaved packet is "$", a channel byte, a 16-bit
length and the packet; everything else is an RTSP message (a response, or now and then a request
from the camera). `data_received` walks what the kernel handed over in place and gives each
packet of a registered channel to its handler as (data, view, start, end); only a packet cut by the
end of a read is carried over (copied) to the next. Bytes that are neither are skipped up to the
next "$" and counted: past MAX_GARBAGE_BYTES in a row the camera is not speaking RTSP and the
connection fails; so do packets on channels SETUP did not give (garbage holding a "$").
"""

import asyncio
import time
from collections.abc import Callable

from services.ingest.rtsp import messages
from services.ingest.rtsp.messages import Message, MessageError

Handler = Callable[[bytes, memoryview, int, int], None]


def ignore(data: bytes, view: memoryview, start: int, end: int) -> None:
    """The handler of a channel whose packets are not read (RTCP's)."""


MAX_GARBAGE_BYTES = 1024 * 1024


class ConnectionFailed(ConnectionError):
    """The camera closed the connection or sent what cannot be read; the message says which."""


class RtspConnection(asyncio.Protocol):
    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._carry = b""
        self._cseq = 0
        self._waiting: dict[int, asyncio.Future[Message]] = {}
        self._channels: dict[int, Handler] = {}
        self._garbage = 0
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.last_data = time.monotonic()

    @classmethod
    async def open(cls, host: str, port: int, timeout: float) -> "RtspConnection":
        """Connected; OSError (refused, unreachable, unknown host) or TimeoutError otherwise."""
        loop = asyncio.get_running_loop()
        _, connection = await asyncio.wait_for(loop.create_connection(cls, host, port), timeout)
        return connection

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._end(ConnectionFailed(f"connection lost: {exc}") if exc else None)

    def data_received(self, data: bytes) -> None:
        if self._carry:
            data, self._carry = self._carry + data, b""
        self.last_data = time.monotonic()
        size = len(data)
        view = memoryview(data)
        channels = self._channels
        pos = 0
        while pos < size:
            if data[pos] == 0x24:  # "$": an interleaved packet
                if pos + 4 > size:
                    break
                end = pos + 4 + ((data[pos + 2] << 8) | data[pos + 3])
                if end > size:
                    break
                handler = channels.get(data[pos + 1])
                if handler is not None:
                    handler(data, view, pos + 4, end)
                    self._garbage = 0
                else:
                    # A camera sends on the channels SETUP gave it: a "packet" elsewhere is garbage
                    # that happened to hold a "$".
                    self._garbage += end - pos
                    if self._garbage > MAX_GARBAGE_BYTES:
                        self.fail(ConnectionFailed("the camera sends data that is not RTSP (invalid data)"))
                        return
                pos = end
                continue
            if messages.looks_like_message(data, pos):
                try:
                    after = self._message(data, pos)
                except MessageError:
                    after = None
                if after == -1:
                    break  # incomplete: wait for the rest
                if after is not None:
                    pos = after
                    self._garbage = 0
                    continue
            skip = data.find(b"$", pos + 1)
            skip = size if skip < 0 else skip
            self._garbage += skip - pos
            if self._garbage > MAX_GARBAGE_BYTES:
                self.fail(ConnectionFailed("the camera sends data that is not RTSP (invalid data)"))
                return
            pos = skip
        if pos < size:
            self._carry = data[pos:]

    # -- messages ------------------------------------------------------------------------------

    def _message(self, data: bytes, pos: int) -> int | None:
        """Where the message at pos ends (-1: not all here yet); MessageError if it is none."""
        head_end, blank = messages.head_end(data, pos)
        if head_end < 0:
            if len(data) - pos > messages.MAX_HEAD_BYTES:
                raise MessageError("no end to the message head")
            return -1
        start, status, reason, method, headers = messages.parse_head(data[pos:head_end])
        body_start = head_end + blank
        body_end = body_start + messages.content_length(headers)
        if body_end > len(data):
            return -1
        message = Message(start, status, reason, method, headers, data[body_start:body_end])
        if message.method:
            self._answer(message)
        else:
            waiter = self._waiting.pop(message.cseq, None) if message.cseq is not None else None
            if waiter is None and message.cseq is None and self._waiting:
                waiter = self._waiting.pop(min(self._waiting))  # a camera that drops CSeq answers in order
            if waiter is not None and not waiter.done():
                waiter.set_result(message)
        return body_end

    def _answer(self, request: Message) -> None:
        # A camera's own GET_PARAMETER or OPTIONS is a keep-alive of its own; nothing else is taken.
        if request.method in ("GET_PARAMETER", "OPTIONS"):
            self.write(messages.response(200, "OK", request.cseq))
        else:
            self.write(messages.response(551, "Option not supported", request.cseq))

    async def request(self, method: str, url: str, headers: dict[str, str], timeout: float) -> Message:
        """Send a request and wait for its response; ConnectionFailed or TimeoutError otherwise."""
        cseq = self._cseq + 1
        waiter: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._waiting[cseq] = waiter
        try:
            self.send(method, url, headers)
            return await asyncio.wait_for(waiter, timeout)
        finally:
            self._waiting.pop(cseq, None)

    def send(self, method: str, url: str, headers: dict[str, str]) -> None:
        """Send a request whose answer nobody waits for (TEARDOWN)."""
        self._cseq += 1
        self.write(messages.request(method, url, self._cseq, headers))

    def write(self, data: bytes) -> None:
        if self._transport is None or self._transport.is_closing():
            raise ConnectionFailed("the connection is closed")
        self._transport.write(data)

    # -- channels and the end ------------------------------------------------------------------

    def on_channel(self, channel: int, handler: Handler) -> None:
        self._channels[channel] = handler

    def fail(self, error: Exception) -> None:
        """End the connection with this error (the session's reason)."""
        self._end(error)
        self.close()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _end(self, error: Exception | None) -> None:
        if not self.closed.done():
            if error is None:
                self.closed.set_result(None)
            else:
                self.closed.set_exception(error)
                self.closed.exception()  # retrieved: whoever waits on it reads it again
        for waiter in self._waiting.values():
            if not waiter.done():
                waiter.set_exception(error or ConnectionFailed("the camera closed the connection"))
        self._waiting.clear()
