"""requested -> extracted: the requested ranges copied into the extraction bucket (the buffer).

Through ArchiveService, never re-encoded: `ExtractRange` copies the segments unchanged (each
checked against the archive's hash chain on the way) and `OpenClip` remuxes the same range into
the MP4 the package will carry (H.264 as recorded, timestamp subtitle track, camera name). Both
land under req/<request id>/ in the extraction bucket. Ranges wider than the archive's widest
request (CSU_MAX_QUERY_RANGE_HOURS) are cut into pieces.

The buffer copy's deadline is the end of the footage's own retention (the earliest segment's):
if the signed requisition has not arrived by then, the deadline loop purges it (deadlines.py).

An extraction is claimed in the database first (two operators cannot extract at once); if any
step fails, everything copied so far is deleted and the request stays `requested`. While it runs,
its progress is kept on the request row (progress.py), so the console can show how far it has got.
"""

import asyncio
import hashlib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from sqlmodel import col, select

from services.common import refusals
from services.common.clock import from_us, to_us
from services.common.db import session
from services.common.log import get_logger
from services.common.objectstore import ObjectStore
from services.common.pb.csu.v1 import archive_pb2, requisition_pb2
from services.common.refusals import Conflict, Denied, NotFound, Unavailable
from services.common.rpc import StreamStalled, next_message
from services.common.timefmt import HOUR_US
from services.requisition import register, workflow
from services.requisition.context import Context
from services.requisition.models import ExtractPart, ExtractSegment, RequestedRange, Requisition, Transition
from services.requisition.progress import Progress
from services.requisition.requisitions import load, move, summary
from services.requisition.timefmt import utc

log = get_logger(__name__)
ARCHIVE_TIMEOUT_S = 900.0
# A claim older than this belongs to a crashed extraction and may be taken over.
CLAIM_US = HOUR_US


@dataclass
class Piece:
    camera_id: str
    camera_name: str
    start_us: int
    end_us: int
    segments: list[archive_pb2.ExtractedSegment] = field(default_factory=list)
    clip_key: str = ""
    clip_sha256: str = ""
    clip_bytes: int = 0
    clip_start_us: int = 0
    clip_end_us: int = 0
    frames: int = 0

    @property
    def empty(self) -> bool:
        return not self.segments


def prefix(request_id: str) -> str:
    return f"req/{request_id}"


def pieces(ranges: list[RequestedRange], max_hours: float) -> list[Piece]:
    width = int(max_hours * HOUR_US)
    found: list[Piece] = []
    for r in ranges:
        start = r.start_us
        while start < r.end_us:
            end = min(start + width, r.end_us)
            found.append(Piece(r.camera_id, r.camera_name, start, end))
            start = end
    return found


def _claim(ctx: Context, request_id: str, actor: requisition_pb2.Actor) -> tuple[Requisition, list[RequestedRange]]:
    if actor.partner:
        raise Denied("extraction is done by CSU staff")
    now = to_us(ctx.clock.now())
    with session(ctx.engine) as s:
        row = load(s, request_id, actor, lock=True)
        workflow.check(row.number, row.state, workflow.EXTRACTED)
        if row.extracting_us is not None and now - row.extracting_us < CLAIM_US:
            raise Conflict(f"an extraction of request {row.number} is already running")
        row.extracting_us = now
        row.extract_progress = 0.0
        s.add(row)
        s.commit()
        ranges = list(
            s.exec(
                select(RequestedRange)
                .where(col(RequestedRange.request_id) == row.id)
                .order_by(col(RequestedRange.position))
            )
        )
        return row, ranges


def _release(ctx: Context, request_id: str) -> None:
    with session(ctx.engine) as s:
        row = s.get(Requisition, request_id)
        if row is not None and row.extracting_us is not None:
            row.extracting_us = None
            row.extract_progress = None
            s.add(row)
            s.commit()


