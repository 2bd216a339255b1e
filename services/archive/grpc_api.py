"""ArchiveService over gRPC: the only way other services reach recordings.

Every read path (listing, segment bytes, timeline, clips, extraction) goes through the camera's
retention: what started before the retention limit is neither listed, nor fetched, nor played,
even in the minute before the sweeper deletes it. Ranges are validated by `ranges.check_range`
against the archive's Clock; a refused range is INVALID_ARGUMENT with the reason.
"""

import asyncio
import hashlib
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import BinaryIO, NoReturn, Protocol

import grpc
from sqlalchemy import Engine

from services.archive import index, ledger, lifecycle
from services.archive.clips import ClipSource, HeldFile, NothingRecorded, build_clip, snapshot
from services.archive.holds import HoldBook, HoldError, UnknownHold
from services.archive.ledger import Book
from services.archive.models import DeletionProof, Hold, Segment
from services.archive.ranges import CheckedRange, RangeError, check_range
from services.archive.retention import RetentionPolicy
from services.archive.segmenter import ClosedSegment, OpenSegmentInfo
from services.archive.sweeper import Sweeper
from services.archive.timeline import KnownGap
from services.archive.timeline import build as build_timeline
from services.archive.verify import Problem, verify_chain
from services.common import refusals, rpc
from services.common.clock import Clock, SystemClock, from_us, to_us
from services.common.log import get_logger
from services.common.objectstore import InvalidKey, ObjectNotFound, ObjectStore, StoreUnavailable, check_key
from services.common.pb.csu.v1 import archive_pb2, archive_pb2_grpc
from services.common.subjects import STREAMS, check_camera_id
from services.common.timefmt import DAY_US

log = get_logger(__name__)


async def _store_unavailable(context: grpc.aio.ServicerContext, exc: StoreUnavailable) -> NoReturn:
    """The store's own error goes to the log, not to the caller: it names endpoints and buckets, and
    the gateway shows a service's words to the user."""
    log.warning("object store unavailable", error=str(exc))
    await refusals.abort(context, refusals.Unavailable("the object store is unavailable; try again shortly"))


CHUNK = 512 * 1024


def to_message(row: Segment) -> archive_pb2.Segment:
    return archive_pb2.Segment(
        id=row.id,
        camera_id=row.camera_id,
        stream=row.stream,
        start_us=row.start_us,
        end_us=row.end_us,
        object_key=row.object_key,
        bytes=row.bytes,
        sha256=row.sha256,
        frames=row.frames,
        mask_version=row.mask_version,
        prev_sha256=row.prev_sha256,
        fully_masked=row.fully_masked,
    )


def local_spans(live: "LiveSegments", camera_id: str, stream: str) -> list[tuple[int, int]]:
    """(start, end) of a recording side's spooled segments and open segment for a camera."""
    spans = [(s.start_us, s.end_us) for s in live.spooled(camera_id, stream)]
    current = live.open_segment(camera_id, stream)
    if current is not None and current.last_us > current.start_us:
        spans.append((current.start_us, current.last_us))
    return spans


class LiveSegments(Protocol):
    """What the recording side has that the index does not yet: spooled and open segments."""

    def spooled(self, camera_id: str, stream: str) -> list[ClosedSegment]: ...

    async def recording_spans(self, camera_id: str, stream: str) -> list[tuple[int, int]]:
        """(start, end) of what is recorded and not yet stored, by whichever replica records the camera."""
        ...

    def open_segment(self, camera_id: str, stream: str) -> OpenSegmentInfo | None: ...

    @property
    def spool_dir(self) -> Path: ...

    def pending_keys(self) -> set[str]: ...


