"""Storing closed segments: object store first, then the index row, then the event.

Segments are stored one at a time, in the order they closed, so each camera's hash chain follows
time. Each object carries in its metadata everything its index row holds, including the previous
segment's hash (the chain).

- Object store away: the same segment is retried and later ones wait in the spool (bounded, see
  spool.py), so nothing is lost or reordered; they leave in order when the store returns.
- Database away: the object is stored anyway and the segment leaves the spool; a `pending` entry
  remembers that its row is missing, and `flush_pending` writes it from the object's metadata
  when the database is back (as the start-up reconcile would).
- NATS away: the event waits in the same `pending` entry.

An index row is only written once its object is stored, so no row ever points to a missing
object. Segments left in the spool by a crash are queued again at start-up, and the segment a
crash interrupted is kept up to its last complete fragment (salvage.py).

Replicas (node.py): a camera's segments are stored only by the replica holding its lease
(`may_store`), so each camera's chain has one writer at a time, and its head is read again from
the index when the camera is taken (`forget_head`). Stored means the frames can leave the
masked-frame buffer: `on_stored` acknowledges them. A segment is stored once: an object already
under its key (camera and start) with another segment's id means the camera was recorded from
that instant already (a takeover replayed the same frames): ours is dropped, theirs stays.
Segments of a camera this replica no longer holds wait ("parked", a handover while the store was
away): once the holder has stored past them they go, as duplicates or as footage already covered,
or, when the buffer had lost those frames, are stored late (`settle_parked`), so no footage is
dropped that only this spool holds.

Retention applies in the spool too: a segment still waiting when its start passes its camera's
cutoff (the store away for that long, or the archive stopped with a persistent spool) is deleted
unstored, with the same rule and holds as the sweeper, and added to its camera-hour's deletion
proof. With the database away the holds are unknown: it then waits until the legal maximum, which
no hold passes, and goes then; its description stays in the spool (`unproved/`, no footage) until
the database is back and its deletion proof is written. `expire_past_legal` applies the same
legal maximum before the database has ever been reached (an archive starting while it is away).
Design: docs/design/reliability.md
"""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path

from nats.js import JetStreamContext
from prometheus_client import Counter, Gauge
from sqlalchemy import Engine

from services.archive import index
from services.archive.grpc_api import to_message
from services.archive.holds import LEGAL_US, HoldBook
from services.archive.keys import segment_key
from services.archive.metadata import object_metadata, row_for, row_from_metadata
from services.archive.models import Segment
from services.archive.retention import RetentionPolicy
from services.archive.salvage import salvage
from services.archive.segmenter import ClosedSegment
from services.archive.spool import Spool
from services.common import bus
from services.common.clock import Clock, to_us
from services.common.log import get_logger
from services.common.objectstore import ObjectNotFound, ObjectStore
from services.common.pb.csu.v1.events_pb2 import SegmentStored

log = get_logger(__name__)

STORED = Counter("csu_archive_segments_stored_total", "Segments stored and indexed", ["camera"])
STORED_BYTES = Counter("csu_archive_bytes_stored_total", "Bytes of segments stored", ["camera"])
FAILURES = Counter("csu_archive_store_failures_total", "Failed attempts to store a segment")
DEFERRED = Counter("csu_archive_deferred_total", "Stored segments whose index row or event had to wait", ["step"])
BACKLOG = Gauge("csu_archive_backlog_segments", "Closed segments waiting to be stored")
PENDING = Gauge("csu_archive_pending_segments", "Stored segments not yet indexed or announced")
EXPIRED = Counter("csu_archive_spool_expired_total", "Spooled segments deleted unstored at retention", ["camera"])
# Owed proofs written per transaction: a spool's debt after a long outage (a day of one camera in
# 2 s segments is 43,200) goes in bounded transactions, each a few hundred rows.
PROOF_BATCH = 500
UNPROVED = Gauge("csu_archive_unproved_deletions", "Segments deleted whose deletion proof waits for the database")
DUPLICATES = Counter(
    "csu_archive_duplicate_segments_total", "Segments not stored: the camera was already recorded from that instant"
)
LATE = Counter("csu_archive_late_segments_total", "Segments stored after later ones of their camera (a handover)")

