"""One mapping of refusals, end to end over a real gRPC server in this process: a service's domain
module raises a `Refusal`, its gRPC layer answers with the refusal's status (`refusals.abort`), and
the gateway's `rpc_errors` answers every backend's status the same way, in the backend's words,
bounded; a backend out of reach or failing is named, never quoted."""

from collections.abc import AsyncIterator, Callable

import grpc
import pytest
from fastapi import HTTPException

from services.common import refusals, rpc
from services.common.pb.csu.v1 import ingest_pb2, ingest_pb2_grpc
from services.gateway.backends import MAX_DETAIL, rpc_errors
from tests.support.servers import free_port, grpc_serving

# What each refusal is answered with, as the user meets it.
EXPECTED: list[tuple[type[refusals.Refusal], int]] = [
    (refusals.NotFound, 404),
    (refusals.Invalid, 422),
    (refusals.Conflict, 409),
    (refusals.Exists, 409),
    (refusals.Busy, 409),
    (refusals.Denied, 403),
    (refusals.TooLarge, 413),
    (refusals.Unauthenticated, 401),
    (refusals.Unavailable, 503),
    (refusals.DataLoss, 502),
]


class Ingest(ingest_pb2_grpc.IngestServiceServicer):
    """GetCamera does whatever the test set: raise a refusal (answered as the services do), abort
    with a bare status, or fail outright."""

    def __init__(self) -> None:
        self.behaviour: Callable[[], None] = lambda: None
        self.direct = ""  # a message aborted with as it is, as a handler validating inline does

    async def GetCamera(self, request, context) -> ingest_pb2.Camera:  # type: ignore[no-untyped-def]
        if self.direct:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, self.direct)
        try:
            self.behaviour()
        except refusals.Refusal as exc:
            await refusals.abort(context, exc)
        return ingest_pb2.Camera(id=request.camera_id)


@pytest.fixture
async def ingest() -> AsyncIterator[tuple[Ingest, ingest_pb2_grpc.IngestServiceStub]]:
    servicer = Ingest()
    async with grpc_serving(lambda s: ingest_pb2_grpc.add_IngestServiceServicer_to_server(servicer, s)) as channel:
        yield servicer, ingest_pb2_grpc.IngestServiceStub(channel)


async def _answer(stub: ingest_pb2_grpc.IngestServiceStub) -> HTTPException:
    with pytest.raises(HTTPException) as refused:
        async with rpc_errors("ingest"):
            await stub.GetCamera(ingest_pb2.GetCameraRequest(camera_id="cam-1"), timeout=10)
    return refused.value


@pytest.mark.parametrize(("kind", "status"), EXPECTED, ids=[kind.__name__ for kind, _ in EXPECTED])
async def test_each_refusal_reaches_the_user_with_its_status_and_the_services_words(ingest, kind, status) -> None:  # type: ignore[no-untyped-def]
    servicer, stub = ingest
    message = f"camera cam-1: {kind.__name__} said in the service's words"

    def refuse() -> None:
        raise kind(message)

    servicer.behaviour = refuse
    answer = await _answer(stub)
    assert (answer.status_code, answer.detail) == (status, message)


async def test_a_refusal_forwarded_by_another_replica_keeps_its_kind(ingest) -> None:  # type: ignore[no-untyped-def]
    """PTZ and previews forward a call to the replica holding the camera and get back a status name."""
    for kind, _ in EXPECTED:
        again = refusals.from_code(kind.code, "said there")
        assert type(again) is kind and again.message == "said there"
    odd = refusals.from_code(grpc.StatusCode.INTERNAL, "broken there")
    assert odd.code == grpc.StatusCode.INTERNAL  # not turned into a 4xx on the way


async def test_a_long_message_is_bounded_and_a_failure_or_a_transport_error_names_only_the_service(ingest) -> None:  # type: ignore[no-untyped-def]
    servicer, stub = ingest

    def long() -> None:
        raise refusals.Invalid("x" * 60_000)

    servicer.behaviour = long
    answer = await _answer(stub)
    assert answer.status_code == 422 and answer.detail == "x" * MAX_DETAIL + "…"

    servicer.direct = "y" * 60_000  # not cut by the service: the channels still carry it whole
    answer = await _answer(stub)
    assert answer.status_code == 422 and answer.detail == "y" * MAX_DETAIL + "…"
    servicer.direct = ""

    def crash() -> None:
        raise RuntimeError("secret internals at /var/lib/csu")

    servicer.behaviour = crash
    answer = await _answer(stub)
    assert (answer.status_code, answer.detail) == (502, "the ingest service failed: UNKNOWN")

    def transport() -> None:
        raise refusals.Unavailable("failed to connect to all addresses; last error: ipv4:10.0.0.7:50051")

    servicer.behaviour = transport
    answer = await _answer(stub)
    assert (answer.status_code, answer.detail) == (503, "the ingest service is unavailable; try again shortly")


async def test_a_backend_out_of_reach_is_a_503_naming_the_service() -> None:
    channel = rpc.channel(f"127.0.0.1:{free_port()}")  # nobody listens there
    try:
        answer = await _answer(ingest_pb2_grpc.IngestServiceStub(channel))
    finally:
        await channel.close()
    assert (answer.status_code, answer.detail) == (503, "the ingest service is unavailable; try again shortly")


async def _relayed(stub: ingest_pb2_grpc.IngestServiceStub, where: str = "") -> refusals.Refusal:
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await stub.GetCamera(ingest_pb2.GetCameraRequest(camera_id="cam-1"), timeout=10)
    return refusals.relayed(failed.value, "ingest", where)


async def test_a_refusal_relayed_by_a_calling_service_keeps_its_kind_and_hides_failures(ingest) -> None:  # type: ignore[no-untyped-def]
    """Requisition relays what the archive and masking refuse (extraction, redaction)."""
    servicer, stub = ingest
    for kind, _ in EXPECTED:
        if kind in (refusals.Unavailable, refusals.Denied, refusals.Unauthenticated):
            continue

        def refuse(kind: type[refusals.Refusal] = kind) -> None:
            raise kind("said there")

        servicer.behaviour = refuse
        again = await _relayed(stub, "camera cam-1")
        assert type(again) is kind and again.message == "camera cam-1: said there"

    def out_of_range() -> None:  # as the archive answers an offset past a segment's end
        raise refusals.Invalid("offset 9 is past the end", grpc.StatusCode.OUT_OF_RANGE)

    servicer.behaviour = out_of_range
    relayed = await _relayed(stub)
    assert type(relayed) is refusals.Invalid and relayed.message == "offset 9 is past the end"

    def crash() -> None:
        raise RuntimeError("secret internals at /var/lib/csu")

    def transport() -> None:
        raise refusals.Unavailable("failed to connect to all addresses; last error: ipv4:10.0.0.7:50051")

    def refused_to_the_caller() -> None:  # the called service refuses the calling one, not its user
        raise refusals.Unauthenticated("no credentials for service requisition")

    for failure in (crash, transport, refused_to_the_caller):
        servicer.behaviour = failure
        hidden = await _relayed(stub, "camera cam-1")
        assert type(hidden) is refusals.Unavailable
        assert hidden.message == "the ingest service is unavailable; try again shortly"
