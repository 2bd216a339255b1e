"""The archive service: records masked streams into segments, stores and indexes them, keeps them
exactly as long as allowed, and serves timelines, clips and extractions over gRPC.

Start-up, in order: database migrations (while the database is away, spooled segments past the
legal maximum are deleted all the same); the gRPC API; the gaps the previous run left (a crash
or a stop: "archive_restart"); then, as soon as the object store answers, in the background:
bucket, lifecycle rule, one retention sweep, the reconcile of the recent hours (index <-> store),
and the hash chains' heads — only then do spooled segments start leaving. Recording into the
spool starts as soon as NATS is connected, whatever the store's state.
"""

import asyncio
import shutil
from datetime import timedelta
from pathlib import Path

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from prometheus_client import Gauge
from sqlalchemy import Engine

from services.archive import camera_gaps, erasure_audit, index, ledger, lifecycle
from services.archive.alarms import raise_alarm
from services.archive.grpc_api import ArchiveApi, proof_message
from services.archive.holds import HoldBook
from services.archive.models import Gap
from services.archive.reconcile import reconcile
from services.archive.recorder import Recorder, expire_past_legal
from services.archive.retention import RetentionPolicy
from services.archive.segmenter import DROPPED, ClosedSegment, OpenSegmentInfo, SegmentBuilder
from services.archive.spool import Spool, SpoolMonitor
from services.archive.sweeper import Sweeper
from services.common import bus, db, rpc, subjects
from services.common.clock import Clock, SystemClock, to_us
from services.common.envelope import parse_frame
from services.common.log import get_logger
from services.common.objectstore import ObjectStore, make_store
from services.common.pb.csu.v1 import archive_pb2_grpc, ingest_pb2_grpc
from services.common.pb.csu.v1.events_pb2 import SegmentsDeleted
from services.common.service import Runtime

log = get_logger(__name__)
SPOOL_BYTES = Gauge("csu_archive_spool_bytes", "Bytes of segments in the local spool")
RECORDING_PAUSED = Gauge("csu_archive_recording_paused", "1 while the spool is full and recording is paused")
HOUR = timedelta(hours=1)


class _Live:
    """The recording side as the API sees it: spooled and open segments, pending keys."""

    def __init__(self, builders: dict[tuple[str, str], SegmentBuilder], recorder: Recorder) -> None:
        self._builders = builders
        self._recorder = recorder

    def spooled(self, camera_id: str, stream: str) -> list[ClosedSegment]:
        return self._recorder.spooled(camera_id, stream)

    def open_segment(self, camera_id: str, stream: str) -> OpenSegmentInfo | None:
        builder = self._builders.get((camera_id, stream))
        return builder.open_segment() if builder is not None else None

    @property
    def spool_dir(self) -> Path:
        return self._recorder.spool_dir

    def pending_keys(self) -> set[str]:
        return self._recorder.pending_keys()


class _GapLog:
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


