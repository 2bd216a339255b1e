"""One archive replica: masked frames in, segments out, and the loops that keep the archive whole.

- Cameras: those of ingest's registry that are not decommissioned (asked every REFRESH_S; until
  ingest first answers, the catalogue's). Replicas share them through per-camera leases
  (services.common.leases, bucket `<prefix>_archive_leases`), as ingest and masking do: one
  recorder per camera, because its segment and its hash chain are state. A restarted replica
  takes its own leases back at once; a dead one's cameras move when its leases expire
  (lease_ttl_s); a stopping one seals, stores and hands them over at once.
- Frames: a held camera's masked frames come from the JetStream buffer through its durable
  consumer (intake.py), from just after the last stored segment; those already recorded (in the
  index, or in this spool after a crash) are skipped. So a kill -9, a rollout or a handover loses
  nothing while it is shorter than the buffer's window (CSU_MASKED_BUFFER_S).
- `_on_frame` cuts each camera's masked packets into segments (segmenter.py) and hands the
  closed ones to the recorder (recorder.py), which stores them in order through the spool; once
  a segment is stored its frames are acknowledged in the buffer.
- `_watch` (every 0.5 s) closes the segments of cameras gone silent and watches the spool: past
  its limit recording pauses (a "storage_outage" gap), past 80 % an alarm is raised.
- `_prepare_store` waits for the object store, then: bucket, lifecycle rule, one sweep, the
  reconcile of the recent hours (index <-> store), the hash chains' heads; only then do spooled
  segments start leaving.
- `_sweep_loop` applies retention (and audits the erasures, refreshes the lifecycle rule);
  `_pending_loop` writes what waited for the database or NATS (index rows, events, proofs, gaps).

The node is also the API's view of the recording side (`LiveSegments` in grpc_api.py): spooled
and open segments, and the keys stored but not yet indexed; a timeline asks the replica recording
the camera for what it has not stored yet (`recording_spans`).
Design: docs/design/reliability.md
"""

import asyncio
import contextlib
import json
import time
from collections.abc import Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from prometheus_client import Counter, Gauge
from sqlalchemy import Engine

from services.archive import camera_gaps, erasure_audit, index, lifecycle
from services.archive.alarms import raise_alarm
from services.archive.grpc_api import local_spans, proof_message
from services.archive.holds import HoldBook
from services.archive.intake import CameraIntake
from services.archive.models import Gap
from services.archive.reconcile import reconcile
from services.archive.recorder import Recorder
from services.archive.retention import RetentionPolicy
from services.archive.segmenter import DROPPED, ClosedSegment, OpenSegmentInfo, SegmentBuilder
from services.archive.spool import Spool, SpoolMonitor
from services.archive.sweeper import Sweeper
from services.common import bus, subjects
from services.common.cameras import load_cameras
from services.common.clock import Clock, to_us
from services.common.envelope import parse_frame
from services.common.leases import HANDOVER_S, LeaseBalancer, LeaseManager
from services.common.leases import replica_id as lease_replica_id
from services.common.log import get_logger
from services.common.objectstore import ObjectStore
from services.common.pb.csu.v1 import ingest_pb2, ingest_pb2_grpc
from services.common.pb.csu.v1.events_pb2 import SegmentsDeleted
from services.common.settings import Settings
from services.common.timefmt import HOUR_US

log = get_logger(__name__)
SPOOL_BYTES = Gauge("csu_archive_spool_bytes", "Bytes of segments in the local spool")
RECORDING_PAUSED = Gauge("csu_archive_recording_paused", "1 while the spool is full and recording is paused")
HELD = Gauge("csu_archive_cameras_held", "Cameras this archive replica records")
SKIPPED = Counter(
    "csu_archive_skipped_frames_total", "Masked frames read from the buffer after a takeover and already recorded"
)
HOUR = timedelta(hours=1)
# How long a stop waits for the segments it sealed to be stored before it hands the cameras over,
# inside the launcher's 20 s with the handover (leases.RELEASE_ALL_TIMEOUT_S): what is not stored by
# then waits in the spool, and the next holder records those frames again from the buffer.
DRAIN_S = 12.0
# How long giving a single camera up (a rebalance) waits for its last segment to be stored.
HANDOVER_DRAIN_S = 5.0
REFRESH_S = 5.0
INGEST_TIMEOUT_S = 5.0
# A timeline waits this long for the replica recording the camera to say what it has not stored yet.
SPANS_TIMEOUT_S = 0.5


