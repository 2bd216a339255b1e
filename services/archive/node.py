"""One archive replica: masked frames in, segments out, and the loops that keep the archive whole.

- `on_masked` cuts each camera's masked packets into segments (segmenter.py) and hands the
  closed ones to the recorder (recorder.py), which stores them in order through the spool.
- `_watch` (every 0.5 s) closes the segments of cameras gone silent and watches the spool: past
  its limit recording pauses (a "storage_outage" gap), past 80 % an alarm is raised.
- `_prepare_store` waits for the object store, then: bucket, lifecycle rule, one sweep, the
  reconcile of the recent hours (index <-> store), the hash chains' heads; only then do spooled
  segments start leaving.
- `_sweep_loop` applies retention (and audits the erasures, refreshes the lifecycle rule);
  `_pending_loop` writes what waited for the database or NATS (index rows, events, proofs, gaps).

The node is also the API's view of the recording side (`LiveSegments` in grpc_api.py): spooled
and open segments, and the keys stored but not yet indexed.
"""

import asyncio
from datetime import timedelta
from pathlib import Path

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from prometheus_client import Gauge
from sqlalchemy import Engine

from services.archive import camera_gaps, erasure_audit, index, lifecycle
from services.archive.alarms import raise_alarm
from services.archive.grpc_api import proof_message
from services.archive.holds import HoldBook
from services.archive.models import Gap
from services.archive.reconcile import reconcile
from services.archive.recorder import Recorder
from services.archive.retention import RetentionPolicy
from services.archive.segmenter import DROPPED, ClosedSegment, OpenSegmentInfo, SegmentBuilder
from services.archive.spool import Spool, SpoolMonitor
from services.archive.sweeper import Sweeper
from services.common import bus, subjects
from services.common.clock import Clock, to_us
from services.common.envelope import parse_frame
from services.common.log import get_logger
from services.common.objectstore import ObjectStore
from services.common.pb.csu.v1.events_pb2 import SegmentsDeleted
from services.common.settings import Settings

log = get_logger(__name__)
SPOOL_BYTES = Gauge("csu_archive_spool_bytes", "Bytes of segments in the local spool")
RECORDING_PAUSED = Gauge("csu_archive_recording_paused", "1 while the spool is full and recording is paused")
HOUR = timedelta(hours=1)
# How long a stop waits for the spool to empty into the store, inside the launcher's 20 s.
DRAIN_S = 15.0