async def run(runtime: Runtime) -> None:
    settings = runtime.settings
    clock: Clock = SystemClock()
    prefix = settings.nats_prefix
    engine = db.make_engine(settings)
    store = make_store(settings, settings.bucket_recordings)
    spool = Spool((settings.data_dir / "spool" / "archive").resolve(), settings.archive_spool_max_bytes)
    ingest_channel = rpc.channel(settings.ingest_grpc)
    retention = RetentionPolicy(
        settings.retention_days, ingest_pb2_grpc.IngestServiceStub(ingest_channel), engine=engine, clock=clock
    )
    nc: Client | None = None
    runtime.add_check("nats", bus.nats_ready(lambda: nc))
    runtime.add_check("database", lambda: asyncio.to_thread(db.ping, engine))
    runtime.add_check("object_store", lambda: asyncio.to_thread(store.ping))
    serving = runtime.add_step("grpc")

    def open_database() -> None:
        if settings.db_auto_migrate:
            db.migrate("archive", engine)
        retention.load()

    # Until the database answers, the cameras' retention and the holds are unknown, but the legal
    # maximum is not: spooled segments past it go even while the archive cannot start.
    if not await runtime.until_ok(
        "database", open_database, while_waiting=lambda: expire_past_legal(spool, to_us(clock.now()))
    ):
        return
    holds = HoldBook(engine, clock)
    book = ledger.Book.from_settings(settings, engine, clock)  # the segment ledger (ledger.py)
    recorder = Recorder(spool, store, engine, None, prefix, clock, retention, holds)
    builders: dict[tuple[str, str], SegmentBuilder] = {}
    clips_dir = (settings.data_dir / "cache" / "archive-clips").resolve()
    # Clips a killed run was building are footage too: they must not linger past retention.
    shutil.rmtree(clips_dir, ignore_errors=True)
    api = ArchiveApi(
        engine,
        store,
        clock=clock,
        retention=retention,
        max_query_range_hours=settings.max_query_range_hours,
        work_dir=clips_dir,
        live=_Live(builders, recorder),
        store_for=lambda bucket: make_store(settings, bucket),
        holds=holds,
        ledger=book,
    )
    server = await rpc.start_server(
        f"{settings.bind_host}:{settings.archive_grpc.rsplit(':', 1)[1]}",
        [lambda s: archive_pb2_grpc.add_ArchiveServiceServicer_to_server(api, s)],
    )
    serving.set()
    await retention.refresh()
    gap_log = _GapLog(engine)
    _restart_gaps(spool, gap_log, to_us(clock.now()))
    await gap_log.flush()
    recovered = recorder.recover()
    sweeper = Sweeper(engine, store, clock, retention, settings.archive_sweep_batch, holds=holds)

    nc = await bus.connect_with_retry(settings, "archive", runtime.stop)
    if nc is None:
        await server.stop(None)
        await ingest_channel.close()
        return
    js = nc.jetstream()
    await bus.ensure_events_stream(js, prefix)
    recorder.attach_events(js)

    async def spool_alarm(fraction: float) -> None:
        # In the background: NATS may be slow or away, and the watch loop must keep going.
        message = f"the archive spool is {fraction:.0%} full: the object store is not taking segments"
        alarm = asyncio.create_task(raise_alarm(js, prefix, clock, "archive.spool_high", message))
        background.add(alarm)
        alarm.add_done_callback(background.discard)

    background: set[asyncio.Task[object]] = set()
    monitor = SpoolMonitor(spool, spool_alarm)
    paused: dict[tuple[str, str], int] = {}
    last_seen: dict[tuple[str, str], int] = {}

    async def on_masked(msg: Msg) -> None:
        try:
            packet = parse_frame(msg.subject, msg.data, lambda cam, stream: subjects.masked(prefix, cam, stream))
        except ValueError:
            DROPPED.labels("unknown", "malformed").inc()
            return
        key = (packet.camera_id, packet.stream)
        builder = builders.get(key)
        if builder is None:
            builder = builders[key] = SegmentBuilder(
                packet.camera_id, packet.stream, spool.root, settings.segment_duration_s, settings.segment_gap_s
            )
        if monitor.full:
            # The spool is full (the store has been away too long): stop recording rather than
            # fill the disk; the time lost is a storage_outage gap.
            closed = builder.close()
            if closed is not None:
                recorder.submit(closed)
            paused.setdefault(key, packet.capture_time_us)
            DROPPED.labels(packet.camera_id, "spool_full").inc()
            return
        if key in paused:
            gap_log.add(_gap(key, paused.pop(key), packet.capture_time_us, "storage_outage", clock, "spool full"))
            flushing = asyncio.create_task(gap_log.flush())
            background.add(flushing)
            flushing.add_done_callback(background.discard)
        last_seen[key] = packet.capture_time_us
        for closed in builder.add(packet):
            recorder.submit(closed)

    async def watch() -> None:
        while True:
            await asyncio.sleep(0.5)
            for builder in builders.values():
                closed = builder.close_if_idle()
                if closed is not None:
                    recorder.submit(closed)
            was_full = monitor.full
            await monitor.check()
            SPOOL_BYTES.set(monitor.usage)
            if monitor.full != was_full:
                if monitor.full:
                    log.error("spool full: recording paused until the object store takes segments again")
                else:
                    log.info("spool drained: recording resumes")
            RECORDING_PAUSED.set(1 if monitor.full else 0)

    async def prepare_store() -> None:
        """Bucket, lifecycle rule, sweep, reconcile, chain heads: then storing may begin."""
        delay = 0.5
        while not runtime.stop.is_set():
            try:
                await _prepare(
                    engine,
                    store,
                    sweeper,
                    retention,
                    recorder,
                    settings.archive_reconcile_hours,
                    clock,
                    js,
                    prefix,
                    holds,
                )
                recorder.ready.set()
                return
            except Exception as exc:  # noqa: BLE001 - the store (or database) is not there yet
                log.warning("object store not ready; segments wait in the spool", error=str(exc) or type(exc).__name__)
                await _sleep(runtime, delay)
                delay = min(delay * 2, 10.0)

    async def sweep_loop() -> None:
        await recorder.ready.wait()
        last_rule_check = clock.now()
        erasures_due = clock.now()  # at the first round: what earlier runs erased and did not audit
        while not runtime.stop.is_set():
            await _sleep(runtime, settings.archive_sweep_interval_s)
            if clock.now() >= erasures_due:
                try:
                    recorded = await erasure_audit.record_erasures(engine, js, prefix, clock)
                    if recorded < erasure_audit.PROOFS_PER_RECORD * erasure_audit.RECORDS_PER_CALL:
                        erasures_due = clock.now() + timedelta(seconds=settings.archive_erasure_audit_interval_s)
                except Exception as exc:  # noqa: BLE001 - the proofs are kept; audited next round
                    log.warning("erasures not audited yet", error=str(exc) or type(exc).__name__)
            await retention.refresh()
            try:
                result = await asyncio.to_thread(sweeper.sweep)
                if clock.now() - last_rule_check >= HOUR:
                    days = await asyncio.to_thread(holds.backstop_days, retention.longest_days())
                    await asyncio.to_thread(lifecycle.ensure_rule, store, days)
                    last_rule_check = clock.now()
            except Exception as exc:  # noqa: BLE001 - the next round retries
                log.warning("retention sweep failed; retrying next round", error=str(exc) or type(exc).__name__)
                continue
            latest = {(p.camera_id, p.stream, p.hour_start_us): p for p in result.proofs}
            for proof in latest.values():
                try:
                    event = SegmentsDeleted(proof=proof_message(proof))
                    await bus.publish_event(js, prefix, "segment.deleted", event.SerializeToString())
                except Exception as exc:  # noqa: BLE001 - the proof is in the database; the event is a notice
                    log.warning("deletion event not published", error=str(exc) or type(exc).__name__)
                    break

    async def pending_loop() -> None:
        while not runtime.stop.is_set():
            await _sleep(runtime, 5.0)
            await recorder.flush_unproved()
            if recorder.ready.is_set():
                await recorder.flush_pending()
            await gap_log.flush()

    ledger_stop = asyncio.Event()  # set once the last segments are stored: they are ledgered too
    ledgering = asyncio.create_task(ledger.run(book, settings.chain_checkpoint_minutes * 60, ledger_stop))
    tasks = [
        asyncio.create_task(recorder.run()),
        asyncio.create_task(watch()),
        asyncio.create_task(prepare_store()),
        asyncio.create_task(sweep_loop()),
        asyncio.create_task(pending_loop()),
        asyncio.create_task(camera_gaps.consume(js, prefix, engine, clock, runtime.stop)),
    ]
    subscription = await nc.subscribe(
        subjects.masked(prefix, "*", "main"),
        cb=on_masked,
        pending_msgs_limit=100_000,
        pending_bytes_limit=512 * 1024 * 1024,
    )
    log.info("archive running", recovered_segments=recovered, spool=str(spool.root))
    await runtime.stop.wait()
    serving.clear()

    await subscription.unsubscribe()
    for task in tasks[1:]:
        task.cancel()
    # Close what is open so a clean stop loses nothing; the spool keeps it if storing is slow.
    for builder in builders.values():
        closed = builder.close()
        if closed is not None:
            recorder.submit(closed)
    for key, since in paused.items():
        gap_log.add(_gap(key, since, to_us(clock.now()), "storage_outage", clock, "spool full"))
    spool.write_stopped(last_seen, to_us(clock.now()))
    if recorder.ready.is_set():
        try:
            await asyncio.wait_for(recorder.drain(), timeout=15)
        except TimeoutError:
            log.warning("stopping with segments still in the spool; they are stored at next start")
    await gap_log.flush()
    tasks[0].cancel()
    ledger_stop.set()
    await asyncio.gather(ledgering, return_exceptions=True)
    await server.stop(grace=2)
    await nc.drain()
    await ingest_channel.close()
    engine.dispose()