def delete_prefix(store: ObjectStore, key_prefix: str) -> tuple[int, int]:
    """Delete every object under the prefix; (count, bytes)."""
    infos = list(store.list(key_prefix + "/"))
    if infos:
        store.delete_many([i.key for i in infos])
    return len(infos), sum(i.size for i in infos)


class PieceProgress:
    """An extraction's progress (progress.py): every piece weighs the same; within a piece, copying
    its segments is the first half and receiving its clip (counted in bytes) the second."""

    def __init__(self, ctx: Context, request_id: str, pieces: int) -> None:
        self._progress = Progress(ctx.engine, request_id, "extract_progress")
        self._pieces = max(pieces, 1)

    async def at(self, piece: int, within: float, force: bool = False) -> None:
        due = self._progress.due((piece + min(max(within, 0.0), 1.0)) / self._pieces, force)
        if due is not None:
            await asyncio.to_thread(self._progress.write, due)


async def _extract_piece(
    ctx: Context, request_id: str, index: int, piece: Piece, actor: str, work: Path, progress: PieceProgress
) -> None:
    where = f"camera {piece.camera_id} from {utc(piece.start_us)} to {utc(piece.end_us)}"  # in refusals
    try:
        answer = await ctx.archive.ExtractRange(
            archive_pb2.ExtractRangeRequest(
                camera_id=piece.camera_id,
                start_us=piece.start_us,
                end_us=piece.end_us,
                stream="main",
                target_bucket=ctx.settings.bucket_extractions,
                target_prefix=f"{prefix(request_id)}/segments",
                actor=actor,
            ),
            timeout=ARCHIVE_TIMEOUT_S,
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            return  # nothing recorded in this piece: said so in the manifest
        raise refusals.relayed(exc, "archive", where) from exc
    piece.segments = list(answer.segments)
    if not piece.segments:
        return
    await progress.at(index, 0.5)
    call = ctx.archive.OpenClip(
        archive_pb2.ClipRequest(
            camera_id=piece.camera_id, start_us=piece.start_us, end_us=piece.end_us, stream="main", actor=actor
        ),
        timeout=ARCHIVE_TIMEOUT_S,
    )
    path = work / f"{index}.mp4"
    digest = hashlib.sha256()
    stall_s = ctx.settings.stream_stall_s
    try:
        first = await next_message(call, stall_s)
        while first is not None and first.HasField("progress"):  # the archive is building it
            first = await next_message(call, stall_s)
        if first is None or not first.HasField("info"):
            raise Unavailable("the archive sent no clip")
        info = first.info
        received = 0
        with path.open("wb") as f:
            while (chunk := await next_message(call, stall_s)) is not None:
                digest.update(chunk.data)
                await asyncio.to_thread(f.write, chunk.data)
                received += len(chunk.data)
                await progress.at(index, 0.5 + 0.5 * received / max(info.size, 1))
    except grpc.aio.AioRpcError as exc:
        raise refusals.relayed(exc, "archive", where) from exc
    except StreamStalled as exc:
        message = f"the archive stopped answering while sending the clip of {where} ({exc}); try again"
        raise Unavailable(message) from exc
    size = path.stat().st_size
    if size != info.size:
        raise Unavailable("the archive's clip was cut short; try the extraction again")
    stamp = f"{from_us(piece.start_us):%Y%m%dT%H%M%SZ}"
    piece.clip_key = f"{prefix(request_id)}/clips/{index:03d}_{piece.camera_id}_{stamp}.mp4"
    await asyncio.to_thread(ctx.extractions.put_file, piece.clip_key, path, {"sha256": digest.hexdigest()}, "video/mp4")
    path.unlink()
    piece.clip_sha256, piece.clip_bytes = digest.hexdigest(), size
    piece.clip_start_us, piece.clip_end_us, piece.frames = info.start_us, info.end_us, info.frames
    if info.camera_name:
        piece.camera_name = info.camera_name


def _commit(
    ctx: Context, request_id: str, actor: requisition_pb2.Actor, found: list[Piece]
) -> tuple[Requisition, Transition]:
    now = to_us(ctx.clock.now())
    deadline = min(seg.retention_end_us for p in found for seg in p.segments)
    with session(ctx.engine) as s:
        row = load(s, request_id, actor, lock=True)
        workflow.check(row.number, row.state, workflow.EXTRACTED)
        for i, piece in enumerate(found):
            part = ExtractPart(
                request_id=row.id,
                position=i,
                camera_id=piece.camera_id,
                camera_name=piece.camera_name[:128],
                start_us=piece.start_us,
                end_us=piece.end_us,
                empty=piece.empty,
                clip_key=piece.clip_key,
                clip_sha256=piece.clip_sha256,
                clip_bytes=piece.clip_bytes,
                clip_start_us=piece.clip_start_us,
                clip_end_us=piece.clip_end_us,
                frames=piece.frames,
            )
            s.add(part)
            s.flush()
            assert part.id is not None
            for extracted in piece.segments:
                seg = extracted.segment
                s.add(
                    ExtractSegment(
                        request_id=row.id,
                        part_id=part.id,
                        segment_id=seg.id,
                        object_key=extracted.target_key,
                        start_us=seg.start_us,
                        end_us=seg.end_us,
                        sha256=seg.sha256,
                        prev_sha256=seg.prev_sha256,
                        mask_version=seg.mask_version,
                        bytes=seg.bytes,
                        retention_end_us=extracted.retention_end_us,
                    )
                )
        row.extracting_us = row.extract_progress = None
        row.extracted_by, row.extracted_us = actor.username, now
        row.buffer_deadline_us = deadline
        transition = move(s, row, workflow.EXTRACTED, actor, now, f"buffer copy kept until {utc(deadline)}")
        s.flush()
        register.append(
            s,
            ctx.signer,
            cadence=ctx.cadence,
            time_us=now,
            kind="extraction",
            request_id=row.id,
            request_number=row.number,
            actor=actor.username,
            payload=summary(s, row)
            | {
                "operator": actor.username,
                "buffer_deadline": utc(deadline),
                "segments": sum(len(p.segments) for p in found),
                "bytes": sum(seg.segment.bytes for p in found for seg in p.segments),
            },
        )
        s.commit()
        return row, transition


async def extract(ctx: Context, request_id: str, actor: requisition_pb2.Actor) -> tuple[Requisition, Transition]:
    row, ranges = await asyncio.to_thread(_claim, ctx, request_id, actor)
    found = pieces(ranges, ctx.settings.max_query_range_hours)
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    try:
        await asyncio.to_thread(ctx.extractions.ensure_bucket)
        progress = PieceProgress(ctx, row.id, len(found))
        with tempfile.TemporaryDirectory(dir=ctx.work_dir) as tmp:
            for i, piece in enumerate(found):
                await _extract_piece(ctx, row.id, i, piece, actor.username, Path(tmp), progress)
                await progress.at(i + 1, 0.0, force=True)
        if all(p.empty for p in found):
            raise NotFound(f"nothing was recorded in any range of request {row.number}: nothing to extract")
        result = await asyncio.to_thread(_commit, ctx, row.id, actor, found)
    except BaseException:
        # Nothing half-done stays in the buffer.
        await asyncio.shield(_abandon(ctx, row.id))
        raise
    log.info("extracted", request=row.number, pieces=len(found), actor=actor.username)
    return result


async def _abandon(ctx: Context, request_id: str) -> None:
    try:
        await asyncio.to_thread(delete_prefix, ctx.extractions, prefix(request_id))
    except Exception as exc:  # noqa: BLE001 - the deadline loop purges leftovers of failed requests
        log.warning("could not delete a failed extraction's copies", request=request_id, error=str(exc))
    await asyncio.to_thread(_release, ctx, request_id)