RETRY_MIN_S, RETRY_MAX_S = 0.5, 10.0
# Before storing can start, how often what waits in the spool is checked against retention.
EXPIRY_CHECK_S = 60.0


class Recorder:
    def __init__(
        self,
        spool: Spool,
        store: ObjectStore,
        engine: Engine,
        js: JetStreamContext | None,
        prefix: str,
        clock: Clock,
        retention: RetentionPolicy,
        holds: HoldBook,
        *,
        may_store: Callable[[str], bool] | None = None,
        on_stored: Callable[[ClosedSegment], Awaitable[None]] | None = None,
    ) -> None:
        self._spool = spool
        self._store = store
        self._engine = engine
        self._js = js
        self._prefix = prefix
        self._clock = clock
        self._retention = retention
        self._holds = holds
        self._may_store = may_store or (lambda camera_id: True)
        self._on_stored = on_stored
        # Submitted and not yet stored, by id, in the order they closed: still readable from the
        # spool (clips, timeline).
        self._waiting: dict[str, ClosedSegment] = {}
        self._wake = asyncio.Event()
        # The hash of each (camera, stream)'s last stored segment: the next one's prev_sha256.
        self._heads: dict[tuple[str, str], str] = {}
        # Storing starts once the chain heads are known (after the start-up reconcile).
        self.ready = asyncio.Event()

    def attach_events(self, js: JetStreamContext) -> None:
        """Events can be published from now on (NATS connects after the recorder exists)."""
        self._js = js

    @property
    def spool_dir(self) -> Path:
        return self._spool.root

    def prime(self) -> None:
        """Learn every chain's head from the index (after the reconcile has completed it)."""
        for camera_id, stream in index.cameras(self._engine):
            head = index.last(self._engine, camera_id, stream)
            if head is not None:
                self._heads[(camera_id, stream)] = head.sha256

    def forget_head(self, camera_id: str, stream: str = "main") -> None:
        """The camera was just taken: another replica may have stored since; read its head again."""
        self._heads.pop((camera_id, stream), None)

    def recover(self) -> int:
        """Queue what a previous run left: the segments it closed, and the complete fragments of those
        it was writing (salvage.py); a media file with neither marker nor description goes."""
        for marker in self._spool.open_markers():
            salvage(self._spool.root, marker)
        ready = self._spool.closed()
        known = {s.id for s in ready}
        for media in self._spool.root.glob("*.mp4"):
            if media.stem not in known:
                log.warning("dropping a spool file no segment describes", file=media.name)
                media.unlink()
        for seg in ready:
            self.submit(seg)
        return len(ready)

    def submit(self, seg: ClosedSegment) -> None:
        self._waiting[seg.id] = seg
        self._wake.set()
        BACKLOG.set(len(self._waiting))

    def waiting_for(self, camera_id: str) -> list[ClosedSegment]:
        return [s for s in list(self._waiting.values()) if s.camera_id == camera_id]

    def spooled(self, camera_id: str, stream: str) -> list[ClosedSegment]:
        """Closed segments of the camera still waiting in the spool, in time order."""
        return sorted(
            (s for s in list(self._waiting.values()) if s.camera_id == camera_id and s.stream == stream),
            key=lambda s: s.start_us,
        )

    def pending_keys(self) -> set[str]:
        return {p.key for p in self._spool.pending()}

    def _next(self) -> ClosedSegment | None:
        """The oldest-closed waiting segment this replica may store now."""
        for seg in list(self._waiting.values()):
            if self._may_store(seg.camera_id):
                return seg
        return None

    async def run(self) -> None:
        seg: ClosedSegment | None
        while not self.ready.is_set():
            # Nothing is stored before the chain heads are known (store or database away since the
            # start), but what waits here still goes at its retention.
            for seg in list(self._waiting.values()):
                await self._expire(seg)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.ready.wait(), EXPIRY_CHECK_S)
        while True:
            seg = self._next()
            if seg is None:
                self._wake.clear()
                # Woken by a submission; a camera taken again makes its parked segments storable.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 1.0)
                continue
            delay = RETRY_MIN_S
            # Checked before every attempt: a segment stuck behind a long outage expires meanwhile,
            # and one whose camera was handed over meanwhile waits for its holder (settle_parked).
            while seg.id in self._waiting and self._may_store(seg.camera_id) and not await self._expire(seg):
                try:
                    await self._store_one(seg)
                    self._waiting.pop(seg.id, None)
                except Exception as exc:  # noqa: BLE001 - every failure is retried the same way
                    FAILURES.inc()
                    log.warning("segment not stored yet, retrying", segment=seg.id, error=str(exc), retry_in_s=delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX_S)
            BACKLOG.set(len(self._waiting))

    async def drain(self, camera_id: str | None = None) -> None:
        """Return once every segment this replica may store (of one camera, when given) is stored."""
        while any(
            self._may_store(s.camera_id) and camera_id in (None, s.camera_id) for s in list(self._waiting.values())
        ):
            await asyncio.sleep(0.05)

    async def _expire(self, seg: ClosedSegment) -> bool:
        """Delete a waiting segment whose start has passed its retention cutoff; True if it went."""
        now_us = to_us(self._clock.now())
        cutoff_us = self._retention.cutoff_us(seg.camera_id, now_us)
        if seg.start_us >= cutoff_us:
            return False
        try:
            cutoff_us = await asyncio.to_thread(
                self._holds.read_cutoff, seg.camera_id, cutoff_us, seg.start_us, seg.end_us, now_us
            )
        except Exception:  # noqa: BLE001 - holds unknown: only the legal maximum is certain
            cutoff_us = now_us - LEGAL_US
        if seg.start_us >= cutoff_us:
            return False
        try:
            await asyncio.to_thread(self._prove, [(seg, now_us)])
        except Exception as exc:  # noqa: BLE001 - the database is away
            if seg.start_us >= now_us - LEGAL_US:
                return False  # it goes with its proof once the database is back
            _discard_unproved(self._spool, seg, now_us, str(exc) or type(exc).__name__)
        else:
            self._spool.discard(seg)
            EXPIRED.labels(seg.camera_id).inc()
            log.warning("spooled segment deleted unstored: past its retention", camera=seg.camera_id, segment=seg.id)
        self._waiting.pop(seg.id, None)
        return True

    def _prove(self, owed: list[tuple[ClosedSegment, int]]) -> None:
        """Add segments of one camera deleted unstored to their camera-hours' deletion proofs, each
        once, in one transaction: the trail's next summary (erasure_audit.py) then names each proof
        whole, not once per segment as it grows."""
        camera_id = owed[0][0].camera_id
        first_us = min(seg.start_us for seg, _ in owed)
        last_us = max(seg.start_us for seg, _ in owed)
        # Proved by a run that stopped before it could forget the debt: not twice.
        proved = {
            (proof.stream, sha)
            for proof in index.proofs(self._engine, camera_id, first_us, last_us + 1)
            for sha in proof.sha256s.split()
        }
        rows = [
            row_for(seg, segment_key(seg.camera_id, seg.start_us), "", deleted_us)
            for seg, deleted_us in owed
            if (seg.stream, seg.sha256) not in proved
        ]
        deleted_us = max(when for _, when in owed)
        index.delete_with_proofs(self._engine, rows, deleted_us, self._retention.days_for(camera_id))

    async def flush_unproved(self) -> int:
        """Write the deletion proofs owed for segments deleted with the database away; the count done."""
        owed = self._spool.unproved()
        batches: dict[str, list[tuple[ClosedSegment, int]]] = {}
        for seg, deleted_us in owed:
            batches.setdefault(seg.camera_id, []).append((seg, deleted_us))
        done = 0
        for camera_owed in batches.values():
            for start in range(0, len(camera_owed), PROOF_BATCH):
                batch = camera_owed[start : start + PROOF_BATCH]
                try:
                    await asyncio.to_thread(self._prove, batch)
                except Exception as exc:  # noqa: BLE001 - still away; try again later
                    log.info("deletion proofs wait for the database", error=str(exc) or type(exc).__name__)
                    UNPROVED.set(len(owed) - done)
                    return done
                for seg, _ in batch:
                    self._spool.drop_unproved(seg.id)
                done += len(batch)
        UNPROVED.set(len(owed) - done)
        return done

    async def _head(self, camera_id: str, stream: str) -> str:
        key = (camera_id, stream)
        if key not in self._heads:
            # A camera first seen in this run: its chain may already exist in the index. If the
            # database is away this raises and the segment waits (it cannot be chained blindly).
            row = await asyncio.to_thread(index.last, self._engine, camera_id, stream)
            self._heads[key] = row.sha256 if row is not None else ""
        return self._heads[key]

    async def _already_stored(self, seg: ClosedSegment, key: str) -> bool:
        """True when another segment is stored under this key: the camera was recorded from this instant."""
        try:
            info = await asyncio.to_thread(self._store.stat, key)
        except ObjectNotFound:
            return False
        if (info.metadata or {}).get("segment-id") == seg.id:
            return False  # our own earlier attempt (stored, then a failure before the index row)
        DUPLICATES.inc()
        log.warning("segment not stored: the camera is already recorded from its start", segment=seg.id, key=key)
        self._forget(seg)
        if self._on_stored is not None:
            await self._on_stored(seg)  # its frames are in the store all the same
        return True

    def _forget(self, seg: ClosedSegment) -> None:
        seg.media_path(self._spool.root).unlink(missing_ok=True)
        seg.description_path(self._spool.root).unlink(missing_ok=True)
        self._waiting.pop(seg.id, None)

    async def _store_one(self, seg: ClosedSegment, late: bool = False) -> None:
        key = segment_key(seg.camera_id, seg.start_us)
        media = seg.media_path(self._spool.root)
        if await self._already_stored(seg, key):
            return
        if late:
            # After later segments of its camera: chained to the one before it in time.
            before = await asyncio.to_thread(index.predecessor, self._engine, seg.camera_id, seg.stream, seg.start_us)
            prev = before.sha256 if before is not None else ""
        else:
            prev = await self._head(seg.camera_id, seg.stream)
        await asyncio.to_thread(self._store.put_file, key, media, object_metadata(seg, prev), "video/mp4")
        if not late:
            self._heads[(seg.camera_id, seg.stream)] = seg.sha256
        row = row_for(seg, key, prev, to_us(self._clock.now()))
        try:
            await asyncio.to_thread(index.insert, self._engine, row)
        except Exception as exc:  # noqa: BLE001 - the database is away: index it later
            DEFERRED.labels("index").inc()
            log.warning("segment stored, index row deferred", segment=seg.id, key=key, error=str(exc))
            self._spool.add_pending(seg.id, key, indexed=False)
        else:
            if not await self._announce(row):
                self._spool.add_pending(seg.id, key, indexed=True)
        media.unlink(missing_ok=True)
        seg.description_path(self._spool.root).unlink(missing_ok=True)
        PENDING.set(len(self._spool.pending()))
        STORED.labels(seg.camera_id).inc()
        STORED_BYTES.labels(seg.camera_id).inc(seg.bytes)
        log.info("segment stored", camera=seg.camera_id, segment=seg.id, key=key, frames=seg.frames, bytes=seg.bytes)
        if self._on_stored is not None:
            await self._on_stored(seg)

    async def settle_parked(self) -> int:
        """Decide on the waiting segments of cameras this replica no longer holds; how many went.

        Each waits until the camera's holder has stored past its start. Then it is a duplicate (the
        holder recorded the same frames again from the buffer: same start, dropped when storing),
        or covered by what the holder stored (dropped), or footage the buffer no longer had when
        the holder took over: stored late, in its place in time.
        """
        if not self.ready.is_set():
            return 0
        done = 0
        for seg in [s for s in list(self._waiting.values()) if not self._may_store(s.camera_id)]:
            if await self._expire(seg):
                continue  # its retention passed while it waited: it goes, with its deletion proof
            try:
                head = await asyncio.to_thread(index.last, self._engine, seg.camera_id, seg.stream)
                if head is None or head.start_us <= seg.start_us:
                    continue  # the holder has not got this far yet
                spans = await asyncio.to_thread(
                    index.spans, self._engine, seg.camera_id, seg.stream, seg.start_us, seg.end_us
                )
                if _covers(spans, seg.start_us, seg.end_us):
                    log.info("parked segment recorded by the camera's holder: dropped", segment=seg.id)
                    self._forget(seg)
                else:
                    LATE.inc()
                    log.warning("parked segment stored late: the buffer no longer had it", segment=seg.id)
                    await self._store_one(seg, late=True)
                    self._waiting.pop(seg.id, None)
                done += 1
            except Exception as exc:  # noqa: BLE001 - store or database away: next round
                log.info("parked segments wait", error=str(exc) or type(exc).__name__)
                break
        BACKLOG.set(len(self._waiting))
        return done

    async def _announce(self, row: Segment) -> bool:
        if self._js is None:
            return False
        try:
            event = SegmentStored(segment=to_message(row))
            await bus.publish_event(self._js, self._prefix, "segment.stored", event.SerializeToString())
            return True
        except Exception as exc:  # noqa: BLE001 - NATS is away: announce it later
            DEFERRED.labels("event").inc()
            log.warning("segment stored, event deferred", segment=row.id, error=str(exc) or type(exc).__name__)
            return False

    async def flush_pending(self) -> int:
        """Index and announce what was stored while the database or NATS was away; the count done."""
        done = 0
        for entry in self._spool.pending():
            try:
                if not entry.indexed:
                    info = await asyncio.to_thread(self._store.stat, entry.key)
                    row = row_from_metadata(entry.key, info.size, info.metadata, to_us(self._clock.now()))
                    await asyncio.to_thread(index.insert, self._engine, row)
                    self._spool.add_pending(entry.segment_id, entry.key, indexed=True)
                else:
                    found = await asyncio.to_thread(index.get, self._engine, entry.segment_id)
                    if found is None:  # swept meanwhile: nothing left to announce
                        self._spool.drop_pending(entry.segment_id)
                        continue
                    row = found
            except ObjectNotFound:
                log.warning("pending segment no longer in the store", key=entry.key)
                self._spool.drop_pending(entry.segment_id)
                continue
            except Exception as exc:  # noqa: BLE001 - still away; try again later
                log.info("pending segments wait", error=str(exc) or type(exc).__name__)
                return done
            if not await self._announce(row):
                return done
            self._spool.drop_pending(entry.segment_id)
            done += 1
        PENDING.set(len(self._spool.pending()))
        return done


