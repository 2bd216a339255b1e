"""Redaction for citizens' access: jobs that turn a recorded range into a clip where only the
requester stays visible (scene redaction, the default) or every other detected person is masked.

- An operator who may play the camera back (playback on it) creates a job with the requester's
  box on one or more frames; the citizen request's reference is the justification in the audit
  trail. The job runs in masking; it reports progress and can be cancelled.
- The result is viewed only at the kiosk (casework/routes/kiosk.py), by the citizen, in a paired kiosk
  session: no endpoint here serves the clip, so there is no download path for staff either; every
  viewing is audited. It expires with the request (and never outlives the footage's retention);
  the original recording is never modified.
"""

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from services.common.clock import to_us
from services.common.pb.csu.v1 import masking_pb2
from services.common.timefmt import iso_if_set
from services.gateway.backends import RPC_TIMEOUT_S, Backends, BackendsDep, rpc_errors
from services.gateway.identity.access import Case, case_dependency
from services.gateway.identity.security import Principal, audit, require
from services.gateway.video.timerange import parse_instant

router = APIRouter(prefix="/api/v1", tags=["redaction"])
READ_TIMEOUT_S = 300.0


class BoxIn(BaseModel):
    time: str = Field(description="ISO 8601 with zone: the frame the box is drawn on.")
    x: float = Field(description="Normalised (0..1) left edge.")
    y: float
    width: float
    height: float


class RedactionIn(BaseModel):
    start: str = Field(description="ISO 8601 with zone.")
    end: str
    selection: list[BoxIn] = Field(min_length=1, max_length=200, description="The requester, on one or more frames.")
    mode: str = Field("scene", description="scene (everything but the requester redacted) or persons.")
    effect: str = Field("pixelate", description="pixelate or blur (scene mode).")
    expires: str | None = Field(None, description="When the citizen's request ends (ISO 8601); the clip expires then.")
    request_ref: str = Field(min_length=1, max_length=200, description="The citizen request this serves.")


class BoxOut(BaseModel):
    time: str | None
    x: float | None = None
    y: float | None = None
    width: float | None = None
    height: float | None = None


class RedactionOut(BaseModel):
    id: str
    camera_id: str
    start: str | None
    end: str | None
    mode: str
    effect: str
    status: str
    progress: float
    error: str
    frames: int
    size: int
    created: str | None
    finished: str | None
    expires: str | None
    actor: str
    request_ref: str
    selection: list[BoxOut]
    track: list[BoxOut] | None = Field(None, description="The requester's box on every frame (absent: not visible).")


def _box(b: masking_pb2.RedactionBox, with_size: bool = True) -> BoxOut:
    if not with_size:
        return BoxOut(time=iso_if_set(b.time_us))
    return BoxOut(time=iso_if_set(b.time_us), x=b.x, y=b.y, width=b.width, height=b.height)


def _out(job: masking_pb2.RedactionJob, track: bool = False) -> RedactionOut:
    return RedactionOut(
        id=job.id,
        camera_id=job.camera_id,
        start=iso_if_set(job.start_us),
        end=iso_if_set(job.end_us),
        mode=job.mode,
        effect=job.effect,
        status=job.status,
        progress=round(job.progress, 3),
        error=job.error,
        frames=job.frames,
        size=job.size,
        created=iso_if_set(job.created_us),
        finished=iso_if_set(job.finished_us),
        expires=iso_if_set(job.expires_us),
        actor=job.actor,
        request_ref=job.request_ref,
        selection=[_box(s) for s in job.selection],
        track=[_box(t, t.width > 0) for t in job.track] if track else None,
    )


@router.post("/cameras/{camera_id}/redactions", response_model=RedactionOut, status_code=202)
async def create_redaction(
    camera_id: str,
    body: RedactionIn,
    b: BackendsDep,
    principal: Principal = Depends(require("playback", camera="camera_id")),
) -> RedactionOut:
    """Queue a redaction of a recorded range; poll the job for progress, then view its clip."""
    start_us = to_us(parse_instant("start", body.start))
    end_us = to_us(parse_instant("end", body.end))
    expires_us = to_us(parse_instant("expires", body.expires)) if body.expires else 0
    boxes = [
        masking_pb2.RedactionBox(
            time_us=to_us(parse_instant(f"selection[{n}].time", box.time)), x=box.x, y=box.y, width=box.width,
            height=box.height,
        )
        for n, box in enumerate(body.selection)
    ]  # fmt: skip
    await audit(
        principal, "redaction.create", f"camera:{camera_id}", justification=body.request_ref,
        details={"start": body.start, "end": body.end, "mode": body.mode, "effect": body.effect, "boxes": len(boxes)},
    )  # fmt: skip
    async with rpc_errors("masking"):
        job = await b.masking.CreateRedaction(
            masking_pb2.CreateRedactionRequest(
                camera_id=camera_id, start_us=start_us, end_us=end_us, selection=boxes, mode=body.mode,
                effect=body.effect, expires_us=expires_us, request_ref=body.request_ref, actor=principal.username,
            ),
            timeout=RPC_TIMEOUT_S,
        )  # fmt: skip
    return _out(job)


@router.get("/cameras/{camera_id}/redactions", response_model=list[RedactionOut])
async def list_redactions(
    camera_id: str,
    b: BackendsDep,
    principal: Principal = Depends(require("playback", camera="camera_id")),
) -> list[RedactionOut]:
    del principal
    async with rpc_errors("masking"):
        answer = await b.masking.ListRedactions(
            masking_pb2.ListRedactionsRequest(camera_id=camera_id), timeout=RPC_TIMEOUT_S
        )
    return [_out(j) for j in answer.jobs]


async def _job(b: Backends, job_id: str, principal: Principal) -> masking_pb2.RedactionJob:
    del principal
    async with rpc_errors("masking"):
        return await b.masking.GetRedaction(masking_pb2.RedactionRef(id=job_id), timeout=RPC_TIMEOUT_S)


# A job is seen by those who may play its camera back or who handle citizens' requests, under the
# case rule (access.py): a job they may not see is unknown to them (404).
on_job = case_dependency(
    "redaction job",
    "job_id",
    ("playback", "citizen_requests"),
    _job,
    lambda job: [job.camera_id],
    lambda job: f"camera:{job.camera_id}",
)


@router.get("/redactions/{job_id}", response_model=RedactionOut)
async def get_redaction(job_id: str, case: Case[masking_pb2.RedactionJob] = Depends(on_job)) -> RedactionOut:
    """The job's status and progress, and the requester's tracked box on every frame."""
    return _out(case.case, track=True)


@router.post("/redactions/{job_id}/cancel", response_model=RedactionOut)
async def cancel_redaction(
    job_id: str, b: BackendsDep, case: Case[masking_pb2.RedactionJob] = Depends(on_job)
) -> RedactionOut:
    principal, job = case.principal, case.case
    await audit(principal, "redaction.cancel", f"camera:{job.camera_id}", details={"job": job_id})
    async with rpc_errors("masking"):
        answer = await b.masking.CancelRedaction(
            masking_pb2.RedactionRef(id=job_id, actor=principal.username), timeout=RPC_TIMEOUT_S
        )
    return _out(answer)
