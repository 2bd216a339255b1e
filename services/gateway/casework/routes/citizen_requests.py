"""Citizens' right of access to footage of themselves (RequisitionService does the work).

Clerks ("citizen_requests") register a request — identity, a copy of an identity document, the
place, cameras and time window, a contact — see the one-month deadline, open kiosk sessions and
record the outcome. Operators ("playback" on the cameras) see the request without the identity
(the description of the requester is what they search for), confirm the requester appears or
record "not found", and launch redaction jobs. Every step is audited before it happens; the
identity itself stays out of the audit trail (the request number points to it).
"""

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.responses import Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from starlette.requests import HTTPConnection

from services.common.clock import to_us
from services.common.pb.csu.v1 import requisition_pb2
from services.common.timefmt import DAY_US, iso
from services.gateway.backends import Backends, BackendsDep, rpc_errors
from services.gateway.casework.client import (
    REQUISITION_TIMEOUT_S,
    actor_of,
    check_cameras,
    file_response,
    read_stream,
)
from services.gateway.casework.forms import UPLOAD_DOC, read_form
from services.gateway.identity.access import Case, case_dependency, may_see, require_role
from services.gateway.identity.security import Principal, audit, require
from services.gateway.operations.fields import CAMERA_ID, text
from services.gateway.video.timerange import checked_us, parse_instant

router = APIRouter(prefix="/api/v1/citizen-requests", tags=["citizens' access"])
# Who may list and read requests: clerks, and operators (without the identity).
READ_ACTIONS = ("citizen_requests", "playback")
RequestId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]


class SearchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    found: bool
    note: text(2000, 0) = ""  # type: ignore[valid-type]
    # Cameras where the requester appears, beyond the ones registered (they are held too).
    cameras: list[CAMERA_ID] = Field(default_factory=list, max_length=16)


class BoxIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    time: AwareDatetime
    x: float = Field(ge=0, le=1)
    y: float = Field(ge=0, le=1)
    width: float = Field(gt=0, le=1)
    height: float = Field(gt=0, le=1)


class RedactionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    camera_id: CAMERA_ID
    start: AwareDatetime
    end: AwareDatetime
    selection: list[BoxIn] = Field(min_length=1, max_length=500)
    mode: Literal["scene", "persons"] = "scene"
    effect: Literal["pixelate", "blur"] = "pixelate"


class OutcomeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    outcome: Literal["viewed", "refused", "not_found"]
    # Required for "refused": the legal ground (e.g. RGPD art. 12.5, art. 15.4; loi I&L art. 107).
    reason: text(2000, 0) = ""  # type: ignore[valid-type]