class ArchiveApi(archive_pb2_grpc.ArchiveServiceServicer):
    def __init__(
        self,
        engine: Engine,
        store: ObjectStore,
        *,
        clock: Clock | None = None,
        retention: RetentionPolicy | None = None,
        max_query_range_hours: float = 24.0,
        work_dir: Path | None = None,
        live: LiveSegments | None = None,
        store_for: Callable[[str], ObjectStore] | None = None,
        holds: HoldBook | None = None,
        ledger: Book | None = None,
    ) -> None:
        self._engine = engine
        # The segment ledger (ledger.py): rows compared with it in Verify, and VerifyLedger.
        self._ledger = ledger
        self._store = store
        self._clock: Clock = clock or SystemClock()
        self._retention = retention or RetentionPolicy(15)
        self._max_hours = max_query_range_hours
        self._work_dir = work_dir or Path(tempfile.gettempdir())
        self._live = live
        self._store_for = store_for
        self._holds = holds

    # -- helpers -------------------------------------------------------------------------------

    def _now_us(self) -> int:
        return to_us(self._clock.now())

    def _cutoff_us(self, camera_id: str, start_us: int | None = None, end_us: int | None = None) -> int:
        """Footage that started before this is past retention; held footage of the range is not (holds.py)."""
        now = self._now_us()
        base = self._retention.cutoff_us(camera_id, now)
        if self._holds is None or start_us is None or end_us is None:
            return base
        return self._holds.read_cutoff(camera_id, base, start_us, end_us, now)

    async def _range(self, context, camera_id: str, start_us: int, end_us: int, strict: bool) -> CheckedRange:
        try:
            check_camera_id(camera_id)
            return check_range(
                start_us,
                end_us,
                self._now_us(),
                await asyncio.to_thread(self._cutoff_us, camera_id, start_us, end_us),
                self._retention.days_for(camera_id),
                self._max_hours,
                strict,
            )
        except (RangeError, ValueError) as exc:
            await refusals.abort(context, refusals.Invalid(str(exc)))

    async def _stream(self, context, stream: str) -> str:
        stream = stream or "main"
        if stream not in STREAMS:
            await refusals.abort(context, refusals.Invalid(f"unknown stream {stream!r}: use main or sub"))
        return stream

    async def _rows(self, camera_id: str, stream: str, start_us: int, end_us: int) -> list[Segment]:
        rows = await asyncio.to_thread(index.overlapping, self._engine, camera_id, stream, start_us, end_us)
        cutoff = await asyncio.to_thread(self._cutoff_us, camera_id, start_us, end_us)
        return [r for r in rows if r.start_us >= cutoff]

    # -- segments ------------------------------------------------------------------------------

    async def ListSegments(self, request, context):
        stream = await self._stream(context, request.stream)
        checked = await self._range(context, request.camera_id, request.start_us, request.end_us, strict=False)
        rows = await self._rows(request.camera_id, stream, checked.start_us, checked.end_us)
        return archive_pb2.ListSegmentsResponse(segments=[to_message(r) for r in rows])

    async def _row(self, segment_id: str, context: grpc.aio.ServicerContext) -> Segment:
        row = await asyncio.to_thread(index.get, self._engine, segment_id)
        if row is None:
            await refusals.abort(context, refusals.NotFound(f"unknown segment {segment_id!r}"))
        if row.start_us < await asyncio.to_thread(self._cutoff_us, row.camera_id, row.start_us, row.end_us):
            # Past retention: as good as deleted (the sweeper is about to), for every reader.
            await refusals.abort(context, refusals.NotFound(f"unknown segment {segment_id!r}"))
        return row

    async def GetSegment(self, request, context):
        return to_message(await self._row(request.segment_id, context))

    async def ReadSegment(self, request, context) -> AsyncIterator[archive_pb2.Chunk]:
        row = await self._row(request.segment_id, context)
        if request.offset > row.bytes or (request.offset == row.bytes and row.bytes > 0):
            await refusals.abort(
                context,
                refusals.Invalid(
                    f"offset {request.offset} is past the end ({row.bytes})", grpc.StatusCode.OUT_OF_RANGE
                ),
            )
        length = request.length or None
        chunks = self._store.iter_chunks(row.object_key, request.offset, length, CHUNK)
        while True:
            try:
                chunk = await asyncio.to_thread(next, chunks, None)
            except ObjectNotFound:
                await refusals.abort(context, refusals.NotFound(f"segment {row.id} has no object"))
            except StoreUnavailable as exc:
                await _store_unavailable(context, exc)
            if chunk is None:
                return
            yield archive_pb2.Chunk(data=chunk)

    # -- timeline ------------------------------------------------------------------------------

    async def GetTimeline(self, request, context):
        stream = await self._stream(context, request.stream)
        checked = await self._range(context, request.camera_id, request.start_us, request.end_us, strict=False)
        cam, start, end = request.camera_id, checked.start_us, checked.end_us
        stored = await asyncio.to_thread(index.spans, self._engine, cam, stream, start, end)
        cutoff = await asyncio.to_thread(self._cutoff_us, cam, start, end)
        stored = [(a, b) for a, b in stored if a >= cutoff]
        gap_rows = await asyncio.to_thread(index.gaps, self._engine, cam, stream, start, end)
        spooled = await self._live.recording_spans(cam, stream) if self._live is not None else []
        timeline = build_timeline(
            start, end, stored, spooled, [KnownGap(g.start_us, g.end_us, g.reason, g.detail) for g in gap_rows]
        )
        return archive_pb2.Timeline(
            camera_id=cam,
            start_us=start,
            end_us=end,
            covered=[
                archive_pb2.Interval(start_us=c.start_us, end_us=c.end_us, recording=c.in_spool)
                for c in timeline.covered
            ],
            gaps=[
                archive_pb2.Gap(start_us=g.start_us, end_us=g.end_us, reason=g.reason, detail=g.detail)
                for g in timeline.gaps
            ],
            marks=[
                archive_pb2.Gap(start_us=g.start_us, end_us=g.end_us, reason=g.reason, detail=g.detail)
                for g in timeline.marks
            ],
        )

    # -- clips ---------------------------------------------------------------------------------

    def _download(self, row: Segment, folder: Path) -> Callable[[], BinaryIO]:
        """An opener that fetches the segment from the store once, into the clip's folder."""

        def opener() -> BinaryIO:
            path = folder / f"{row.id}.mp4"
            if not path.exists():
                with path.open("wb") as f:
                    for chunk in self._store.iter_chunks(row.object_key):
                        f.write(chunk)
            return path.open("rb")

        return opener

    def _sources(
        self, rows: list[Segment], camera_id: str, stream: str, folder: Path, held: list[HeldFile]
    ) -> list[ClipSource]:
        sources: dict[str, ClipSource] = {}
        if self._live is not None:
            # Spool first: a segment stored meanwhile is read from the copy already opened.
            for seg in self._live.spooled(camera_id, stream):
                try:
                    handle = HeldFile(seg.media_path(self._live.spool_dir))
                except FileNotFoundError:
                    continue  # stored and removed since: the index has it
                held.append(handle)
                sources[seg.id] = ClipSource(seg.id, seg.start_us, handle.open)
            current = self._live.open_segment(camera_id, stream)
            if current is not None:
                try:
                    sources[current.id] = ClipSource(current.id, current.start_us, snapshot(current.path), growing=True)
                except FileNotFoundError:
                    pass
        for row in rows:
            sources.setdefault(row.id, ClipSource(row.id, row.start_us, self._download(row, folder)))
        return list(sources.values())

    async def OpenClip(self, request, context) -> AsyncIterator[archive_pb2.ClipChunk]:
        stream = await self._stream(context, request.stream)
        checked = await self._range(context, request.camera_id, request.start_us, request.end_us, strict=True)
        cam = request.camera_id
        rows = await self._rows(cam, stream, checked.start_us, checked.end_us)
        self._work_dir.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="clip-", dir=self._work_dir))
        held: list[HeldFile] = []
        try:
            cutoff = await asyncio.to_thread(self._cutoff_us, cam, checked.start_us, checked.end_us)
            sources = [
                s
                for s in self._sources(rows, cam, stream, folder, held)
                if s.start_us >= cutoff and s.start_us < checked.end_us
            ]
            name = self._retention.name_for(cam)
            out = folder / "clip.mp4"
            # The build takes time in proportion to the range (segments fetched, remuxed): progress
            # meanwhile, so a caller that bounds silence does not take the work for a frozen archive.
            build = asyncio.ensure_future(
                asyncio.to_thread(build_clip, sources, checked.start_us, checked.end_us, cam, name, out)
            )
            async for elapsed in rpc.while_working(build):
                yield archive_pb2.ClipChunk(progress=archive_pb2.Preparing(elapsed_s=elapsed))
            try:
                result = build.result()
            except NothingRecorded as exc:
                await refusals.abort(context, refusals.NotFound(str(exc)))
            except ObjectNotFound as exc:
                await refusals.abort(context, refusals.NotFound(f"a segment of the range has no object: {exc}"))
            except StoreUnavailable as exc:
                await _store_unavailable(context, exc)
            log.info(
                "clip built",
                camera=cam,
                actor=request.actor,
                start=from_us(result.start_us).isoformat(),
                end=from_us(result.end_us).isoformat(),
                frames=result.frames,
                bytes=result.size,
            )
            filename = f"{cam}_{from_us(result.start_us):%Y%m%dT%H%M%SZ}_{from_us(result.end_us):%Y%m%dT%H%M%SZ}.mp4"
            yield archive_pb2.ClipChunk(
                info=archive_pb2.ClipInfo(
                    size=result.size,
                    content_type="video/mp4",
                    filename=filename,
                    start_us=result.start_us,
                    end_us=result.end_us,
                    frames=result.frames,
                    segments=result.segments,
                    camera_name=name,
                )
            )
            with out.open("rb") as f:
                while chunk := await asyncio.to_thread(f.read, CHUNK):
                    yield archive_pb2.ClipChunk(data=chunk)
        finally:
            for handle in held:
                handle.close()
            shutil.rmtree(folder, ignore_errors=True)

    # -- extraction ----------------------------------------------------------------------------

    async def ExtractRange(self, request, context):
        stream = await self._stream(context, request.stream)
        checked = await self._range(context, request.camera_id, request.start_us, request.end_us, strict=True)
        if self._store_for is None:
            await refusals.abort(
                context, refusals.Refusal("extraction is not configured", grpc.StatusCode.UNIMPLEMENTED)
            )
        if not request.target_bucket or request.target_bucket == self._store.bucket:
            await refusals.abort(
                context, refusals.Invalid("the target bucket must be another bucket than the recordings'")
            )
        prefix = request.target_prefix.strip("/")
        try:
            target = self._store_for(request.target_bucket)
            if prefix:
                check_key(prefix)
        except (InvalidKey, ValueError) as exc:
            await refusals.abort(context, refusals.Invalid(str(exc)))
        rows = await self._rows(request.camera_id, stream, checked.start_us, checked.end_us)
        if not rows:
            await refusals.abort(context, refusals.NotFound("nothing was recorded in the range"))
        try:
            copied = await asyncio.to_thread(self._copy_all, rows, target, prefix)
        except _Altered as exc:
            await refusals.abort(context, refusals.DataLoss(str(exc)))
        except ObjectNotFound as exc:
            await refusals.abort(context, refusals.DataLoss(f"a segment of the range has no object: {exc}"))
        except StoreUnavailable as exc:
            await _store_unavailable(context, exc)
        log.info(
            "range extracted",
            camera=request.camera_id,
            actor=request.actor,
            bucket=request.target_bucket,
            prefix=prefix,
            segments=len(copied),
        )
        days = self._retention.days_for(request.camera_id)
        return archive_pb2.ExtractRangeResponse(
            segments=[
                archive_pb2.ExtractedSegment(
                    segment=to_message(r), target_key=k, retention_end_us=r.start_us + days * DAY_US
                )
                for r, k in copied
            ]
        )

    def _copy_all(self, rows: list[Segment], target: ObjectStore, prefix: str) -> list[tuple[Segment, str]]:
        target.ensure_bucket()
        copied = []
        self._work_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self._work_dir) as tmp:
            for row in rows:
                path = Path(tmp) / f"{row.id}.mp4"
                digest = hashlib.sha256()
                with path.open("wb") as f:
                    for chunk in self._store.iter_chunks(row.object_key):
                        digest.update(chunk)
                        f.write(chunk)
                # What leaves must be what was recorded: the bytes must match the chain.
                if digest.hexdigest() != row.sha256:
                    raise _Altered(f"segment {row.id} does not match its recorded SHA-256: not extracted")
                key = f"{prefix}/{row.object_key}" if prefix else row.object_key
                meta = {
                    "segment-id": row.id,
                    "camera-id": row.camera_id,
                    "start-us": str(row.start_us),
                    "end-us": str(row.end_us),
                    "sha256": row.sha256,
                    "prev-sha256": row.prev_sha256,
                    "mask-version": row.mask_version,
                    "source-bucket": self._store.bucket,
                }
                target.put_file(key, path, meta, "video/mp4")
                path.unlink()
                copied.append((row, key))
        return copied

    # -- integrity -----------------------------------------------------------------------------

    async def Verify(self, request, context):
        stream = await self._stream(context, request.stream)
        try:
            check_camera_id(request.camera_id)
        except ValueError as exc:
            await refusals.abort(context, refusals.Invalid(str(exc)))
        start = request.start_us or None
        end = request.end_us or None
        if start is not None and end is not None and start >= end:
            await refusals.abort(context, refusals.Invalid("start must be before end"))
        pending = self._live.pending_keys() if self._live is not None else set()
        try:
            report = await asyncio.to_thread(
                verify_chain, self._engine, self._store, request.camera_id, stream, start, end, pending
            )
        except StoreUnavailable as exc:
            await _store_unavailable(context, exc)
        if self._ledger is not None:
            # A row rewritten with its object (database and bucket) still disagrees with the ledger.
            report.problems += await asyncio.to_thread(
                ledger.check_camera,
                self._engine,
                self._now_us(),
                self._retention.days_for,
                request.camera_id,
                stream,
                start,
                end,
            )
        log.info("chain verified", camera=request.camera_id, actor=request.actor, problems=len(report.problems))
        return archive_pb2.VerifyReport(
            camera_id=request.camera_id,
            ok=report.ok,
            segments_checked=report.segments_checked,
            objects_checked=report.objects_checked,
            problems=[_problem(p) for p in report.problems],
        )

    async def VerifyLedger(self, request, context):
        if self._ledger is None:
            await refusals.abort(context, refusals.Conflict("this archive keeps no segment ledger"))
        try:
            report = await asyncio.to_thread(self._ledger.verify, self._retention.days_for)
        except StoreUnavailable as exc:
            await _store_unavailable(context, exc)  # the heads live in the object store
        verdict = report.verdict
        log.info("ledger verified", actor=request.actor, ok=report.ok, problems=len(report.problems))
        return archive_pb2.LedgerVerdict(
            ok=report.ok,
            entries=verdict.entries,
            first_bad_seq=verdict.first_bad_seq or 0,
            problem=verdict.problem or "",
            signed_through=verdict.signed_through or 0,
            anchored_through=verdict.anchored_through or 0,
            problems=[_problem(p) for p in report.problems],
        )

    async def ListDeletionProofs(self, request, context):
        if request.camera_id:
            try:
                check_camera_id(request.camera_id)
            except ValueError as exc:
                await refusals.abort(context, refusals.Invalid(str(exc)))
        if request.end_us and request.start_us >= request.end_us:
            await refusals.abort(context, refusals.Invalid("start must be before end"))
        rows = await asyncio.to_thread(index.proofs, self._engine, request.camera_id, request.start_us, request.end_us)
        return archive_pb2.DeletionProofsResponse(proofs=[proof_message(p) for p in rows])

    # -- holds (citizens' access) ----------------------------------------------------------------

    async def _hold_book(self, context) -> HoldBook:
        if self._holds is None:
            await refusals.abort(context, refusals.Refusal("holds are not configured", grpc.StatusCode.UNIMPLEMENTED))
        assert self._holds is not None
        return self._holds

    async def PlaceHold(self, request, context):
        book = await self._hold_book(context)
        try:
            row = await asyncio.to_thread(
                book.place,
                request.id,
                request.camera_id,
                request.start_us,
                request.end_us,
                request.until_us,
                request.reason,
                request.actor,
            )
        except HoldError as exc:
            await refusals.abort(context, refusals.Invalid(str(exc)))
        # The lifecycle backstop must not delete what is now held; the hourly check would repair
        # it too, but a hold placed on footage about to pass its retention cannot wait an hour.
        try:
            days = await asyncio.to_thread(book.backstop_days, self._retention.longest_days())
            await asyncio.to_thread(lifecycle.ensure_rule, self._store, days)
        except (StoreUnavailable, OSError) as exc:
            log.warning("lifecycle rule not extended for a hold; retried hourly", error=str(exc))
        log.info("hold placed", hold=row.id, camera=row.camera_id, actor=request.actor)
        return hold_message(row)

    async def ReleaseHold(self, request, context):
        book = await self._hold_book(context)
        try:
            row = await asyncio.to_thread(book.release, request.id, request.actor)
        except UnknownHold:
            await refusals.abort(context, refusals.NotFound(f"unknown hold {request.id!r}"))
        log.info("hold released", hold=row.id, camera=row.camera_id, actor=request.actor)
        return hold_message(row)

    async def ListHolds(self, request, context):
        book = await self._hold_book(context)
        rows = await asyncio.to_thread(book.listing, request.camera_id, request.include_released)
        return archive_pb2.ListHoldsResponse(holds=[hold_message(r) for r in rows])

    # -- retention sweep, dry run ----------------------------------------------------------------

    async def DryRunSweep(self, request, context):
        if request.camera_id:
            try:
                check_camera_id(request.camera_id)
            except ValueError as exc:
                await refusals.abort(context, refusals.Invalid(str(exc)))
        # The sweeper's own code with the service's retention and holds, so the answer is what the
        # running sweeper would do; a dry run deletes nothing, so it needs no batch size.
        sweeper = Sweeper(self._engine, self._store, self._clock, self._retention, holds=self._holds)
        now_us = self._now_us()
        pending = await asyncio.to_thread(sweeper.dry_run, request.camera_id)
        log.info("sweep dry run", camera=request.camera_id or "*", actor=request.actor, cameras=len(pending))
        return archive_pb2.SweepDryRun(
            now_us=now_us,
            cameras=[
                archive_pb2.PendingDeletion(
                    camera_id=p.camera_id,
                    stream=p.stream,
                    retention_days=p.retention_days,
                    cutoff_us=p.cutoff_us,
                    count=p.count,
                    bytes=p.bytes,
                    oldest_us=p.oldest_us or 0,
                    newest_us=p.newest_us or 0,
                    held=p.held,
                )
                for p in pending
            ],
        )


def hold_message(row: Hold) -> archive_pb2.HoldInfo:
    return archive_pb2.HoldInfo(
        id=row.id,
        camera_id=row.camera_id,
        start_us=row.start_us,
        end_us=row.end_us,
        until_us=row.until_us,
        reason=row.reason,
        actor=row.actor,
        created_us=row.created_us,
        released_us=row.released_us or 0,
    )


def proof_message(p: DeletionProof) -> archive_pb2.DeletionProof:
    return archive_pb2.DeletionProof(
        camera_id=p.camera_id,
        stream=p.stream,
        hour_start_us=p.hour_start_us,
        count=p.count,
        bytes=p.bytes,
        first_us=p.first_us,
        last_us=p.last_us,
        sha256s=p.sha256s.split(),
        digest=p.digest,
        swept_us=p.swept_us,
        retention_days=p.retention_days,
    )


class _Altered(RuntimeError):
    pass


def _problem(p: Problem) -> archive_pb2.VerifyProblem:
    return archive_pb2.VerifyProblem(
        kind=p.kind,
        segment_id=p.segment_id,
        object_key=p.object_key,
        expected_sha256=p.expected_sha256,
        actual_sha256=p.actual_sha256,
        detail=p.detail,
    )