def _covers(spans: list[tuple[int, int]], start_us: int, end_us: int, slack_us: int = 250_000) -> bool:
    """Whether the stored spans cover [start_us, end_us) but for holes under `slack_us` (frame jitter)."""
    cursor = start_us
    for a, b in spans:
        if a - cursor > slack_us:
            return False
        cursor = max(cursor, b)
    return end_us - cursor <= slack_us


def expire_past_legal(spool: Spool, now_us: int) -> int:
    """Delete the spooled segments past the legal maximum, for an archive that has not reached its
    database yet (no retention settings, no holds): none of them can keep a segment longer. Their
    deletion proofs are written once the database is reached. Returns how many went."""
    expired = [seg for seg in spool.closed() if seg.start_us < now_us - LEGAL_US]
    for seg in expired:
        _discard_unproved(spool, seg, now_us, "the database has not been reached since start-up")
    return len(expired)


def _discard_unproved(spool: Spool, seg: ClosedSegment, now_us: int, why: str) -> None:
    # The debt is written before the footage goes: a crash in between leaves a proof to write
    # for a segment still in the spool, which the next pass deletes, never footage without a trace.
    spool.add_unproved(seg, now_us)
    spool.discard(seg)
    EXPIRED.labels(seg.camera_id).inc()
    UNPROVED.set(len(spool.unproved()))
    log.error(
        "spooled segment deleted at the legal maximum; its deletion proof waits for the database",
        camera=seg.camera_id,
        segment=seg.id,
        error=why,
    )
