"""Playback of recordings: a camera's timeline, clips of any range, the deletion proofs.

A clip is built by the archive and kept briefly by the gateway (clip_cache.py), which answers HTTP
range requests from it so a browser's <video> can seek; each user's first request for a clip is
audited as a consultation.
"""

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel

from services.common.clock import to_us
from services.common.log import get_logger
from services.common.pb.csu.v1 import archive_pb2
from services.common.timefmt import iso
from services.gateway.backends import RPC_TIMEOUT_S, BackendsDep, rpc_errors
from services.gateway.identity.security import Principal, audit, check_playback_window, require
from services.gateway.video.clip_cache import ClipCache, retention_cutoff_us
from services.gateway.video.timerange import parse_instant

router = APIRouter(prefix="/api/v1", tags=["playback"])
log = get_logger(__name__)


class IntervalOut(BaseModel):
    start: str
    end: str
    # Not yet in the object store: being written, or waiting in the archive's spool.
    recording: bool


class GapOut(BaseModel):
    start: str
    end: str
    reason: str
    detail: str


class TimelineOut(BaseModel):
    camera_id: str
    start: str
    end: str
    covered: list[IntervalOut]
    gaps: list[GapOut]
    # Recorded spans to know about: "stream_non_compliant" (measured below the profile or the norms).
    marks: list[GapOut] = []


class DeletionProofOut(BaseModel):
    camera_id: str
    stream: str
    hour_start: str
    count: int
    bytes: int
    first: str
    last: str
    sha256s: list[str]
    digest: str
    swept: str
    retention_days: int


def _instants(start: str, end: str) -> tuple[int, int]:
    return to_us(parse_instant("start", start)), to_us(parse_instant("end", end))


@router.get("/cameras/{camera_id}/timeline", response_model=TimelineOut)
async def timeline(
    camera_id: str,
    b: BackendsDep,
    start: str = Query(description="ISO 8601 with zone"),
    end: str = Query(description="ISO 8601 with zone"),
    principal: Principal = Depends(require("playback", camera="camera_id")),
) -> TimelineOut:
    """What was recorded in the range, the gaps (with their reason when known), and the recorded spans
    marked non-compliant (the stream measured below its profile or the norms)."""
    start_us, end_us = _instants(start, end)
    check_playback_window(principal, start_us, b.clock.now())
    async with rpc_errors("archive"):
        answer = await b.archive.GetTimeline(
            archive_pb2.TimelineRequest(camera_id=camera_id, start_us=start_us, end_us=end_us, stream="main"),
            timeout=RPC_TIMEOUT_S,
        )
    return TimelineOut(
        camera_id=camera_id,
        start=iso(answer.start_us),
        end=iso(answer.end_us),
        covered=[IntervalOut(start=iso(c.start_us), end=iso(c.end_us), recording=c.recording) for c in answer.covered],
        gaps=[GapOut(start=iso(g.start_us), end=iso(g.end_us), reason=g.reason, detail=g.detail) for g in answer.gaps],
        marks=[
            GapOut(start=iso(g.start_us), end=iso(g.end_us), reason=g.reason, detail=g.detail) for g in answer.marks
        ],
    )


_CACHE = ClipCache()


@router.get("/cameras/{camera_id}/clip", response_class=FileResponse)
async def clip(
    request: Request,
    camera_id: str,
    b: BackendsDep,
    start: str = Query(description="ISO 8601 with zone; the clip begins at the keyframe at or before it"),
    end: str = Query(description="ISO 8601 with zone"),
    justification: str = Query(min_length=5, max_length=500, description="Why this footage is viewed (audited)"),
    principal: Principal = Depends(require("playback", camera="camera_id")),
) -> FileResponse:
    """An MP4 of the range (H.264 as recorded, a subtitle track with UTC and Paris time), with
    HTTP range support so a browser can seek. Built on the first request, then cached briefly."""
    start_us, end_us = _instants(start, end)
    check_playback_window(principal, start_us, b.clock.now())
    _CACHE.purge(b, {camera_id: retention_cutoff_us(await b.camera(camera_id), b)})
    key = (camera_id, start_us, end_us)
    # Built (and so validated by the archive) first: a refused range is a 4xx, not a consultation.
    # Nothing of it is shown before the audit record is written.
    asked = {"start_us": start_us, "end_us": end_us}
    try:
        built = await _CACHE.get(b, key, principal.username)
    except HTTPException as exc:
        if exc.status_code >= 500:
            # The archive failed or did not answer (504): an attempted consultation, in the trail
            # with outcome failed and the answer's reason (audit_outcome.py).
            await audit(principal, "playback.clip", f"camera:{camera_id}", justification=justification, details=asked)
        raise
    if principal.token not in built.viewers:
        # A browser's many range requests on one clip count as one consultation.
        await audit(
            principal,
            "playback.clip",
            f"camera:{camera_id}",
            justification=justification,
            details=asked | {"clip_start_us": built.info.start_us},
        )
        built.viewers.add(principal.token)
    return FileResponse(
        built.path,
        media_type="video/mp4",
        filename=built.info.filename,
        content_disposition_type="inline",
        headers={"Cache-Control": "private, no-store", "X-Clip-Start": iso(built.info.start_us)},
    )


@router.get("/archive/deletion-proofs", response_model=list[DeletionProofOut])
async def deletion_proofs(
    b: BackendsDep,
    camera_id: str = Query("", description="A camera id; empty for every camera"),
    start: str | None = Query(None, description="ISO 8601 with zone: proofs of the hours from then"),
    end: str | None = Query(None, description="ISO 8601 with zone"),
    principal: Principal = Depends(require("audit")),
) -> list[DeletionProofOut]:
    """What the retention sweeper deleted, per camera and hour, with the hashes of the segments."""
    start_us = to_us(parse_instant("start", start)) if start else 0
    end_us = to_us(parse_instant("end", end)) if end else (to_us(b.clock.now()) if start else 0)
    await audit(principal, "audit.deletion_proofs", f"camera:{camera_id}" if camera_id else "archive")
    async with rpc_errors("archive"):
        answer = await b.archive.ListDeletionProofs(
            archive_pb2.DeletionProofsRequest(camera_id=camera_id, start_us=start_us, end_us=end_us),
            timeout=RPC_TIMEOUT_S,
        )
    return [
        DeletionProofOut(
            camera_id=p.camera_id,
            stream=p.stream,
            hour_start=iso(p.hour_start_us),
            count=p.count,
            bytes=p.bytes,
            first=iso(p.first_us),
            last=iso(p.last_us),
            sha256s=list(p.sha256s),
            digest=p.digest,
            swept=iso(p.swept_us),
            retention_days=p.retention_days,
        )
        for p in answer.proofs
    ]
