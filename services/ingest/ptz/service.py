"""PTZ calls, answered by the replica that holds the camera.

Any replica receives the gRPC call. If it holds the camera, it runs it on its controller; if not,
it forwards the request over NATS to `<prefix>.ingest.ptz.<camera>`, where only the holder listens,
and relays the answer (or the error, with its gRPC code and message). NATS answers "no responders"
at once when nobody holds the camera, so the caller gets a clear UNAVAILABLE instead of waiting.
"""

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import grpc
from google.protobuf.message import Message
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from services.common import refusals
from services.common.log import get_logger
from services.common.pb.csu.v1 import ingest_pb2
from services.common.refusals import Conflict, NotFound, Refusal, Unavailable
from services.ingest.ptz.controller import Actor, PtzController

if TYPE_CHECKING:
    from services.ingest.node import IngestNode

log = get_logger(__name__)
FORWARD_TIMEOUT_S = 15.0


REQUESTS: dict[str, type[Message]] = {
    "PtzGetState": ingest_pb2.PtzCameraRequest,
    "PtzMove": ingest_pb2.PtzCommand,
    "PtzReserve": ingest_pb2.PtzReserveRequest,
    "PtzRelease": ingest_pb2.PtzReleaseRequest,
    "PtzSetPreset": ingest_pb2.PtzPresetRequest,
    "PtzDeletePreset": ingest_pb2.PtzPresetRequest,
    "PtzPutTour": ingest_pb2.PtzTourRequest,
    "PtzDeleteTour": ingest_pb2.PtzTourRequest,
    "PtzStartTour": ingest_pb2.PtzTourRequest,
    "PtzStopTour": ingest_pb2.PtzCameraRequest,
}


def _actor(request) -> Actor:
    return Actor(request.actor.user or "unknown", request.actor.priority, request.actor.role)


async def run_local(controller: PtzController, method: str, request) -> ingest_pb2.PtzState:
    """Run a PTZ call on this replica's controller; a `Refusal` (busy, refused, the driver's failure,
    an unknown preset...) says why not."""
    actor = _actor(request)
    handlers: dict[str, Callable[[], Awaitable[None]]] = {
        "PtzGetState": _noop,
        "PtzMove": lambda: controller.command(
            actor, request.kind, (request.vector.pan, request.vector.tilt, request.vector.zoom), request.preset
        ),
        "PtzReserve": lambda: controller.reserve(actor, request.duration_s or 900.0),
        "PtzRelease": lambda: controller.release(actor, request.force),
        "PtzSetPreset": lambda: controller.set_preset(
            actor,
            request.name,
            (request.position.pan, request.position.tilt, request.position.zoom) if request.has_position else None,
        ),
        "PtzDeletePreset": lambda: controller.delete_preset(actor, request.name),
        "PtzPutTour": lambda: controller.put_tour(
            actor, request.tour.name, [(s.preset, s.dwell_s) for s in request.tour.steps]
        ),
        "PtzDeleteTour": lambda: controller.delete_tour(actor, request.tour.name),
        "PtzStartTour": lambda: controller.start_tour(actor, request.tour.name),
        "PtzStopTour": lambda: controller.stop_tour(actor),
    }
    await handlers[method]()
    if method != "PtzGetState":
        log.info("PTZ", camera=controller.camera_id, call=method, actor=actor.user, kind=getattr(request, "kind", ""))
    return await controller.state()


async def _noop() -> None:
    return None


async def call(node: "IngestNode", method: str, request) -> ingest_pb2.PtzState:
    """The PTZ call, here or on the replica holding the camera."""
    camera_id = request.camera_id
    record = node.cameras.get(camera_id)
    if record is None:
        await node.refresh()
        record = node.cameras.get(camera_id)
    if record is None:
        raise NotFound(f"unknown camera {camera_id!r}")
    if not record.ptz_driver:
        raise Conflict(f"camera {camera_id} has no PTZ")
    controller = node.controller(camera_id)
    if controller is not None:
        return await run_local(controller, method, request)
    try:
        reply = await node.nc.request(
            node.ptz_subject(camera_id),
            request.SerializeToString(),
            timeout=FORWARD_TIMEOUT_S,
            headers={"method": method},
        )
    except (NoRespondersError, NatsTimeout) as exc:
        refusal = node.refusal(record)
        why = f": {refusal}" if refusal else " right now; try again in a few seconds"
        raise Unavailable(f"no ingest replica holds camera {camera_id}{why}") from exc
    code = (reply.headers or {}).get("code", "OK")
    if code != "OK":
        raise refusals.from_code(grpc.StatusCode[code], (reply.headers or {}).get("detail", "PTZ call failed"))
    return ingest_pb2.PtzState.FromString(reply.data)


async def answer_remote(node: "IngestNode", msg: Msg) -> None:
    """The holder's side of a forwarded call."""
    method = (msg.headers or {}).get("method", "")
    kind = REQUESTS.get(method)

    async def respond(data: bytes, headers: dict[str, str]) -> None:
        if msg.reply:
            await node.nc.publish(msg.reply, data, headers=headers)

    if kind is None:
        await respond(b"", {"code": "INVALID_ARGUMENT", "detail": f"unknown PTZ call {method!r}"})
        return
    request = kind.FromString(msg.data)
    controller = node.controller(request.camera_id)  # type: ignore[attr-defined]
    if controller is None:
        return  # not (or no longer) ours: the caller times out or another holder answers
    try:
        state = await run_local(controller, method, request)
    except Refusal as exc:
        await respond(b"", {"code": exc.code.name, "detail": " ".join(exc.message.split())[:2000]})
        return
    await respond(state.SerializeToString(), {"code": "OK"})
