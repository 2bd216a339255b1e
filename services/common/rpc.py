"""gRPC plumbing shared by the services: one way to start a server and to open a channel."""

from collections.abc import Callable

import grpc

from services.common import tracing

# Segments are streamed in 1 MiB chunks; leave room for framing.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
# A channel whose peer is away fails calls at once and retries the connection with a growing
# delay, by default up to 120 s: a gateway would go on answering 503 for two minutes after a
# backend that was restarted for a while is back. Inside the cluster a reconnect every 2 s is cheap.
RECONNECT_BACKOFF_MS = (500, 2000)
_OPTIONS = [
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


def channel(target: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(target, options=_OPTIONS, interceptors=tracing.client_interceptors())
