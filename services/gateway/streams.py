"""The one way the gateway reads a backend's server-streaming call: with a bound on silence.

A unary call gets its deadline from the channel (backends.channel, 10 s). A stream's deadline for
the whole call must be long (an hour of footage is a clip of hundreds of MiB), so alone it let a
frozen backend (SIGSTOP: its TCP connection stays up, nothing answers) hold a clip request for
300 s (issue 23). Every stream the gateway reads goes through `Relay`: the first message must come
within `first_s` (CSU_STREAM_STALL_S unless the caller knows its first byte takes longer), each
next within CSU_STREAM_STALL_S, or the call is cancelled and:

- before the HTTP response started, the answer is a 504 naming the service; an audited action of
  the request records `failed` with that reason (audit_outcome.py);
- after it started, the transfer is aborted (the connection drops before the announced length),
  so the client sees a truncated transfer, never a file that looks complete.

A message with its `progress` field set (the backend is building the first byte: a clip, a kiosk
clip) resets the timer and is not passed on. gRPC errors are raised as they are, for the caller's
usual mapping (backends.rpc_errors).
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any, overload

import grpc
from fastapi import HTTPException

from services.common.log import get_logger

log = get_logger(__name__)


class TransferAborted(RuntimeError):
    """A stream failed after the HTTP response started: the connection is dropped mid-body."""


class Relay:
    def __init__(
        self,
        call: "grpc.aio.UnaryStreamCall[Any, Any]",
        service: str,
        stall_s: float,
        first_s: float | None = None,
    ) -> None:
        self._call = call
        self.service = service
        self.stall_s = stall_s
        self._bound = first_s if first_s is not None else stall_s

    def cancel(self) -> None:
        self._call.cancel()

    async def read(self) -> Any | None:
        """The next message that is not progress; None at the end of the stream."""
        while True:
            bound, self._bound = self._bound, self.stall_s
            try:
                message = await asyncio.wait_for(self._call.read(), bound)
            except TimeoutError:
                self._call.cancel()
                log.warning("backend stream stalled", service=self.service, waited_s=bound)
                raise HTTPException(
                    504, f"the {self.service} service did not answer within {bound:g} s; try again shortly"
                ) from None
            if message is grpc.aio.EOF:
                return None
            if _is_progress(message):
                continue
            return message

    @overload
    async def first(self, errors: AbstractAsyncContextManager[None], without_info: str) -> Any: ...
    @overload
    async def first(self, errors: AbstractAsyncContextManager[None], without_info: None = None) -> Any | None: ...
    async def first(self, errors: AbstractAsyncContextManager[None], without_info: str | None = None) -> Any | None:
        """The first message, read under `errors` (the caller's gRPC-to-HTTP mapping), before the
        HTTP response starts; with `without_info`, a stream that does not begin with its `info` is
        a 502 saying that. The call is cancelled if this raises."""
        try:
            async with errors:
                message = await self.read()
            if without_info is not None and (message is None or not message.HasField("info")):
                raise HTTPException(502, without_info)
        except BaseException:
            self._call.cancel()
            raise
        return message

    async def rest(self) -> AsyncIterator[Any]:
        while (message := await self.read()) is not None:
            yield message

    async def body(self, head: Any | None = None) -> AsyncIterator[bytes]:
        """The `data` of `head` and of every message after it, for a StreamingResponse (whose
        headers are sent by then): a stall or an error aborts the transfer; the call ends with it."""
        try:
            if head is not None:
                yield head.data
            async for message in self.rest():
                yield message.data
        except HTTPException as exc:
            raise TransferAborted(f"{exc.detail} (the transfer was cut short)") from exc
        except grpc.aio.AioRpcError as exc:
            log.warning("backend stream failed mid-transfer", service=self.service, code=exc.code().name)
            raise TransferAborted(f"the {self.service} service failed mid-transfer: {exc.code().name}") from exc
        finally:
            self._call.cancel()


def _is_progress(message: Any) -> bool:
    return "progress" in message.DESCRIPTOR.fields_by_name and message.HasField("progress")
