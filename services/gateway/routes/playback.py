"""Playback of recordings: a camera's timeline, clips of any range, the deletion proofs.

A clip is built by the archive (remuxed, never re-encoded, with its timestamp subtitle track) and
streamed here once; the gateway keeps it in a short-lived cache file and answers HTTP range
requests from it, so a browser's <video> can seek without the clip being rebuilt for every
request. Cached clips live at most CSU_CLIP_CACHE_TTL_S, are only readable by the users who were
authorised (and audited) for them, and are dropped as soon as their start passes the camera's
retention: the cache can never keep footage longer than the archive does.
"""

import asyncio
import os
import shutil
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel

from services.common.clock import to_us
from services.common.log import get_logger
from services.common.pb.csu.v1 import archive_pb2, ingest_pb2
from services.common.settings import LEGAL_MAX_RETENTION_DAYS, Settings
from services.common.timefmt import DAY_US, iso
from services.gateway.backends import RPC_TIMEOUT_S, Backends, backends, rpc_errors
from services.gateway.routes.cameras import check_playback_window
from services.gateway.security import Principal, audit, require
from services.gateway.streams import Relay
from services.gateway.timerange import parse_instant

router = APIRouter(prefix="/api/v1", tags=["playback"])
log = get_logger(__name__)
# Building an hour of 1080p takes a while on a busy archive; a frozen one is noticed sooner, by
# the bound on silence between messages (streams.Relay, CSU_STREAM_STALL_S).
CLIP_TIMEOUT_S = 300.0


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


def retention_cutoff_us(camera: ingest_pb2.Camera | None, b: Backends) -> int:
    """Footage that started before this is past the camera's retention (30 days at most)."""
    days = (
        min(camera.retention_days or LEGAL_MAX_RETENTION_DAYS, LEGAL_MAX_RETENTION_DAYS)
        if camera
        else LEGAL_MAX_RETENTION_DAYS
    )
    return to_us(b.clock.now()) - days * DAY_US


def _instants(start: str, end: str) -> tuple[int, int]:
    return to_us(parse_instant("start", start)), to_us(parse_instant("end", end))


@router.get("/cameras/{camera_id}/timeline", response_model=TimelineOut)
async def timeline(
    camera_id: str,
    start: str = Query(description="ISO 8601 with zone"),
    end: str = Query(description="ISO 8601 with zone"),
    principal: Principal = Depends(require("playback", camera="camera_id")),
    b: Backends = Depends(backends),
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


@dataclass
class _Clip:
    path: Path
    info: archive_pb2.ClipInfo
    camera_id: str
    expires: float
    # Sessions that were authorised and audited for this clip.
    viewers: set[str]


class ClipCache:
    """Built clips on disk, by (camera, start, end); one build at a time per key."""

    def __init__(self) -> None:
        self._folder: Path | None = None
        self._clips: OrderedDict[tuple[str, int, int], _Clip] = OrderedDict()
        self._building: dict[tuple[str, int, int], asyncio.Future[_Clip]] = {}
        self._janitor: asyncio.Task[None] | None = None

    async def _sweep_expired(self, b: Backends) -> None:
        """Drop expired clips, and clips whose footage passed retention, even when nobody asks."""
        while self._clips:
            await asyncio.sleep(min(60.0, b.settings.clip_cache_ttl_s))
            cutoffs: dict[str, int] = {}
            for camera_id in {clip.camera_id for clip in self._clips.values()}:
                try:
                    cutoffs[camera_id] = retention_cutoff_us(await b.camera(camera_id), b)
                except HTTPException:
                    cutoffs[camera_id] = retention_cutoff_us(None, b)  # unknown now: the legal maximum
            self.purge(b, cutoffs)
        self._janitor = None

    def _root(self, b: Backends) -> Path:
        if self._folder is None:
            self._folder = clear_clip_cache(b.settings)
        return self._folder

    def purge(self, b: Backends, cutoffs: dict[str, int] | None = None) -> None:
        now = time.monotonic()
        for key, clip in list(self._clips.items()):
            expired = clip.expires <= now
            cutoff = (cutoffs or {}).get(clip.camera_id)
            past_retention = cutoff is not None and clip.info.start_us < cutoff
            if expired or past_retention:
                del self._clips[key]
                clip.path.unlink(missing_ok=True)

    async def get(self, b: Backends, key: tuple[str, int, int], actor: str) -> _Clip:
        clip = self._clips.get(key)
        if clip is not None:
            return clip
        pending = self._building.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[_Clip] = asyncio.get_running_loop().create_future()
        self._building[key] = future
        try:
            clip = await self._build(b, key, actor)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters get it, nobody else must
            raise
        finally:
            self._building.pop(key, None)
        self._clips[key] = clip
        future.set_result(clip)
        if self._janitor is None:
            self._janitor = asyncio.create_task(self._sweep_expired(b))
        return clip

    async def _build(self, b: Backends, key: tuple[str, int, int], actor: str) -> _Clip:
        camera_id, start_us, end_us = key
        folder = self._root(b)
        path = folder / f"{uuid.uuid4().hex}.mp4"
        partial = path.with_suffix(".part")
        call = b.archive.OpenClip(
            archive_pb2.ClipRequest(camera_id=camera_id, start_us=start_us, end_us=end_us, stream="main", actor=actor),
            timeout=CLIP_TIMEOUT_S,
        )
        relay = Relay(call, "archive", b.settings.stream_stall_s)
        try:
            info = (await relay.first(rpc_errors("archive"), "the archive sent no clip")).info
            async with rpc_errors("archive"):
                with partial.open("wb") as f:
                    async for chunk in relay.rest():
                        await asyncio.to_thread(f.write, chunk.data)
            if partial.stat().st_size != info.size:
                raise HTTPException(502, "the archive's clip was cut short; try again")
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
            relay.cancel()
        return _Clip(path, info, camera_id, time.monotonic() + b.settings.clip_cache_ttl_s, set())


def clear_clip_cache(settings: Settings) -> Path:
    """Empty the clip cache folder (and return it). Whatever a previous run left is dropped: it
    is footage whose retention nobody watches any more. Call it at gateway start-up too."""
    folder = (settings.data_dir / "cache" / "gateway-clips").resolve()
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


_CACHE = ClipCache()


@router.get("/cameras/{camera_id}/clip", response_class=FileResponse)
async def clip(
    request: Request,
    camera_id: str,
    start: str = Query(description="ISO 8601 with zone; the clip begins at the keyframe at or before it"),
    end: str = Query(description="ISO 8601 with zone"),
    justification: str = Query(min_length=5, max_length=500, description="Why this footage is viewed (audited)"),
    principal: Principal = Depends(require("playback", camera="camera_id")),
    b: Backends = Depends(backends),
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
    camera_id: str = Query("", description="A camera id; empty for every camera"),
    start: str | None = Query(None, description="ISO 8601 with zone: proofs of the hours from then"),
    end: str | None = Query(None, description="ISO 8601 with zone"),
    principal: Principal = Depends(require("audit")),
    b: Backends = Depends(backends),
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
