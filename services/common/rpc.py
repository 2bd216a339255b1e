"""gRPC plumbing shared by the services: one way to start a server and to open a channel."""

from collections.abc import Callable

import grpc

# Segments are streamed in 1 MiB chunks; leave room for framing.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
]


async def start_server(address: str, register: list[Callable[[grpc.aio.Server], None]]) -> grpc.aio.Server:
    server = grpc.aio.server(options=_OPTIONS)
    for add in register:
        add(server)
    if server.add_insecure_port(address) == 0:
        raise RuntimeError(f"gRPC server could not listen on {address}")
    await server.start()
    return server


def channel(target: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(target, options=_OPTIONS)