class GapLog:
    """Gaps to record; kept in memory and retried while the database is away."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._waiting: list[Gap] = []
        self._lock = asyncio.Lock()

    def add(self, gap: Gap) -> None:
        self._waiting.append(gap)

    async def flush(self) -> None:
        async with self._lock:  # one writer, so no gap is written twice
            while self._waiting:
                try:
                    await asyncio.to_thread(index.add_gap, self._engine, self._waiting[0])
                except Exception as exc:  # noqa: BLE001 - the database is away; next round
                    log.info("gap not recorded yet", error=str(exc) or type(exc).__name__)
                    return
                self._waiting.pop(0)


class ArchiveNode:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        store: ObjectStore,
        spool: Spool,
        retention: RetentionPolicy,
        holds: HoldBook,
        clock: Clock,
        stop: asyncio.Event,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.store = store
        self.spool = spool
        self.retention = retention
        self.holds = holds
        self.clock = clock
        self.prefix = settings.nats_prefix
        self._stop = stop
        self.recorder = Recorder(spool, store, engine, None, self.prefix, clock, retention, holds)
        self.gap_log = GapLog(engine)
        self.sweeper = Sweeper(engine, store, clock, retention, settings.archive_sweep_batch, holds=holds)
        self.monitor = SpoolMonitor(spool, self._spool_alarm)
        self.builders: dict[tuple[str, str], SegmentBuilder] = {}
        # Since when each (camera, stream) has been paused by a full spool.
        self.paused: dict[tuple[str, str], int] = {}
        # Each (camera, stream)'s last recorded instant: a clean stop leaves it for the next run.
        self.last_seen: dict[tuple[str, str], int] = {}
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[object]] = set()
        self._subscription: object | None = None

    # -- the API's view of the recording side (grpc_api.LiveSegments) ---------------------------

    def spooled(self, camera_id: str, stream: str) -> list[ClosedSegment]:
        return self.recorder.spooled(camera_id, stream)

    def open_segment(self, camera_id: str, stream: str) -> OpenSegmentInfo | None:
        builder = self.builders.get((camera_id, stream))
        return builder.open_segment() if builder is not None else None

    @property
    def spool_dir(self) -> Path:
        return self.recorder.spool_dir

    def pending_keys(self) -> set[str]:
        return self.recorder.pending_keys()

    # -- life ------------------------------------------------------------------------------------

    async def recover(self) -> int:
        """What the previous run left: its gaps recorded, its closed segments queued; how many."""
        self._restart_gaps(to_us(self.clock.now()))
        await self.gap_log.flush()
        return self.recorder.recover()

    async def start(self, nc: Client) -> None:
        """Events can be published, the loops run and masked frames are recorded from now on."""
        self._nc = nc
        js = self._js = nc.jetstream()
        await bus.ensure_events_stream(js, self.prefix)
        self.recorder.attach_events(js)
        self._tasks = [
            asyncio.create_task(self.recorder.run()),
            asyncio.create_task(self._watch()),
            asyncio.create_task(self._prepare_store()),
            asyncio.create_task(self._sweep_loop()),
            asyncio.create_task(self._pending_loop()),
            asyncio.create_task(camera_gaps.consume(js, self.prefix, self.engine, self.clock, self._stop)),
        ]
        self._subscription = await nc.subscribe(
            subjects.masked(self.prefix, "*", "main"),
            cb=self.on_masked,
            pending_msgs_limit=100_000,
            pending_bytes_limit=512 * 1024 * 1024,
        )

    async def stop(self) -> None:
        """Close what is open so a clean stop loses nothing; the spool keeps it if storing is slow."""
        if self._subscription is not None:
            await self._subscription.unsubscribe()  # type: ignore[attr-defined]
        for task in self._tasks[1:]:
            task.cancel()
        for builder in self.builders.values():
            closed = builder.close()
            if closed is not None:
                self.recorder.submit(closed)
        now_us = to_us(self.clock.now())
        for key, since in self.paused.items():
            self.gap_log.add(self._gap(key, since, now_us, "storage_outage", "spool full"))
        self.spool.write_stopped(self.last_seen, now_us)
        if self.recorder.ready.is_set():
            try:
                await asyncio.wait_for(self.recorder.drain(), timeout=DRAIN_S)
            except TimeoutError:
                log.warning("stopping with segments still in the spool; they are stored at next start")
        await self.gap_log.flush()
        if self._tasks:
            self._tasks[0].cancel()

    # -- frames ----------------------------------------------------------------------------------

    async def on_masked(self, msg: Msg) -> None:
        prefix = self.prefix
        try:
            packet = parse_frame(msg.subject, msg.data, lambda cam, stream: subjects.masked(prefix, cam, stream))
        except ValueError:
            DROPPED.labels("unknown", "malformed").inc()
            return
        key = (packet.camera_id, packet.stream)
        builder = self.builders.get(key)
        if builder is None:
            builder = self.builders[key] = SegmentBuilder(
                packet.camera_id,
                packet.stream,
                self.spool.root,
                self.settings.segment_duration_s,
                self.settings.segment_gap_s,
            )
        if self.monitor.full:
            # The spool is full (the store has been away too long): stop recording rather than
            # fill the disk; the time lost is a storage_outage gap.
            closed = builder.close()
            if closed is not None:
                self.recorder.submit(closed)
            self.paused.setdefault(key, packet.capture_time_us)
            DROPPED.labels(packet.camera_id, "spool_full").inc()
            return
        if key in self.paused:
            gap = self._gap(key, self.paused.pop(key), packet.capture_time_us, "storage_outage", "spool full")
            self.gap_log.add(gap)
            self._in_background(self.gap_log.flush())
        self.last_seen[key] = packet.capture_time_us
        for closed in builder.add(packet):
            self.recorder.submit(closed)

    # -- loops -----------------------------------------------------------------------------------

    def _in_background(self, work: object) -> None:
        task = asyncio.create_task(work)  # type: ignore[arg-type]
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _spool_alarm(self, fraction: float) -> None:
        # In the background: NATS may be slow or away, and the watch loop must keep going.
        message = f"the archive spool is {fraction:.0%} full: the object store is not taking segments"
        assert self._js is not None
        self._in_background(raise_alarm(self._js, self.prefix, self.clock, "archive.spool_high", message))

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            for builder in self.builders.values():
                closed = builder.close_if_idle()
                if closed is not None:
                    self.recorder.submit(closed)
            was_full = self.monitor.full
            await self.monitor.check()
            SPOOL_BYTES.set(self.monitor.usage)
            if self.monitor.full != was_full:
                if self.monitor.full:
                    log.error("spool full: recording paused until the object store takes segments again")
                else:
                    log.info("spool drained: recording resumes")
            RECORDING_PAUSED.set(1 if self.monitor.full else 0)

    async def _prepare_store(self) -> None:
        """Bucket, lifecycle rule, sweep, reconcile, chain heads: then storing may begin."""
        delay = 0.5
        while not self._stop.is_set():
            try:
                await self._prepare()
                self.recorder.ready.set()
                return
            except Exception as exc:  # noqa: BLE001 - the store (or database) is not there yet
                log.warning("object store not ready; segments wait in the spool", error=str(exc) or type(exc).__name__)
                await self._sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _prepare(self) -> None:
        store, engine, clock = self.store, self.engine, self.clock
        assert self._js is not None
        await asyncio.to_thread(store.ensure_bucket)
        days = await asyncio.to_thread(self.holds.backstop_days, self.retention.longest_days())
        await asyncio.to_thread(lifecycle.ensure_rule, store, days)
        await asyncio.to_thread(self.sweeper.sweep)
        now_us = to_us(clock.now())
        cameras = set(await asyncio.to_thread(index.camera_ids, engine)) | set(self.retention.known_cameras())
        cameras |= {key.split("/")[1] for key in self.recorder.pending_keys()}
        window_us = int(self.settings.archive_reconcile_hours * 3_600_000_000)
        report = await asyncio.to_thread(
            reconcile, engine, store, sorted(cameras), now_us - window_us, now_us + 3_600_000_000, now_us
        )
        for row in report.removed:
            message = f"segment {row.id} ({row.object_key}) was indexed but its object is gone"
            await raise_alarm(self._js, self.prefix, clock, "archive.object_missing", message, row.camera_id)
        if report.indexed or report.removed or report.refused:
            log.warning(
                "reconcile",
                indexed=len(report.indexed),
                removed=len(report.removed),
                refused=len(report.refused),
            )
        await asyncio.to_thread(self.recorder.prime)

    async def _sweep_loop(self) -> None:
        settings, clock, js = self.settings, self.clock, self._js
        assert js is not None
        await self.recorder.ready.wait()
        last_rule_check = clock.now()
        erasures_due = clock.now()  # at the first round: what earlier runs erased and did not audit
        while not self._stop.is_set():
            await self._sleep(settings.archive_sweep_interval_s)
            if clock.now() >= erasures_due:
                try:
                    recorded = await erasure_audit.record_erasures(self.engine, js, self.prefix, clock)
                    if recorded < erasure_audit.PROOFS_PER_RECORD * erasure_audit.RECORDS_PER_CALL:
                        erasures_due = clock.now() + timedelta(seconds=settings.archive_erasure_audit_interval_s)
                except Exception as exc:  # noqa: BLE001 - the proofs are kept; audited next round
                    log.warning("erasures not audited yet", error=str(exc) or type(exc).__name__)
            await self.retention.refresh()
            try:
                result = await asyncio.to_thread(self.sweeper.sweep)
                if clock.now() - last_rule_check >= HOUR:
                    days = await asyncio.to_thread(self.holds.backstop_days, self.retention.longest_days())
                    await asyncio.to_thread(lifecycle.ensure_rule, self.store, days)
                    last_rule_check = clock.now()
            except Exception as exc:  # noqa: BLE001 - the next round retries
                log.warning("retention sweep failed; retrying next round", error=str(exc) or type(exc).__name__)
                continue
            latest = {(p.camera_id, p.stream, p.hour_start_us): p for p in result.proofs}
            for proof in latest.values():
                try:
                    event = SegmentsDeleted(proof=proof_message(proof))
                    await bus.publish_event(js, self.prefix, "segment.deleted", event.SerializeToString())
                except Exception as exc:  # noqa: BLE001 - the proof is in the database; the event is a notice
                    log.warning("deletion event not published", error=str(exc) or type(exc).__name__)
                    break

    async def _pending_loop(self) -> None:
        while not self._stop.is_set():
            await self._sleep(5.0)
            await self.recorder.flush_unproved()
            if self.recorder.ready.is_set():
                await self.recorder.flush_pending()
            await self.gap_log.flush()

    # -- gaps ------------------------------------------------------------------------------------

    def _gap(self, key: tuple[str, str], start_us: int, end_us: int, reason: str, detail: str) -> Gap:
        return Gap(
            camera_id=key[0],
            stream=key[1],
            start_us=start_us,
            end_us=max(end_us, start_us),
            reason=reason,
            detail=detail,
            created_us=to_us(self.clock.now()),
        )

    def _restart_gaps(self, now_us: int) -> None:
        """What the previous run could not record: from a crash's open segments, or a clean stop."""
        for orphan in self.spool.take_orphan_markers():
            self.gap_log.add(
                Gap(
                    camera_id=orphan.camera_id,
                    stream=orphan.stream,
                    start_us=orphan.start_us,
                    end_us=max(now_us, orphan.start_us),
                    reason="archive_restart",
                    detail=f"the archive stopped while writing segment {orphan.segment_id} (lost)",
                    created_us=now_us,
                )
            )
        for camera_id, stream, last_us in self.spool.take_stopped():
            self.gap_log.add(
                Gap(
                    camera_id=camera_id,
                    stream=stream,
                    start_us=last_us,
                    end_us=max(now_us, last_us),
                    reason="archive_restart",
                    detail="the archive was stopped",
                    created_us=now_us,
                )
            )

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except TimeoutError:
            pass
