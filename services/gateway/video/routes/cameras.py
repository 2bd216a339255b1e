"""Cameras and their recorded segments."""

from datetime import timedelta

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from services.common.pb.csu.v1 import archive_pb2, ingest_pb2
from services.common.timefmt import iso
from services.gateway.backends import RPC_TIMEOUT_S, BackendsDep, rpc_errors
from services.gateway.identity.roles import CAMERA_ACTIONS
from services.gateway.identity.security import Principal, authenticate, check_playback_window, require
from services.gateway.video.timerange import parse_range

router = APIRouter(prefix="/api/v1", tags=["cameras"])


class CameraOut(BaseModel):
    id: str
    name: str
    status: str
    status_reason: str
    status_since: str
    retention_days: int
    groups: list[str]
    # Lifecycle state and PTZ driver ("" for a fixed camera); details at /api/v1/cameras/{id}.
    state: str = ""
    ptz_driver: str = ""


class SegmentOut(BaseModel):
    id: str
    camera_id: str
    start: str
    end: str
    bytes: int
    sha256: str
    frames: int
    mask_version: str


@router.get("/cameras", response_model=list[CameraOut])
async def list_cameras(b: BackendsDep, principal: Principal = Depends(authenticate)) -> list[CameraOut]:
    """The cameras the caller may do anything with; the others are not even named."""
    async with rpc_errors("ingest"):
        response = await b.ingest.ListCameras(ingest_pb2.ListCamerasRequest(), timeout=RPC_TIMEOUT_S)
    visible = [c for c in response.cameras if any(principal.may(a, c.groups) for a in CAMERA_ACTIONS)]
    return [
        CameraOut(
            id=c.id,
            name=c.name,
            status=c.status,
            status_reason=c.status_reason,
            status_since=iso(c.status_since_us),
            retention_days=c.retention_days,
            groups=list(c.groups),
            state=c.state,
            ptz_driver=c.ptz_driver,
        )
        for c in visible
    ]


@router.get("/cameras/{camera_id}/segments", response_model=list[SegmentOut])
async def list_segments(
    camera_id: str,
    b: BackendsDep,
    start: str | None = Query(None, description="ISO 8601 with zone; default: one hour before end"),
    end: str | None = Query(None, description="ISO 8601 with zone; default: now"),
    principal: Principal = Depends(require("playback", camera="camera_id")),
) -> list[SegmentOut]:
    camera = await b.camera(camera_id)
    start_us, end_us = parse_range(start, end, b.clock.now(), camera.retention_days, timedelta(hours=1))
    check_playback_window(principal, start_us, b.clock.now())
    async with rpc_errors("archive"):
        response = await b.archive.ListSegments(
            archive_pb2.ListSegmentsRequest(camera_id=camera_id, start_us=start_us, end_us=end_us, stream="main"),
            timeout=RPC_TIMEOUT_S,
        )
    return [
        SegmentOut(
            id=s.id,
            camera_id=s.camera_id,
            start=iso(s.start_us),
            end=iso(s.end_us),
            bytes=s.bytes,
            sha256=s.sha256,
            frames=s.frames,
            mask_version=s.mask_version,
        )
        for s in response.segments
    ]
