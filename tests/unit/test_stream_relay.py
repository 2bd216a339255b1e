"""The gateway's bound on a backend stream's silence (issue 23), against a real gRPC server in this
process: a stream that says nothing is cancelled with a 504 naming the service; progress messages
keep a long build alive; a stall after the first bytes aborts the transfer; errors map as before."""

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from fastapi import HTTPException

from services.common import rpc
from services.common.pb.csu.v1 import archive_pb2, archive_pb2_grpc
from services.gateway.backends import rpc_errors
from services.gateway.streams import Relay, TransferAborted
from tests.support.servers import free_port

STALL_S = 1.5
# Far more often than STALL_S: a loaded machine still gets a beat in every window.
BEAT_S = 0.1
INFO = archive_pb2.ClipChunk(info=archive_pb2.ClipInfo(size=6, filename="c.mp4"))


class Archive(archive_pb2_grpc.ArchiveServiceServicer):
    """OpenClip by camera id: "frozen" never answers, "slow" builds for twice the bound with
    progress, "cut" stalls after its first bytes, "gone" is NOT_FOUND."""

    def __init__(self) -> None:
        self.cancelled = asyncio.Event()

    async def OpenClip(self, request, context) -> AsyncIterator[archive_pb2.ClipChunk]:  # type: ignore[no-untyped-def]
        try:
            if request.camera_id == "gone":
                await context.abort(grpc.StatusCode.NOT_FOUND, "nothing was recorded")
            if request.camera_id == "frozen":
                await asyncio.Event().wait()
            if request.camera_id == "slow":
                build = asyncio.ensure_future(asyncio.sleep(2 * STALL_S))
                async for elapsed in rpc.while_working(build, BEAT_S):
                    yield archive_pb2.ClipChunk(progress=archive_pb2.Preparing(elapsed_s=elapsed))
            yield INFO
            yield archive_pb2.ClipChunk(data=b"abc")
            if request.camera_id == "cut":
                await asyncio.Event().wait()
            yield archive_pb2.ClipChunk(data=b"def")
        except asyncio.CancelledError:
            self.cancelled.set()
            raise


@pytest.fixture
async def archive() -> AsyncIterator[tuple[Archive, archive_pb2_grpc.ArchiveServiceStub]]:
    servicer = Archive()
    address = f"127.0.0.1:{free_port()}"
    server = await rpc.start_server(
        address, [lambda s: archive_pb2_grpc.add_ArchiveServiceServicer_to_server(servicer, s)]
    )
    channel = rpc.channel(address)
    try:
        yield servicer, archive_pb2_grpc.ArchiveServiceStub(channel)
    finally:
        await channel.close()
        await server.stop(None)


def relay(stub: archive_pb2_grpc.ArchiveServiceStub, camera_id: str) -> Relay:
    return Relay(stub.OpenClip(archive_pb2.ClipRequest(camera_id=camera_id), timeout=60), "archive", STALL_S)


async def test_a_silent_stream_is_a_504_naming_the_service_and_is_cancelled(archive) -> None:  # type: ignore[no-untyped-def]
    servicer, stub = archive
    with pytest.raises(HTTPException) as refused:
        await relay(stub, "frozen").first(rpc_errors("archive"), "no clip")
    assert refused.value.status_code == 504
    assert refused.value.detail == f"the archive service did not answer within {STALL_S:g} s; try again shortly"
    await asyncio.wait_for(servicer.cancelled.wait(), 10)  # the backend's handler was told


async def test_progress_keeps_a_long_build_alive_and_is_not_relayed(archive) -> None:  # type: ignore[no-untyped-def]
    _, stub = archive
    stream = relay(stub, "slow")
    first = await stream.first(rpc_errors("archive"), "no clip")
    assert first == INFO
    assert b"".join([chunk async for chunk in stream.body()]) == b"abcdef"


async def test_a_stall_after_the_first_bytes_aborts_the_transfer(archive) -> None:  # type: ignore[no-untyped-def]
    servicer, stub = archive
    stream = relay(stub, "cut")
    await stream.first(rpc_errors("archive"), "no clip")
    received = []
    with pytest.raises(TransferAborted, match="did not answer within"):
        async for chunk in stream.body():
            received.append(chunk)
    assert received == [b"abc"]  # what came before the stall, and nothing that looks like the end
    await asyncio.wait_for(servicer.cancelled.wait(), 10)


async def test_backend_errors_map_as_before(archive) -> None:  # type: ignore[no-untyped-def]
    _, stub = archive
    with pytest.raises(HTTPException) as refused:
        await relay(stub, "gone").first(rpc_errors("archive"), "no clip")
    assert (refused.value.status_code, refused.value.detail) == (404, "nothing was recorded")
