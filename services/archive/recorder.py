"""Storing closed segments: object store first, then the index row, then the event.

That order means an index row never points to a missing object. Segments are stored one at a
time in the order they closed; when the store, the database or NATS fails, the same segment is
retried (every step is idempotent) and later ones wait in the spool, so nothing is lost or
reordered. Segments left in the spool by a crash are picked up again at start-up.
"""

import asyncio
from pathlib import Path

from nats.js import JetStreamContext
from prometheus_client import Counter, Gauge
from sqlalchemy import Engine

from services.archive import index
from services.archive.grpc_api import to_message
from services.archive.keys import segment_key
from services.archive.models import Segment
from services.archive.segmenter import ClosedSegment
from services.common import bus
from services.common.clock import Clock, to_us
from services.common.log import get_logger
from services.common.objectstore import ObjectStore
from services.common.pb.csu.v1.events_pb2 import SegmentStored

log = get_logger(__name__)

STORED = Counter("csu_archive_segments_stored_total", "Segments stored and indexed", ["camera"])
STORED_BYTES = Counter("csu_archive_bytes_stored_total", "Bytes of segments stored", ["camera"])
FAILURES = Counter("csu_archive_store_failures_total", "Failed attempts to store and index a segment")
BACKLOG = Gauge("csu_archive_backlog_segments", "Closed segments waiting to be stored")

RETRY_MIN_S, RETRY_MAX_S = 0.5, 10.0


def object_metadata(seg: ClosedSegment) -> dict[str, str]:
    """Everything needed to rebuild the index row from the object alone."""
    return {
        "segment-id": seg.id,
        "camera-id": seg.camera_id,
        "stream": seg.stream,
        "start-us": str(seg.start_us),
        "end-us": str(seg.end_us),
        "sha256": seg.sha256,
        "frames": str(seg.frames),
        "mask-version": seg.mask_version,
        "fully-masked": "1" if seg.fully_masked else "0",
    }


class Recorder:
    def __init__(
        self, spool: Path, store: ObjectStore, engine: Engine, js: JetStreamContext, prefix: str, clock: Clock
    ) -> None:
        self._spool = spool
        self._store = store
        self._engine = engine
        self._js = js
        self._prefix = prefix
        self._clock = clock
        self._queue: asyncio.Queue[ClosedSegment] = asyncio.Queue()

    def recover(self) -> int:
        """Queue the segments a previous run closed but did not store; drop half-written ones."""
        ready = sorted((ClosedSegment.load(p) for p in self._spool.glob("*.json")), key=lambda s: s.start_us)
        known = {s.id for s in ready}
        for media in self._spool.glob("*.mp4"):
            if media.stem not in known:
                log.warning("dropping unfinished segment left by a crash", file=media.name)
                media.unlink()
        for seg in ready:
            self.submit(seg)
        return len(ready)

    def submit(self, seg: ClosedSegment) -> None:
        self._queue.put_nowait(seg)
        BACKLOG.set(self._queue.qsize())

    async def run(self) -> None:
        while True:
            seg = await self._queue.get()
            delay = RETRY_MIN_S
            while True:
                try:
                    await self._store_one(seg)
                    break
                except Exception as exc:  # noqa: BLE001 - every failure is retried the same way
                    FAILURES.inc()
                    log.warning("segment not stored yet, retrying", segment=seg.id, error=str(exc), retry_in_s=delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX_S)
            self._queue.task_done()
            BACKLOG.set(self._queue.qsize())

    async def drain(self) -> None:
        """Return once every submitted segment is stored."""
        await self._queue.join()

    async def _store_one(self, seg: ClosedSegment) -> None:
        key = segment_key(seg.camera_id, seg.start_us)
        media = seg.media_path(self._spool)
        await asyncio.to_thread(self._store.put_file, key, media, object_metadata(seg), "video/mp4")
        row = Segment(
            id=seg.id,
            camera_id=seg.camera_id,
            stream=seg.stream,
            start_us=seg.start_us,
            end_us=seg.end_us,
            object_key=key,
            bytes=seg.bytes,
            sha256=seg.sha256,
            frames=seg.frames,
            mask_version=seg.mask_version,
            fully_masked=seg.fully_masked,
            created_us=to_us(self._clock.now()),
        )
        await asyncio.to_thread(index.insert, self._engine, row)
        event = SegmentStored(segment=to_message(row))
        await bus.publish_event(self._js, self._prefix, "segment.stored", event.SerializeToString())
        media.unlink(missing_ok=True)
        seg.description_path(self._spool).unlink(missing_ok=True)
        STORED.labels(seg.camera_id).inc()
        STORED_BYTES.labels(seg.camera_id).inc(seg.bytes)
        log.info("segment stored", camera=seg.camera_id, segment=seg.id, key=key, frames=seg.frames, bytes=seg.bytes)