def citizen_out(c: requisition_pb2.CitizenRequest, now_us: int) -> dict:
    out = {
        "id": c.id,
        "number": c.number,
        "state": c.state,
        "place": c.place,
        "camera_ids": list(c.camera_ids),
        "window_start": iso(c.window_start_us),
        "window_end": iso(c.window_end_us),
        "description": c.description,
        "created": iso(c.created_us),
        "created_by": c.created_by,
        "deadline": iso(c.deadline_us),
        "days_left": max(0, (c.deadline_us - now_us) // DAY_US) if not c.closed_us else None,
        "overdue": c.overdue,
        "deadline_warned": c.deadline_warned,
        "search_note": c.search_note,
        "searched_by": c.searched_by or None,
        "redactions": [
            {
                "job_id": r.job_id,
                "camera_id": r.camera_id,
                "start": iso(r.start_us),
                "end": iso(r.end_us),
                "status": r.status,
                "progress": r.progress,
                "error": r.error or None,
            }
            for r in c.redactions
        ],
        "holds": [
            {"camera_id": h.camera_id, "start": iso(h.start_us), "end": iso(h.end_us), "until": iso(h.until_us)}
            for h in c.holds
        ],
        "outcome": c.outcome or None,
        "outcome_reason": c.outcome_reason or None,
        "outcome_by": c.outcome_by or None,
        "closed": iso(c.closed_us) if c.closed_us else None,
        "transitions": [
            {"from": t.from_state or None, "to": t.to_state, "by": t.actor, "at": iso(t.at_us), "reason": t.reason}
            for t in c.transitions
        ],
    }
    if c.full_name:
        out |= {
            "full_name": c.full_name,
            "birth_date": c.birth_date,
            "id_document_kind": c.id_document_kind,
            "id_document_number": c.id_document_number_hint,
            "contact": c.contact,
            "identity_document_kept": c.identity_document_kept,
        }
    return out


def _operator_view(principal: Principal) -> bool:
    return not principal.may("citizen_requests")


async def _get(b: Backends, request_id: str, principal: Principal) -> requisition_pb2.CitizenRequest:
    async with rpc_errors("requisition"):
        return await b.requisition.GetCitizenRequest(
            requisition_pb2.CitizenRef(
                id=request_id, actor=actor_of(principal), operator_view=_operator_view(principal)
            ),
            timeout=REQUISITION_TIMEOUT_S,
        )


def _target(c: requisition_pb2.CitizenRequest) -> str:
    return f"citizen_request:{c.number}"


def _case_cameras(c: requisition_pb2.CitizenRequest) -> set[str]:
    """Every camera of a request: those registered, those held, those redacted."""
    return {*c.camera_ids, *(h.camera_id for h in c.holds), *(r.camera_id for r in c.redactions)}


CitizenCase = Case[requisition_pb2.CitizenRequest]


def on_case(*actions: str, city_staff: bool = False) -> Callable[[HTTPConnection], Awaitable[CitizenCase]]:
    """FastAPI dependency: the caller and the request of path parameter `request_id`, under the
    case rule (access.py) for `actions`; a request they may not see is unknown to them (404)."""
    return case_dependency(
        "citizen request", "request_id", actions, _get, _case_cameras, _target, city_staff=city_staff
    )


@router.post("", status_code=201, openapi_extra=UPLOAD_DOC)
async def create(request: Request, b: BackendsDep, principal: Principal = Depends(require("citizen_requests"))) -> dict:
    """Register a request: multipart fields full_name, birth_date (YYYY-MM-DD), id_document_kind,
    id_document_number, contact, place, camera_ids (comma-separated or repeated), window_start and
    window_end (ISO 8601 with zone), description; file part `identity_document` (PDF/JPEG/PNG)."""
    form = await read_form(request)
    filename, data = form.file("identity_document")
    camera_ids = [c.strip() for c in form.all("camera_ids")]
    if not camera_ids:
        raise HTTPException(422, "camera_ids: name at least one camera covering the place")
    start = parse_instant("window_start", form.get("window_start")) if form.get("window_start") else None
    end = parse_instant("window_end", form.get("window_end")) if form.get("window_end") else None
    if start is None or end is None:
        raise HTTPException(422, "window_start and window_end are required (ISO 8601 with a zone)")
    start_us, end_us = checked_us("window_start", start), checked_us("window_end", end)
    # The clerk names the cameras; that does not give them video (they never see footage here),
    # but they are cameras of the case: the case rule (access.py) must let the clerk see it.
    cameras = await check_cameras(principal, b, list(dict.fromkeys(camera_ids)), ("citizen_requests",))
    await audit(
        principal,
        "citizen_request.create",
        "citizen_requests",
        details={"place": form.get("place"), "cameras": list(cameras), "window": [iso(start_us), iso(end_us)]},
    )
    meta = requisition_pb2.CitizenUploadMeta(
        full_name=form.get("full_name"),
        birth_date=form.get("birth_date"),
        id_document_kind=form.get("id_document_kind"),
        id_document_number=form.get("id_document_number"),
        contact=form.get("contact"),
        place=form.get("place"),
        camera_ids=list(cameras),
        window_start_us=start_us,
        window_end_us=end_us,
        description=form.get("description"),
        filename=filename,
        actor=actor_of(principal),
        cameras=[
            requisition_pb2.CameraRange(camera_id=c, camera_name=cam.name, retention_days=cam.retention_days)
            for c, cam in cameras.items()
        ],
    )

    async def messages() -> AsyncIterator[requisition_pb2.CitizenUpload]:
        yield requisition_pb2.CitizenUpload(meta=meta)
        for i in range(0, len(data), 1024 * 1024):
            yield requisition_pb2.CitizenUpload(data=data[i : i + 1024 * 1024])

    async with rpc_errors("requisition"):
        created = await b.requisition.CreateCitizenRequest(messages(), timeout=REQUISITION_TIMEOUT_S)
    return citizen_out(created, to_us(b.clock.now()))


@router.get("")
async def listing(
    b: BackendsDep,
    state: str | None = None,
    principal: Principal = Depends(require_role(*READ_ACTIONS)),
) -> list[dict]:
    """Open requests by deadline ("open": everything not closed). Operators see no identities, and
    only requests still without cameras or about a camera they may play back; clerks see all."""
    await audit(principal, "citizen_request.list", "citizen_requests", details={"state": state})
    async with rpc_errors("requisition"):
        answer = await b.requisition.ListCitizenRequests(
            requisition_pb2.ListCitizenRequestsRequest(state=state or "", operator_view=_operator_view(principal)),
            timeout=REQUISITION_TIMEOUT_S,
        )
    now = to_us(b.clock.now())
    requests = [c for c in answer.requests if await may_see(principal, READ_ACTIONS, _case_cameras(c))]
    return [citizen_out(c, now) for c in requests]


@router.get("/{request_id}")
async def get(
    request_id: RequestId,
    b: BackendsDep,
    case: CitizenCase = Depends(on_case(*READ_ACTIONS)),
) -> dict:
    principal, current = case.principal, case.case
    await audit(principal, "citizen_request.read", _target(current))
    return citizen_out(current, to_us(b.clock.now()))


@router.get("/{request_id}/identity-document")
async def identity_document(
    request_id: RequestId, b: BackendsDep, case: CitizenCase = Depends(on_case("citizen_requests"))
) -> Response:
    principal, current = case.principal, case.case
    await audit(principal, "citizen_request.identity_document.read", _target(current))
    call = b.requisition.ReadCitizenDocument(
        requisition_pb2.CitizenRef(id=request_id, actor=actor_of(principal)), timeout=REQUISITION_TIMEOUT_S
    )
    info, data = await read_stream(b, call)
    return file_response(info, data, inline=True)


@router.post("/{request_id}/search")
async def search(
    request_id: RequestId,
    body: SearchIn,
    b: BackendsDep,
    case: CitizenCase = Depends(on_case("playback", city_staff=True)),
) -> dict:
    """The operator's finding: the requester appears (on these cameras) or was not found."""
    principal, current = case.principal, case.case
    await check_cameras(principal, b, sorted({*current.camera_ids, *body.cameras}), ("playback",))
    await audit(
        principal,
        "citizen_request.search",
        _target(current),
        justification=body.note or None,
        details={"found": body.found, "cameras": body.cameras},
    )
    async with rpc_errors("requisition"):
        done = await b.requisition.RecordSearch(
            requisition_pb2.SearchResultRequest(
                id=request_id,
                actor=actor_of(principal),
                found=body.found,
                note=body.note,
                cameras=[requisition_pb2.CameraRange(camera_id=c) for c in body.cameras],
            ),
            timeout=REQUISITION_TIMEOUT_S,
        )
    return citizen_out(done, to_us(b.clock.now()))


@router.post("/{request_id}/redactions")
async def redact(
    request_id: RequestId,
    body: RedactionIn,
    b: BackendsDep,
    case: CitizenCase = Depends(on_case("playback", city_staff=True)),
) -> dict:
    """Launch a redaction job (masking): only the requester, chosen by the boxes, stays visible."""
    principal, current = case.principal, case.case
    await check_cameras(principal, b, [body.camera_id], ("playback",))
    start_us, end_us = checked_us("start", body.start), checked_us("end", body.end)
    await audit(
        principal,
        "citizen_request.redaction",
        f"camera:{body.camera_id}",
        justification=f"citizen access request {current.number}",
        details={"start": iso(start_us), "end": iso(end_us), "mode": body.mode, "boxes": len(body.selection)},
    )
    async with rpc_errors("requisition"):
        done = await b.requisition.StartRedaction(
            requisition_pb2.StartRedactionRequest(
                id=request_id,
                actor=actor_of(principal),
                camera_id=body.camera_id,
                start_us=start_us,
                end_us=end_us,
                selection=[
                    requisition_pb2.RedactionBoxIn(
                        time_us=checked_us("selection.time", box.time),
                        x=box.x,
                        y=box.y,
                        width=box.width,
                        height=box.height,
                    )
                    for box in body.selection
                ],
                mode=body.mode,
                effect=body.effect,
            ),
            timeout=REQUISITION_TIMEOUT_S,
        )
    return citizen_out(done, to_us(b.clock.now()))


@router.post("/{request_id}/kiosk-sessions", status_code=201)
async def kiosk_session(
    request_id: RequestId, b: BackendsDep, case: CitizenCase = Depends(on_case("citizen_requests"))
) -> dict:
    """A one-time code to type on the viewing-room kiosk (GET /kiosk), valid a few minutes."""
    principal, current = case.principal, case.case
    await audit(principal, "citizen_request.kiosk_session", _target(current))
    async with rpc_errors("requisition"):
        opened = await b.requisition.OpenKioskSession(
            requisition_pb2.CitizenRef(id=request_id, actor=actor_of(principal)), timeout=REQUISITION_TIMEOUT_S
        )
    return {
        "session_id": opened.session_id,
        "request_number": opened.request_number,
        "pairing_code": opened.pairing_code,
        "pairing_expires": iso(opened.pairing_expires_us),
        "clips": opened.clips,
        "kiosk_url": "/kiosk",
    }


@router.post("/{request_id}/outcome")
async def outcome(
    request_id: RequestId,
    body: OutcomeIn,
    b: BackendsDep,
    case: CitizenCase = Depends(on_case("citizen_requests")),
) -> dict:
    """Close the request: viewed, refused (with the legal ground) or not found. The identity
    document is deleted, the footage released, kiosk sessions ended."""
    principal, current = case.principal, case.case
    await audit(
        principal,
        "citizen_request.outcome",
        _target(current),
        justification=body.reason or None,
        details={"outcome": body.outcome},
    )
    async with rpc_errors("requisition"):
        done = await b.requisition.RecordOutcome(
            requisition_pb2.OutcomeRequest(
                id=request_id, actor=actor_of(principal), outcome=body.outcome, reason=body.reason
            ),
            timeout=REQUISITION_TIMEOUT_S,
        )
    return citizen_out(done, to_us(b.clock.now()))