def _gap(key: tuple[str, str], start_us: int, end_us: int, reason: str, clock: Clock, detail: str) -> Gap:
    return Gap(
        camera_id=key[0],
        stream=key[1],
        start_us=start_us,
        end_us=max(end_us, start_us),
        reason=reason,
        detail=detail,
        created_us=to_us(clock.now()),
    )


def _restart_gaps(spool: Spool, gap_log: _GapLog, now_us: int) -> None:
    """What the previous run could not record: from a crash's open segments, or a clean stop."""
    for orphan in spool.take_orphan_markers():
        gap_log.add(
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
    for camera_id, stream, last_us in spool.take_stopped():
        gap_log.add(
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


async def _prepare(
    engine: Engine,
    store: ObjectStore,
    sweeper: Sweeper,
    retention: RetentionPolicy,
    recorder: Recorder,
    reconcile_hours: float,
    clock: Clock,
    js: JetStreamContext,
    prefix: str,
    holds: HoldBook,
) -> None:
    await asyncio.to_thread(store.ensure_bucket)
    days = await asyncio.to_thread(holds.backstop_days, retention.longest_days())
    await asyncio.to_thread(lifecycle.ensure_rule, store, days)
    await asyncio.to_thread(sweeper.sweep)
    now_us = to_us(clock.now())
    cameras = set(await asyncio.to_thread(index.camera_ids, engine)) | set(retention.known_cameras())
    cameras |= {key.split("/")[1] for key in recorder.pending_keys()}
    window_us = int(reconcile_hours * 3_600_000_000)
    report = await asyncio.to_thread(
        reconcile, engine, store, sorted(cameras), now_us - window_us, now_us + 3_600_000_000, now_us
    )
    for row in report.removed:
        message = f"segment {row.id} ({row.object_key}) was indexed but its object is gone"
        await raise_alarm(js, prefix, clock, "archive.object_missing", message, row.camera_id)
    if report.indexed or report.removed or report.refused:
        log.warning(
            "reconcile",
            indexed=len(report.indexed),
            removed=len(report.removed),
            refused=len(report.refused),
        )
    await asyncio.to_thread(recorder.prime)


async def _sleep(runtime: Runtime, seconds: float) -> None:
    try:
        await asyncio.wait_for(runtime.stop.wait(), seconds)
    except TimeoutError:
        pass
