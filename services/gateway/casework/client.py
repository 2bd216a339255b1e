"""What the casework routes (requisitions, citizens' requests, kiosk, register) share: the caller as
an `Actor`, whole small files read from a bounded stream, and the cameras of a case under the case
rule (identity/access.py). The requisition service's refusals are answered like every backend's
(backends.rpc_errors)."""

import re

import grpc
from fastapi import HTTPException
from fastapi.responses import Response

from services.common.pb.csu.v1 import requisition_pb2
from services.gateway.backends import Backends, rpc_errors, unknown_camera
from services.gateway.identity.access import case_refusal
from services.gateway.identity.security import Principal, refuse
from services.gateway.streams import Relay

# The requisition service signs, hashes and stores documents inside its calls: a longer deadline
# than the 10 s every other gateway call gets (backends.RPC_TIMEOUT_S).
REQUISITION_TIMEOUT_S = 30.0


def actor_of(principal: Principal) -> requisition_pb2.Actor:
    username = f"{principal.partner}:{principal.username}" if principal.partner else principal.username
    return requisition_pb2.Actor(
        username=username,
        display_name=principal.display_name,
        role=principal.role,
        partner=principal.partner or "",
        ip=principal.ip,
    )


async def read_stream(
    b: Backends,
    call: grpc.aio.UnaryStreamCall,
    first_s: float | None = None,
) -> tuple[requisition_pb2.FileInfo, bytes]:
    """A whole FileChunk stream (documents, receipts, register exports: small files), each message
    within CSU_STREAM_STALL_S (the first within `first_s` if given: streams.Relay)."""
    info = None
    data = bytearray()
    relay = Relay(call, "requisition", b.settings.stream_stall_s, first_s)
    try:
        async with rpc_errors("requisition"):
            async for chunk in relay.rest():
                if chunk.HasField("info"):
                    info = chunk.info
                data += chunk.data
    finally:
        relay.cancel()
    if info is None:
        raise HTTPException(502, "the requisition service sent no file")
    return info, bytes(data)


def file_response(info: requisition_pb2.FileInfo, data: bytes, inline: bool = False) -> Response:
    disposition = "inline" if inline else "attachment"
    headers = {
        "Content-Disposition": f'{disposition}; filename="{ascii_filename(info.filename)}"',
        "Cache-Control": "private, no-store",
        "X-Content-Type-Options": "nosniff",
    }
    if info.sha256:
        headers["X-Content-SHA256"] = info.sha256
    return Response(data, media_type=info.content_type or "application/octet-stream", headers=headers)


def ascii_filename(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._()-]", "_", name) or "document"


async def check_cameras(principal: Principal, b: Backends, camera_ids: list[str], actions: tuple[str, ...]) -> dict:
    """Cameras named in a new request or finding: each exists and the case rule (access.py) allows
    one of `actions` on it (audited refusals: 403 for the role; a camera outside one's groups
    answers as an unknown one, 404, like every camera route); their facts."""
    facts = {camera_id: await b.camera(camera_id) for camera_id in camera_ids}
    for camera_id, camera in facts.items():
        reason = case_refusal(principal, actions, {camera_id: list(camera.groups)})
        if reason is not None:
            hidden = unknown_camera(camera_id) if not principal.in_groups(camera.groups) else None
            await refuse(principal, actions[0], f"camera:{camera_id}", reason, answer=hidden)
    return facts


def case_cameras(r: requisition_pb2.Requisition) -> set[str]:
    """Every camera of a request: the requested ranges and what was extracted."""
    return {x.camera_id for x in r.ranges} | {p.camera_id for p in r.parts}