def recording_subject(prefix: str, camera_id: str) -> str:
    return f"{prefix}.archive.recording.{camera_id}"


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
        ingest: "ingest_pb2_grpc.IngestServiceAsyncStub | None" = None,
        replica_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.store = store
        self.spool = spool
        self.retention = retention
        self.holds = holds
        self.clock = clock
        self.prefix = settings.nats_prefix
        self.replica_id = replica_id or lease_replica_id("archive", settings.data_dir, settings.archive_replica_id)
        self._stop = stop
        self._ingest = ingest
        self.recorder = Recorder(
            spool, store, engine, None, self.prefix, clock, retention, holds,
            may_store=self.may_store, on_stored=self._stored,
        )  # fmt: skip
        self.gap_log = GapLog(engine)
        self.sweeper = Sweeper(engine, store, clock, retention, settings.archive_sweep_batch, holds=holds)
        self.monitor = SpoolMonitor(spool, self._spool_alarm)
        self.builders: dict[tuple[str, str], SegmentBuilder] = {}
        # Since when each (camera, stream) has been paused by a full spool.
        self.paused: dict[tuple[str, str], int] = {}
        # Cameras to record: ingest's, the catalogue's until ingest first answers.
        self.cameras: set[str] = {c.id for c in load_cameras(settings)}
        self.ingest_answered = False
        # The held cameras' consumers, and for each camera taken, the end of what it already has:
        # frames captured before it are skipped (until one passes), and whether frames after its
        # last ack had left the buffer (their absence is then the archive's gap).
        self.intakes: dict[str, CameraIntake] = {}
        self._resume_us: dict[str, int] = {}
        self._window_passed: dict[str, bool] = {}
        # Segment id -> the consumer whose frames it holds (acked once stored).
        self._acks: dict[str, CameraIntake] = {}
        self.leases: LeaseManager | None = None
        self._balancer: LeaseBalancer | None = None
        self._balancer_stop = asyncio.Event()
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._balancing: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[object]] = set()
        self._lock = asyncio.Lock()

    # -- the API's view of the recording side (grpc_api.LiveSegments) ---------------------------

    def spooled(self, camera_id: str, stream: str) -> list[ClosedSegment]:
        return self.recorder.spooled(camera_id, stream)

    def open_segment(self, camera_id: str, stream: str) -> OpenSegmentInfo | None:
        builder = self.builders.get((camera_id, stream))
        return builder.open_segment() if builder is not None else None

    async def recording_spans(self, camera_id: str, stream: str) -> list[tuple[int, int]]:
        """What is recorded and not yet stored: here if this replica records the camera, else asked of
        the replica that does (`<prefix>.archive.recording.<camera>`), so any replica's timeline shows
        the last minutes as recorded. Nothing when nobody answers in time: the index's part stands."""
        if self.holds_camera(camera_id) or self._nc is None:
            return local_spans(self, camera_id, stream)
        try:
            answer = await self._nc.request(
                recording_subject(self.prefix, camera_id), stream.encode(), timeout=SPANS_TIMEOUT_S
            )
            return [(int(a), int(b)) for a, b in json.loads(answer.data)]
        except Exception:  # noqa: BLE001 - no holder, or a slow one: the stored footage is shown alone
            return local_spans(self, camera_id, stream)

    async def _on_spans_request(self, msg: Msg) -> None:
        camera_id = msg.subject.rsplit(".", 1)[1]
        if not self.holds_camera(camera_id):
            return  # the holder answers
        stream = msg.data.decode(errors="replace") or "main"
        await msg.respond(json.dumps(local_spans(self, camera_id, stream)).encode())

    @property
    def spool_dir(self) -> Path:
        return self.recorder.spool_dir

    def pending_keys(self) -> set[str]:
        return self.recorder.pending_keys()

    # -- life ------------------------------------------------------------------------------------

    async def recover(self) -> int:
        """Queue what the previous run left in the spool (salvaging a crash's open segments); how many.

        Nothing is stored before this replica holds their cameras again (at start, its own leases
        come back at once).
        """
        return self.recorder.recover()

    async def start(self, nc: Client) -> None:
        """Events can be published, the loops run and the held cameras are recorded from now on."""
        self._nc = nc
        js = self._js = nc.jetstream()
        settings = self.settings
        await bus.ensure_events_stream(js, self.prefix)
        if settings.nats_user:
            # Under the chart's per-service NATS users only masking may define the buffer: even asking
            # is a permissions violation in NATS's log. The consumers open once masking has (_reopen).
            log.info("masked-frame buffer defined by masking", user=settings.nats_user)
        else:
            try:  # one machine, one NATS user (make run, tests): whichever service starts first defines it
                await bus.ensure_masked_stream(
                    js, self.prefix, settings.masked_buffer_s, settings.masked_buffer_max_bytes
                )
            except Exception as exc:  # noqa: BLE001 - masking defines it too; the consumers wait for it
                log.info("masked-frame buffer not defined here", error=str(exc) or type(exc).__name__)
        self.recorder.attach_events(js)
        self.leases = LeaseManager(js, f"{self.prefix}_archive_leases", self.replica_id, settings.lease_ttl_s)
        await self.leases.start()
        await self.refresh_cameras()
        self._balancer = LeaseBalancer(self.leases, lambda: sorted(self.cameras), self._acquired, self._lost)
        self._tasks = [
            asyncio.create_task(self.recorder.run()),
            asyncio.create_task(self._watch()),
            asyncio.create_task(self._prepare_store()),
            asyncio.create_task(self._sweep_loop()),
            asyncio.create_task(self._pending_loop()),
            asyncio.create_task(camera_gaps.consume(js, self.prefix, self.engine, self.clock, self._stop)),
            asyncio.create_task(self._camera_loop()),
        ]
        await nc.subscribe(recording_subject(self.prefix, "*"), cb=self._on_spans_request)
        self._balancing = asyncio.create_task(self._balancer.run(self._balancer_stop))
        log.info("archive replica running", replica=self.replica_id, cameras=len(self.cameras))

    async def stop(self) -> None:
        """Seal, store and hand over every held camera: the next holder resumes where this one stored.

        The open segments end at their last complete fragment (the frames after it are recorded by
        the next holder, from the buffer); what cannot be stored within DRAIN_S waits in the spool.
        """
        await asyncio.gather(*(intake.close() for intake in list(self.intakes.values())), return_exceptions=True)
        for task in self._tasks[1:]:
            task.cancel()
        for builder in self.builders.values():
            self._submit(builder.seal())
        now_us = to_us(self.clock.now())
        for key, since in self.paused.items():
            self.gap_log.add(self._gap(key, since, now_us, "storage_outage", "spool full"))
        if self.recorder.ready.is_set():
            try:
                await asyncio.wait_for(self.recorder.drain(), timeout=DRAIN_S)
            except TimeoutError:
                log.warning("stopping with segments still in the spool; they are stored at next start")
        self._balancer_stop.set()
        if self._balancing is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._balancing, HANDOVER_S)
        await self.gap_log.flush()
        if self._tasks:
            self._tasks[0].cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- which cameras ---------------------------------------------------------------------------

    def holds_camera(self, camera_id: str) -> bool:
        return self.leases is not None and self.leases.holds(camera_id)

    def may_store(self, camera_id: str) -> bool:
        """Whether this replica stores the camera's segments now: it holds the camera, or nobody records
        it any more (gone from ingest's registry) and what this spool has of it is stored all the same."""
        return self.holds_camera(camera_id) or (self.ingest_answered and camera_id not in self.cameras)

    async def refresh_cameras(self) -> None:
        if self._ingest is None:
            return
        try:
            answer = await self._ingest.ListCameras(ingest_pb2.ListCamerasRequest(), timeout=INGEST_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            if not self.ingest_answered:
                log.info("ingest not answering yet; recording the camera catalogue", error=exc.code().name)
            return
        self.cameras = {c.id for c in answer.cameras if c.state != "decommissioned"}
        self.ingest_answered = True
        # The cameras' names (each new segment's text track) and retention, within REFRESH_S of
        # ingest answering rather than at the next sweep (60 s): until then a segment names its
        # camera by its id.
        await asyncio.to_thread(self.retention.update, answer.cameras)

    async def _camera_loop(self) -> None:
        last = time.monotonic()
        while not self._stop.is_set():
            await self._sleep(1.0)
            try:
                await self._reopen()
                if time.monotonic() - last >= REFRESH_S:
                    last = time.monotonic()
                    await self.refresh_cameras()
            except Exception as exc:  # noqa: BLE001 - one bad round must not stop the replica
                log.warning("archive camera round failed", error=str(exc) or type(exc).__name__)

    # -- holding cameras -------------------------------------------------------------------------

    async def _acquired(self, camera_id: str) -> None:
        """A camera taken: its chain's head and what is already recorded are read again, then its frames."""
        self.recorder.forget_head(camera_id)
        HELD.set(len(self.leases.held()) if self.leases else 0)
        log.info("camera taken", camera=camera_id, replica=self.replica_id)
        await self._open(camera_id)

    async def _open(self, camera_id: str) -> None:
        async with self._lock:
            if camera_id in self.intakes or not self.holds_camera(camera_id):
                return
            assert self._nc is not None
            resume_us = await self._recorded_until(camera_id)
            intake = CameraIntake(
                self._nc, self.prefix, camera_id, self._on_frame, ack_wait_s=self.settings.masked_buffer_s
            )
            resume = await intake.open()  # raises while NATS is away: _reopen tries again
            self.intakes[camera_id] = intake
            self._resume_us[camera_id] = resume_us
            self._window_passed[camera_id] = resume.window_passed
        log.info("recording from the buffer", camera=camera_id, after_us=resume_us, window_passed=resume.window_passed)

    async def _reopen(self) -> None:
        """Open the consumers of held cameras whose opening failed (NATS away when they were taken)."""
        if self.leases is None:
            return
        for camera_id in sorted(self.leases.held() - set(self.intakes)):
            if self._balancer is not None and camera_id in self._balancer.running:
                try:
                    await self._open(camera_id)
                except Exception as exc:  # noqa: BLE001 - next round
                    log.warning(
                        "camera's frames not reachable yet", camera=camera_id, error=str(exc) or type(exc).__name__
                    )

    async def _recorded_until(self, camera_id: str) -> int:
        """Where this camera's recording ends: its last stored segment, or one waiting in this spool."""
        ends = [seg.end_us for seg in self.recorder.waiting_for(camera_id)]
        try:
            last = await asyncio.to_thread(index.last, self.engine, camera_id, "main")
        except Exception as exc:  # noqa: BLE001 - the database is away: what this spool knows
            log.warning("recorded end not read: the database is away", camera=camera_id, error=str(exc))
            last = None
        if last is not None:
            ends.append(last.end_us)
        return max(ends, default=0)

    async def _lost(self, camera_id: str) -> None:
        """Give a camera up: its open segment sealed and stored, its frames acked, then no more reads."""
        async with self._lock:
            intake = self.intakes.get(camera_id)
            if intake is not None:
                await intake.close()
            builder = self.builders.pop((camera_id, "main"), None)
            if builder is not None:
                self._submit(builder.seal())
            if self.recorder.ready.is_set() and self.holds_camera(camera_id):
                try:
                    await asyncio.wait_for(self.recorder.drain(camera_id), HANDOVER_DRAIN_S)
                except TimeoutError:
                    log.warning("handing a camera over with segments still in the spool", camera=camera_id)
            self.intakes.pop(camera_id, None)
            self._resume_us.pop(camera_id, None)
            self.paused.pop((camera_id, "main"), None)
        HELD.set(len(self.leases.held()) if self.leases else 0)
        log.info("camera released", camera=camera_id, replica=self.replica_id)

    def _submit(self, seg: ClosedSegment | None) -> None:
        if seg is None:
            return
        intake = self.intakes.get(seg.camera_id)
        if intake is not None and seg.ack:
            self._acks[seg.id] = intake
        self.recorder.submit(seg)

    async def _stored(self, seg: ClosedSegment) -> None:
        """A segment is in the store: its frames may leave the buffer."""
        intake = self._acks.pop(seg.id, None)
        if intake is not None and self.intakes.get(seg.camera_id) is intake:
            await intake.ack(seg.ack)

    # -- frames ----------------------------------------------------------------------------------

    async def _on_frame(self, msg: Msg) -> None:
        prefix = self.prefix
        try:
            packet = parse_frame(msg.subject, msg.data, lambda cam, stream: subjects.masked(prefix, cam, stream))
        except ValueError:
            DROPPED.labels("unknown", "malformed").inc()
            return
        key = (packet.camera_id, packet.stream)
        if packet.camera_id in self._resume_us and not self._resumes_at(packet.camera_id, packet.capture_time_us):
            SKIPPED.inc()
            return  # recorded already (stored, or in this spool)
        builder = self.builders.get(key)
        if builder is None:
            builder = self.builders[key] = SegmentBuilder(
                packet.camera_id,
                packet.stream,
                self.spool.root,
                self.settings.segment_duration_s,
                self.settings.segment_gap_s,
                self.retention.name_for,
            )
        if self.monitor.full:
            # The spool is full (the store has been away too long): stop recording rather than
            # fill the disk; the time lost is a storage_outage gap.
            self._submit(builder.close())
            self.paused.setdefault(key, packet.capture_time_us)
            DROPPED.labels(packet.camera_id, "spool_full").inc()
            return
        if key in self.paused:
            gap = self._gap(key, self.paused.pop(key), packet.capture_time_us, "storage_outage", "spool full")
            self.gap_log.add(gap)
            self._in_background(self.gap_log.flush())
        for closed in builder.add(packet, msg.reply):
            self._submit(closed)

    def _resumes_at(self, camera_id: str, capture_us: int) -> bool:
        """Whether a taken camera's recording resumes with this frame (False: it is recorded already).

        The first frame past the recorded end resumes it; if the buffer had lost the frames between
        (the archive away longer than its window), the hole is the archive's gap.
        """
        resume_us = self._resume_us[camera_id]
        if capture_us < resume_us:
            return False
        del self._resume_us[camera_id]
        lost = self._window_passed.pop(camera_id, False)
        if resume_us and lost and capture_us - resume_us > self.settings.segment_gap_s * 1e6:
            window = self.settings.masked_buffer_s
            detail = f"not recorded: the archive was away longer than its {window:g} s buffer"
            self.gap_log.add(self._gap((camera_id, "main"), resume_us, capture_us, "archive_restart", detail))
            self._in_background(self.gap_log.flush())
        return True

    # -- loops -----------------------------------------------------------------------------------

    def _in_background(self, work: Coroutine[Any, Any, object]) -> None:
        task = asyncio.create_task(work)
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
            for builder in list(self.builders.values()):
                self._submit(builder.close_if_idle())
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
        window_us = int(self.settings.archive_reconcile_hours * HOUR_US)
        report = await asyncio.to_thread(
            reconcile, engine, store, sorted(cameras), now_us - window_us, now_us + HOUR_US, now_us
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
                await self.recorder.settle_parked()
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

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except TimeoutError:
            pass
