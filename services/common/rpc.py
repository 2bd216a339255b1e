"""gRPC plumbing shared by the services: one way to start a server and to open a channel."""

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import grpc

from services.common import tracing

# Segments are streamed in 1 MiB chunks; leave room for framing.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
# A channel whose peer is away fails calls at once and retries the connection with a growing
# delay, by default up to 120 s: a gateway would go on answering 503 for two minutes after a
# backend that was restarted for a while is back. Inside the cluster a reconnect every 2 s is cheap.
RECONNECT_BACKOFF_MS = (500, 2000)
# A server-streaming call whose first byte takes real work (an hour of 1080p remuxed into a clip:
# a minute or more on a busy archive) sends a progress message this often meanwhile: the gateway
# takes 30 s of silence (CSU_STREAM_STALL_S) as a frozen peer, so 2 s leaves fifteen beats of
# margin for a loaded event loop, for a message of a few bytes.
PROGRESS_EVERY_S = 2.0
# A refusal's message travels in the trailing metadata, which gRPC caps at 8 KiB (soft) / 16 KiB
# (hard) by default: a handler refusing a 60,000-character field in its own words reached the user as
# a 413 "received metadata size exceeds hard limit". refusals.abort cuts its messages to 2,000
# characters; for every other abort the channels carry up to 256 KiB and the gateway shows 300.
MAX_METADATA_BYTES = 256 * 1024
_OPTIONS = [
    ("grpc.max_metadata_size", MAX_METADATA_BYTES),
    ("grpc.absolute_max_metadata_size", MAX_METADATA_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.initial_reconnect_backoff_ms", RECONNECT_BACKOFF_MS[0]),
    ("grpc.min_reconnect_backoff_ms", RECONNECT_BACKOFF_MS[0]),
    ("grpc.max_reconnect_backoff_ms", RECONNECT_BACKOFF_MS[1]),
]


async def start_server(address: str, register: list[Callable[[grpc.aio.Server], None]]) -> grpc.aio.Server:
    server = grpc.aio.server(options=_OPTIONS, interceptors=tracing.server_interceptors())
    for add in register:
        add(server)
    if server.add_insecure_port(address) == 0:
        raise RuntimeError(f"gRPC server could not listen on {address}")
    await server.start()
    return server


class _Deadline(grpc.aio.UnaryUnaryClientInterceptor, grpc.aio.StreamUnaryClientInterceptor):
    """Gives a call made without a timeout the channel's default one: no call waits forever on a
    frozen peer. (Streams of media keep the deadline their caller sets; the gateway also bounds
    their silence: services/gateway/streams.py.)"""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s

    def _bounded(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        if details.timeout is not None:
            return details
        return grpc.aio.ClientCallDetails(
            details.method, self.timeout_s, details.metadata, details.credentials, details.wait_for_ready
        )

    async def intercept_unary_unary(self, continuation, client_call_details, request):
        return await continuation(self._bounded(client_call_details), request)

    async def intercept_stream_unary(self, continuation, client_call_details, request_iterator):
        return await continuation(self._bounded(client_call_details), request_iterator)


def channel(target: str, default_timeout_s: float | None = None) -> grpc.aio.Channel:
    """A channel to `target`; with `default_timeout_s`, every call made without a timeout gets it."""
    interceptors = list(tracing.client_interceptors())
    if default_timeout_s is not None:
        interceptors.append(_Deadline(default_timeout_s))
    return grpc.aio.insecure_channel(target, options=_OPTIONS, interceptors=interceptors)


async def while_working(work: "asyncio.Future[Any]", every_s: float = PROGRESS_EVERY_S) -> AsyncIterator[float]:
    """The seconds elapsed, every `every_s` until `work` is done (then read work.result()): what a
    streaming handler sends as progress while it prepares its first byte."""
    started = time.monotonic()
    try:
        while True:
            done, _ = await asyncio.wait({work}, timeout=every_s)
            if done:
                return
            yield time.monotonic() - started
    finally:
        if not work.done():  # the caller went away (cancelled): what the work raises goes unread
            work.add_done_callback(lambda w: w.cancelled() or w.exception())


class StreamStalled(RuntimeError):
    """A server stream said nothing for its bound on silence; the call was cancelled."""


async def next_message[T](call: grpc.aio.UnaryStreamCall[Any, T], stall_s: float | None = None) -> T | None:
    """The next message of a server stream, None once it has ended: read() answers grpc.aio.EOF
    then, which grpcio's type stubs can only call an object.

    With `stall_s`, a stream silent that long is cancelled and StreamStalled raised: a frozen peer
    (SIGSTOP, a hung disk) keeps its connection up, so only silence shows it, and the whole call's
    deadline (15 to 30 minutes for a clip) is far too long to wait. Streams that build before their
    first byte send progress messages (every 2 s) to stay under the bound."""
    if stall_s is None:
        message = await call.read()
    else:
        try:
            message = await asyncio.wait_for(call.read(), stall_s)
        except TimeoutError:
            call.cancel()
            raise StreamStalled(f"nothing received for {stall_s:g} s") from None
    return None if message is grpc.aio.EOF else cast(T, message)
