"""Clips of recordings, built by the archive and kept briefly on the gateway's disk.

A clip is built by the archive (remuxed, never re-encoded, with its timestamp subtitle track) and
streamed here once; the gateway keeps it in a short-lived cache file and answers HTTP range
requests from it (video/routes/playback.py), so a browser's <video> can seek without the clip being
rebuilt for every request. Cached clips live at most CSU_CLIP_CACHE_TTL_S, are only readable by
the users who were authorised (and audited) for them, and are dropped as soon as their start passes
the camera's retention: the cache can never keep footage longer than the archive does. Whatever a
previous run left is dropped at start-up (`clear_clip_cache`).
"""

import asyncio
import os
import shutil
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from fastapi import HTTPException

from services.common.clock import to_us
from services.common.pb.csu.v1 import archive_pb2, ingest_pb2
from services.common.settings import LEGAL_MAX_RETENTION_DAYS, Settings
from services.common.timefmt import DAY_US
from services.gateway.backends import Backends, rpc_errors
from services.gateway.streams import Relay

# Building an hour of 1080p takes a while on a busy archive; a frozen one is noticed sooner, by
# the bound on silence between messages (streams.Relay, CSU_STREAM_STALL_S).
CLIP_TIMEOUT_S = 300.0


def retention_cutoff_us(camera: ingest_pb2.Camera | None, b: Backends) -> int:
    """Footage that started before this is past the camera's retention (30 days at most)."""
    days = (
        min(camera.retention_days or LEGAL_MAX_RETENTION_DAYS, LEGAL_MAX_RETENTION_DAYS)
        if camera
        else LEGAL_MAX_RETENTION_DAYS
    )
    return to_us(b.clock.now()) - days * DAY_US


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
