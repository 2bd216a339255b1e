"""The gateway's bound on a backend stream's silence (issue 23), against a real gRPC server in this
process: a stream that says nothing is cancelled with a 504 naming the service; progress messages
keep a long build alive; a stall after the first bytes aborts the transfer; errors map as before."""

import asyncio
from collections.abc import AsyncIterator

import grpc
import httpx
import pytest
from fastapi import FastAPI, HTTPException
from fastapi.responses import StreamingResponse

from services.common import rpc
from services.common.pb.csu.v1 import archive_pb2, archive_pb2_grpc
from services.common.service import serve_http
from services.gateway.backends import rpc_errors
from services.gateway.streams import Relay, TransferAborted
from tests.support.servers import free_port, grpc_serving

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
    async with grpc_serving(lambda s: archive_pb2_grpc.add_ArchiveServiceServicer_to_server(servicer, s)) as channel:
        yield servicer, archive_pb2_grpc.ArchiveServiceStub(channel)


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


async def test_a_stall_mid_response_is_a_truncated_http_transfer(archive) -> None:  # type: ignore[no-untyped-def]
    """Served by the gateway's own HTTP server: the client never gets a body that looks complete."""
    _, stub = archive
    app = FastAPI()

    @app.get("/clip/{camera_id}")
    async def clip(camera_id: str) -> StreamingResponse:
        stream = relay(stub, camera_id)
        first = await stream.first(rpc_errors("archive"), "no clip")
        return StreamingResponse(stream.body(), headers={"Content-Length": str(first.info.size)})

    port, stop = free_port(), asyncio.Event()
    server = asyncio.create_task(serve_http(app, "127.0.0.1", port, stop))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            for _ in range(100):  # until it listens
                try:
                    whole = await client.get("/clip/whole")
                    break
                except httpx.ConnectError:
                    await asyncio.sleep(0.1)
            assert whole.status_code == 200 and whole.content == b"abcdef"
            async with client.stream("GET", "/clip/cut") as cut:
                assert cut.status_code == 200
                with pytest.raises(httpx.RemoteProtocolError):
                    await cut.aread()
            frozen = await client.get("/clip/frozen")
            assert frozen.status_code == 504 and "did not answer" in frozen.json()["detail"]
    finally:
        stop.set()
        await server


# -- service to service: rpc.next_message with a bound on silence (requisition's extraction and
# masking's redaction reading the archive's clips) ---------------------------------------------


async def _read_all(stub: archive_pb2_grpc.ArchiveServiceStub, camera_id: str) -> list[archive_pb2.ClipChunk]:
    call = stub.OpenClip(archive_pb2.ClipRequest(camera_id=camera_id), timeout=60)
    messages = []
    while (message := await rpc.next_message(call, STALL_S)) is not None:
        messages.append(message)
    return messages


async def test_a_silent_service_stream_is_cancelled_after_its_bound(archive) -> None:  # type: ignore[no-untyped-def]
    servicer, stub = archive
    for camera_id in ("frozen", "cut"):  # silent from the start, or after its first bytes
        servicer.cancelled.clear()
        started = asyncio.get_running_loop().time()
        with pytest.raises(rpc.StreamStalled, match=f"nothing received for {STALL_S:g} s"):
            await _read_all(stub, camera_id)
        assert asyncio.get_running_loop().time() - started < 30  # not the call's 60 s deadline
        await asyncio.wait_for(servicer.cancelled.wait(), 10)  # the archive's handler was told


async def test_progress_keeps_a_service_stream_alive_and_errors_pass_unchanged(archive) -> None:  # type: ignore[no-untyped-def]
    _, stub = archive
    messages = await _read_all(stub, "slow")  # builds for twice the bound, saying so every 0.1 s
    assert [m.data for m in messages if m.data] == [b"abc", b"def"]
    assert any(m.HasField("progress") for m in messages) and messages[-3] == INFO
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await _read_all(stub, "gone")
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND
