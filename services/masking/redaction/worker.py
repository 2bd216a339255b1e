"""The redaction worker task of a masking replica: claims queued jobs, runs them, expires results.

- A job's range is fetched as one clip from ArchiveService (the masked recording; nothing is
  read from the raw stream) into a private temporary folder, redacted (engine.py) on a thread,
  and stored in the redaction bucket under `redactions/<camera>/<job>.mp4`; the temporary folder
  is removed whatever happens.
- Results expire: every SWEEP_S the worker deletes the clips of jobs past `expires_us` and marks
  them expired. On S3 a lifecycle rule (redaction_max_days + 1) backs this up even if masking is
  down. A job cancelled or expired while running stops at its next heartbeat and leaves nothing.
- A job whose replica died is queued again after jobs.STALE_S.
"""

import asyncio
import contextlib
import json
import shutil
import tempfile
from pathlib import Path

import grpc
from prometheus_client import Counter

from services.common.log import get_logger
from services.common.objectstore import ExpiryRule, ObjectStore
from services.common.pb.csu.v1 import archive_pb2, archive_pb2_grpc
from services.common.rpc import StreamStalled, next_message
from services.masking.models import RedactionJobRow
from services.masking.redaction import engine
from services.masking.redaction.jobs import CANCELLED, DONE, FAILED, RedactionJobs

log = get_logger(__name__)

JOBS = Counter("csu_masking_redaction_jobs_total", "Redaction jobs finished, by outcome", ["outcome"])
FRAMES = Counter("csu_masking_redaction_frames_total", "Frames written into redacted clips")
POLL_S = 1.0
SWEEP_S = 5.0
KEY_PREFIX = "redactions/"


def object_key(row: RedactionJobRow) -> str:
    return f"{KEY_PREFIX}{row.camera_id}/{row.id}.mp4"


class RedactionWorker:
    def __init__(
        self,
        jobs: RedactionJobs,
        archive: "archive_pb2_grpc.ArchiveServiceAsyncStub",
        store: ObjectStore,
        worker_id: str,
        colour_bgr: tuple[int, int, int],
        max_days: int,
        work_dir: Path,
        stall_s: float,
    ) -> None:
        self.jobs = jobs
        self.archive = archive
        self.store = store
        self.worker_id = worker_id
        self.colour_bgr = colour_bgr
        self.max_days = max_days
        self.work_dir = work_dir
        # A frozen archive is noticed after this much silence (CSU_STREAM_STALL_S), not at the clip's
        # 600 s deadline.
        self.stall_s = stall_s

    def prepare(self) -> None:
        """The bucket, and on S3 its lifecycle backstop (blocking: run on a thread)."""
        self.store.ensure_bucket()
        if self.store.expires_by_itself:
            self.store.set_expiry_rules([ExpiryRule("redactions-backstop", KEY_PREFIX, self.max_days + 1)])

    async def run(self, stop: asyncio.Event) -> None:
        last_sweep = 0.0
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            try:
                if loop.time() - last_sweep >= SWEEP_S:
                    last_sweep = loop.time()
                    await self.sweep()
                row = await asyncio.to_thread(self.jobs.claim, self.worker_id)
                if row is not None:
                    await self.run_job(row)
                    continue
            except Exception as exc:  # noqa: BLE001 - the worker must outlive one bad round
                log.warning("redaction round failed", error=str(exc) or type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), POLL_S)

    async def sweep(self) -> None:
        await asyncio.to_thread(self.jobs.requeue_stale)
        for row in await asyncio.to_thread(self.jobs.due_for_expiry):
            if row.object_key:
                await asyncio.to_thread(self.store.delete, row.object_key)
            await asyncio.to_thread(self.jobs.mark_expired, row.id)
            log.info("redacted clip expired", job=row.id, camera=row.camera_id)

    async def run_job(self, row: RedactionJobRow) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="redaction-", dir=self.work_dir))
        log.info("redaction started", job=row.id, camera=row.camera_id, actor=row.actor, mode=row.mode)
        try:
            clip_start = await self._fetch(row, folder / "source.mp4")
            selection = [engine.Selection(**s) for s in json.loads(row.selection_json)]

            def progress(fraction: float) -> bool:
                return self.jobs.heartbeat(row.id, self.worker_id, fraction)

            result = await asyncio.to_thread(
                engine.redact, folder / "source.mp4", clip_start, row.start_us, row.end_us, selection, row.mode,
                row.effect, self.colour_bgr, folder / "redacted.mp4", progress,
            )  # fmt: skip
            key = object_key(row)
            info = await asyncio.to_thread(
                self.store.put_file,
                key,
                folder / "redacted.mp4",
                {"job-id": row.id, "camera-id": row.camera_id, "expires-us": str(row.expires_us)},
                "video/mp4",
            )
            track = json.dumps([[t, *box] if box else [t] for t, box in result.track])
            finished = await asyncio.to_thread(
                self.jobs.finish, row.id, self.worker_id, DONE, frames=result.frames, size=info.size,
                object_key=key, track_json=track,
            )  # fmt: skip
            if not finished:
                # Expired or cancelled meanwhile: nothing may stay behind.
                await asyncio.to_thread(self.store.delete, key)
                JOBS.labels("cancelled").inc()
                return
            FRAMES.inc(result.frames)
            JOBS.labels("done").inc()
            log.info("redaction done", job=row.id, frames=result.frames, bytes=info.size)
        except engine.Cancelled:
            await asyncio.to_thread(self.jobs.finish, row.id, self.worker_id, CANCELLED)
            JOBS.labels("cancelled").inc()
            log.info("redaction cancelled", job=row.id)
        except _SourceError as exc:
            await asyncio.to_thread(self.jobs.finish, row.id, self.worker_id, FAILED, error=str(exc))
            JOBS.labels("failed").inc()
        except Exception as exc:
            log.exception("redaction failed", job=row.id)
            await asyncio.to_thread(
                self.jobs.finish, row.id, self.worker_id, FAILED, error=f"{type(exc).__name__}: {exc}"
            )
            JOBS.labels("failed").inc()
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    async def _fetch(self, row: RedactionJobRow, path: Path) -> int:
        """Write the range's clip (from the archive) to path; the capture time of its first frame."""
        request = archive_pb2.ClipRequest(
            camera_id=row.camera_id, start_us=row.start_us, end_us=row.end_us, stream="main",
            actor=f"redaction:{row.actor}",
        )  # fmt: skip
        start_us = 0
        call = self.archive.OpenClip(request, timeout=600)
        try:
            with path.open("wb") as f:
                while (chunk := await next_message(call, self.stall_s)) is not None:
                    if chunk.HasField("info"):
                        start_us = chunk.info.start_us
                    if chunk.data:
                        await asyncio.to_thread(f.write, chunk.data)
        except grpc.aio.AioRpcError as exc:
            raise _SourceError(f"the recording could not be read: {exc.details() or exc.code().name}") from exc
        except StreamStalled as exc:
            raise _SourceError(f"the archive stopped answering while sending the recording ({exc})") from exc
        return start_us


class _SourceError(RuntimeError):
    pass
