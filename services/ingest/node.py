"""One ingest replica: the cameras it holds, their streams, statuses and PTZ, and its share of the fleet.

- Cameras to run are those of the registry in a streaming state (commissioning, in service). The
  replicas share them through per-camera leases (services.common.leases): a replica runs exactly
  the cameras it holds, and a dead replica's cameras are taken over when its leases expire.
- Every second, for each held camera: whether it may record now (state, authorisation in force,
  position inside the perimeter, on the policy clock), start or stop its stream workers
  accordingly, evaluate its status, publish a `camera.status` event when it changes, and write
  status and metrics to the `<prefix>_ingest_status` KV bucket, which every replica mirrors so any
  of them can answer for the whole fleet.
- Registry writes on any replica are announced on `<prefix>.ingest.registry`; every replica then
  reloads (and also every REFRESH_S, in case an announcement was missed).
- PTZ calls reach the holder of the camera: it subscribes to `<prefix>.ingest.ptz.<camera>` while
  it holds a PTZ camera, and the other replicas forward requests there. Control sessions are kept
  in the `<prefix>_ptz_sessions` KV bucket, so the next holder carries them on (ptz/sessions.py).
- One replica at a time (lease "task.authorisations") raises authorisation warnings and expiries.

Two clocks: `capture_clock` stamps packets (the system clock in production); `policy_clock`
decides validity and expiry (the same in production; a ManualClock in tests).
"""

import asyncio
import contextlib
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BadRequestError, BucketNotFoundError
from nats.js.kv import KeyValue
from prometheus_client import Gauge

from services.common import bus
from services.common.clock import Clock, to_us
from services.common.leases import HANDOVER_S, LeaseBalancer, LeaseManager
from services.common.leases import replica_id as lease_replica_id
from services.common.log import get_logger
from services.common.pb.csu.v1.events_pb2 import Alarm, AuthorisationNotice, CameraStatusChanged
from services.common.settings import Settings
from services.ingest import health as h
from services.ingest.expiry import AuthorisationMonitor
from services.ingest.health import StreamHealth
from services.ingest.ptz.controller import PtzController, make_driver
from services.ingest.ptz.driver import PtzError
from services.ingest.ptz.sessions import SessionStore
from services.ingest.publisher import Publisher
from services.ingest.registry import AuthorisationRecord, CameraRecord, Registry, recording_refusal
from services.ingest.rtsp.worker import RtspWorker, stream_worker
from services.ingest.sources import describe
from services.ingest.specs import STREAMING_STATES
from services.ingest.worker import RECONNECTS, StreamJob, StreamWorker

log = get_logger(__name__)

FPS = Gauge("csu_ingest_fps", "Frames per second received (5 s window)", ["camera"])
BITRATE = Gauge("csu_ingest_bitrate_bps", "Bits per second received (5 s window)", ["camera"])
AGE = Gauge("csu_ingest_last_packet_age_seconds", "Seconds since the last packet (-1: none yet)", ["camera"])
HELD = Gauge("csu_ingest_cameras_held", "Cameras this replica holds")
STATUS = Gauge("csu_ingest_camera_online", "1 online, 0.5 degraded or non-compliant, 0 otherwise", ["camera"])

EVALUATE_S = 1.0
STATUS_PUT_S = 2.0
REFRESH_S = 5.0
MONITOR_S = 60.0
MONITOR_KEY = "task.authorisations"
SCORE = {h.ONLINE: 1.0, h.DEGRADED: 0.5, h.NON_COMPLIANT: 0.5}
# What a camera's streams and PTZ controller are made from: a change to any restarts the camera.
RESTART_FIELDS = ("main_url", "sub_url", "transport", "ptz_driver", "ptz_url")


@dataclass(frozen=True)
class ReportedStatus:
    """A camera's status as its holder last wrote it to the status bucket."""

    status: str
    reason: str
    since_us: int
    owner: str
    updated_us: int
    metrics: dict


class CameraUnit:
    """A camera this replica holds: stream workers, PTZ controller, health, status."""

    def __init__(self, record: CameraRecord, now_us: int) -> None:
        self.record = record
        self.main_health = StreamHealth()
        self.sub_health = StreamHealth() if record.sub_url else None
        self.workers: list[StreamWorker | RtspWorker] = []
        self.controller: PtzController | None = None
        self.status = h.Status(h.CONNECTING, "starting")
        self.since_us = now_us
        self.last_put = 0.0

    @property
    def streaming(self) -> bool:
        return bool(self.workers)

    def stop_streams(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.workers = []


class IngestNode:
    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        nc: Client,
        *,
        capture_clock: Clock,
        policy_clock: Clock,
        replica_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.nc = nc
        self.js = nc.jetstream()
        self.capture_clock = capture_clock
        self.policy_clock = policy_clock
        self.replica_id = replica_id or lease_replica_id("ingest", settings.data_dir, settings.ingest_replica_id)
        self.prefix = settings.nats_prefix
        self.cameras: dict[str, CameraRecord] = {}
        self.authorisations: dict[str, AuthorisationRecord] = {}
        self.units: dict[str, CameraUnit] = {}
        self.reported: dict[str, ReportedStatus] = {}
        self.leases = LeaseManager(self.js, f"{self.prefix}_ingest_leases", self.replica_id, settings.lease_ttl_s)
        self.monitor = AuthorisationMonitor(registry, policy_clock, self._notify_authorisation)
        self._publisher = Publisher(asyncio.get_running_loop(), self.prefix)
        self._balancer = LeaseBalancer(self.leases, self._wanted, self._acquired, self._lost)
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._ptz_subs: dict[str, object] = {}
        self._status_kv: KeyValue | None = None  # from start()
        self._ptz_sessions: SessionStore | None = None
        self._last_monitor = 0.0
        self._last_refresh = 0.0
        # Units change from the balancer and the periodic round, which interleave at awaits.
        self._units_lock = asyncio.Lock()

    # -- life --------------------------------------------------------------------------------

    async def start(self) -> None:
        await bus.ensure_events_stream(self.js, self.prefix)
        await self.leases.start()
        self._status_kv = await self._bucket(f"{self.prefix}_ingest_status")
        self._ptz_sessions = SessionStore(await self._bucket(f"{self.prefix}_ptz_sessions"))
        await self.refresh()
        await self.nc.subscribe(self._registry_subject, cb=self._on_registry_change)
        self._tasks = [
            asyncio.create_task(self._publisher.run(self.nc)),
            asyncio.create_task(self._mirror_statuses()),
            asyncio.create_task(self._balancer.run(self._stop)),
            asyncio.create_task(self._loop()),
        ]
        log.info("ingest replica running", replica=self.replica_id, cameras=len(self.cameras))

    async def stop(self) -> None:
        """Stop every camera and hand the leases back (a clean stop hands cameras over at once)."""
        self._stop.set()
        if not self._tasks:
            return
        balancer = self._tasks[2] if len(self._tasks) > 2 else None
        if balancer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(balancer, HANDOVER_S)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for unit in list(self.units.values()):
            await self._stop_unit(unit)
        self.units.clear()

    async def join_workers(self, timeout: float) -> None:
        """Wait for stopped worker threads to finish (a blocked read ends within its timeout)."""
        threads = [t for t in threading.enumerate() if isinstance(t, StreamWorker)]
        deadline = time.monotonic() + timeout
        for thread in threads:
            await asyncio.to_thread(thread.join, max(0.0, deadline - time.monotonic()))

    async def _bucket(self, name: str):
        try:
            return await self.js.key_value(name)
        except BucketNotFoundError:
            try:
                return await self.js.create_key_value(KeyValueConfig(bucket=name, history=1, storage=StorageType.FILE))
            except BadRequestError:
                return await self.js.key_value(name)

    @property
    def _registry_subject(self) -> str:
        return f"{self.prefix}.ingest.registry"

    def ptz_subject(self, camera_id: str) -> str:
        return f"{self.prefix}.ingest.ptz.{camera_id}"

    # -- registry cache ----------------------------------------------------------------------

    async def refresh(self) -> None:
        cameras = await asyncio.to_thread(self.registry.cameras)
        authorisations = await asyncio.to_thread(self.registry.authorisations)
        self.cameras = {c.id: c for c in cameras}
        self.authorisations = {a.reference: a for a in authorisations}
        self._last_refresh = time.monotonic()

    async def changed(self) -> None:
        """After a registry write here: reload, and tell the other replicas."""
        await self.refresh()
        with contextlib.suppress(Exception):
            await self.nc.publish(self._registry_subject, b"")

    async def _on_registry_change(self, msg: Msg) -> None:
        del msg
        try:
            await self.refresh()
        except Exception as exc:  # noqa: BLE001 - the periodic refresh catches up
            log.warning("registry reload failed", error=str(exc))

    def refusal(self, record: CameraRecord) -> str | None:
        authorisation = self.authorisations.get(record.authorisation_ref) if record.authorisation_ref else None
        return recording_refusal(record, authorisation, to_us(self.policy_clock.now()))

    def _wanted(self) -> list[str]:
        return [c.id for c in self.cameras.values() if c.state in STREAMING_STATES]

    # -- holding cameras ---------------------------------------------------------------------

    async def _acquired(self, camera_id: str) -> None:
        record = self.cameras.get(camera_id)
        if record is None:
            return
        async with self._units_lock:
            unit = CameraUnit(record, to_us(self.capture_clock.now()))
            self.units[camera_id] = unit
            await self._start_unit(unit)
            HELD.set(len(self.units))
        log.info("camera acquired", camera=camera_id, replica=self.replica_id)

    async def _lost(self, camera_id: str) -> None:
        async with self._units_lock:
            unit = self.units.pop(camera_id, None)
            if unit is not None:
                await self._stop_unit(unit)
                record = self.cameras.get(camera_id)
                refusal = self.refusal(record) if record is not None else "camera removed from the registry"
                if refusal:
                    await self._set_status(unit, h.Status(h.OFFLINE, refusal), force_put=True)
        for gauge in (FPS, BITRATE, AGE, STATUS):
            with contextlib.suppress(KeyError):
                gauge.remove(camera_id)
        HELD.set(len(self.units))
        log.info("camera released", camera=camera_id, replica=self.replica_id)

    async def _start_unit(self, unit: CameraUnit) -> None:
        record = unit.record
        if record.ptz_driver:
            url = record.ptz_url or record.main_url
            try:
                unit.controller = PtzController(
                    record.id, record.ptz_driver, make_driver(record.ptz_driver, url), self.registry,
                    self.settings, self.policy_clock, self._ptz_sessions,
                )  # fmt: skip
                unit.controller.start()
                try:
                    await unit.controller.take_over()
                except Exception as exc:  # noqa: BLE001 - NATS hiccup: the camera runs, its session starts afresh
                    log.warning("PTZ session not taken over", camera=record.id, error=str(exc))
                self._ptz_subs[record.id] = await self.nc.subscribe(
                    self.ptz_subject(record.id), cb=self._on_ptz_request
                )
            except PtzError as exc:
                log.warning("PTZ driver not created", camera=record.id, reason=str(exc))
        if self.refusal(record) is None:
            self._start_streams(unit)

    def _start_streams(self, unit: CameraUnit) -> None:
        record = unit.record
        ptz_state = unit.controller.ptz_state if unit.controller is not None else None
        holds = self.leases.holds
        camera_id = record.id

        def may_publish() -> bool:
            return holds(camera_id)

        streams = [("main", record.main_url, unit.main_health)]
        if record.sub_url and unit.sub_health is not None:
            streams.append(("sub", record.sub_url, unit.sub_health))
        for stream, url, health in streams:
            job = StreamJob(
                camera_id, stream, url, record.transport, self.settings, self.capture_clock,
                self._publisher.publish, health, may_publish, ptz_state,
            )  # fmt: skip
            worker = stream_worker(job)
            worker.start()
            unit.workers.append(worker)

    def _watchdog(self, unit: CameraUnit) -> None:
        """Replace a stream worker whose source went silent (a hung camera, a cut cable).

        FFmpeg's socket timeout should end the blocked read, but a camera trickling bytes that
        are no video (RTCP reports alone, say) can keep it waiting longer; the replacement
        connects at once, and the old thread, flagged to stop, leaves whenever its read returns
        and publishes nothing more.
        """
        limit = self.settings.source_read_timeout_s
        for index, worker in enumerate(unit.workers):
            if not (worker.health.connected and worker.health.silent_for() > limit):
                continue
            worker.stop()
            worker.health.failed(f"{describe(worker.url)}: no data from the camera for {limit:g} s (watchdog)")
            RECONNECTS.labels(unit.record.id).inc()
            log.warning("camera stream silent; reconnecting", camera=unit.record.id, stream=worker.stream)
            replacement = worker.clone()
            replacement.start()
            unit.workers[index] = replacement

    async def _stop_unit(self, unit: CameraUnit) -> None:
        unit.stop_streams()
        subscription = self._ptz_subs.pop(unit.record.id, None)
        if subscription is not None:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()  # type: ignore[attr-defined]
        if unit.controller is not None:
            await unit.controller.close()
            unit.controller = None

    # -- the periodic round ------------------------------------------------------------------

    async def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                if time.monotonic() - self._last_refresh > REFRESH_S:
                    await self.refresh()
                await self.evaluate()
                if time.monotonic() - self._last_monitor > MONITOR_S:
                    self._last_monitor = time.monotonic()
                    await self.check_authorisations()
            except Exception as exc:  # noqa: BLE001 - one bad round must not stop the replica
                log.warning("ingest round failed", error=str(exc) or type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), EVALUATE_S)

    async def check_authorisations(self) -> list[tuple[str, str]]:
        """Raise due authorisation notices if this replica holds the monitor lease."""
        if not await self.leases.acquire(MONITOR_KEY):
            return []
        return await self.monitor.check()

    async def evaluate(self) -> None:
        """Apply registry changes and rules to held cameras, and report their status."""
        async with self._units_lock:
            await self._evaluate()

    async def _evaluate(self) -> None:
        for camera_id, unit in list(self.units.items()):
            record = self.cameras.get(camera_id)
            if record is None:
                continue  # removed: the balancer lets it go
            if record.updated_us != unit.record.updated_us:
                unit = await self._apply_change(unit, record)
            refusal = self.refusal(record)
            self._watchdog(unit)
            if refusal and unit.streaming:
                unit.stop_streams()
                log.warning("camera stopped", camera=camera_id, reason=refusal)
            elif refusal is None and not unit.streaming:
                self._start_streams(unit)
            await self._report(unit, refusal)

    async def _apply_change(self, unit: CameraUnit, record: CameraRecord) -> CameraUnit:
        """A held camera's record changed: its streams restart only if what they read changed.

        A name, a group, a position, a retention or an expected profile is taken as is (the rules
        and the status read the new record from the next round on); a new URL, transport or PTZ
        driver restarts the camera, and says so in its status: the recording's hole is then named
        ("camera_reconfigured", archive/camera_gaps.py) instead of left without a reason.
        """
        changed = [name for name in RESTART_FIELDS if getattr(record, name) != getattr(unit.record, name)]
        if not changed:
            unit.record = record
            return unit
        await self._stop_unit(unit)
        restarted = CameraUnit(record, unit.since_us)
        restarted.status = unit.status
        self.units[record.id] = restarted
        await self._set_status(restarted, h.Status(h.CONNECTING, f"restarting: {', '.join(changed)} changed"))
        await self._start_unit(restarted)
        return restarted

    async def _report(self, unit: CameraUnit, refusal: str | None) -> None:
        record = unit.record
        main = unit.main_health.metrics() if unit.streaming else None
        sub = unit.sub_health.metrics() if unit.sub_health is not None and unit.streaming else None
        ptz_problem = unit.controller.problem if unit.controller is not None else ""
        status = h.evaluate(
            refusal, main, unit.main_health.recent_reconnects(), (record.width, record.height, record.fps), sub,
            ptz_problem, record.close_up,
        )  # fmt: skip
        # Read once per round: a camera's metrics walk its last WINDOW_S of packets.
        metrics = main if main is not None else unit.main_health.metrics()
        FPS.labels(record.id).set(metrics.fps)
        BITRATE.labels(record.id).set(metrics.bitrate_bps)
        AGE.labels(record.id).set(metrics.last_packet_age_s)
        STATUS.labels(record.id).set(SCORE.get(status.status, 0.0))
        # A camera going dark on its own is an alarm for the operators; one taken out of recording
        # (state, authorisation) is not: its cause raised its own alarm or was a person's decision.
        went_dark = status.status == h.OFFLINE and unit.status.status != h.OFFLINE and refusal is None
        # A stream below the norms: the operators and the CSU manager must know (its footage may be
        # worthless as evidence), with what was measured; once per finding, not every round.
        fell_short = status.status == h.NON_COMPLIANT and status != unit.status
        await self._set_status(unit, status, metrics=metrics)
        if went_dark:
            message = f"camera {record.id} ({record.name}) is offline: {status.reason}"
            await self._alarm("camera.offline", record.id, message, unit.since_us)
        if fell_short:
            message = (
                f"camera {record.id} ({record.name}) does not meet the norms: measured {metrics.width}x"
                f"{metrics.height} at {metrics.fps:.1f} fps (declared {record.width}x{record.height} at "
                f"{record.fps:g} fps{', close-up' if record.close_up else ''}): {status.reason}; recording goes on"
            )
            await self._alarm("camera.non_compliant", record.id, message, unit.since_us)

    async def _alarm(self, kind: str, camera_id: str, message: str, raised_us: int) -> None:
        alarm = Alarm(kind=kind, source="ingest", camera_id=camera_id, message=message, raised_us=raised_us)
        try:
            await bus.publish_event(self.js, self.prefix, "alarm.raised", alarm.SerializeToString())
        except Exception as exc:  # noqa: BLE001 - the status event and bucket still show it
            log.warning("camera alarm not published", kind=kind, camera=camera_id, error=str(exc))

    async def _set_status(
        self, unit: CameraUnit, status: h.Status, force_put: bool = False, metrics: h.StreamMetrics | None = None
    ) -> None:
        now_us = to_us(self.capture_clock.now())
        previous = unit.status
        changed = status != previous
        if changed:
            unit.status, unit.since_us = status, now_us
            log.info("camera status", camera=unit.record.id, status=status.status, reason=status.reason)
            event = CameraStatusChanged(
                camera_id=unit.record.id,
                status=status.status,
                reason=status.reason,
                since_us=now_us,
                previous_status=previous.status,
                replica=self.replica_id,
            )
            try:
                await bus.publish_event(self.js, self.prefix, "camera.status", event.SerializeToString())
            except Exception as exc:  # noqa: BLE001 - the status bucket still shows it
                log.warning("camera status event not published", camera=unit.record.id, error=str(exc))
        if changed or force_put or time.monotonic() - unit.last_put >= STATUS_PUT_S:
            unit.last_put = time.monotonic()
            if metrics is None:
                metrics = unit.main_health.metrics()
            value: dict[str, Any] = {
                "status": unit.status.status,
                "reason": unit.status.reason,
                "since_us": unit.since_us,
                "owner": self.replica_id,
                "updated_us": now_us,
                "metrics": {
                    "fps": round(metrics.fps, 2),
                    "bitrate_bps": round(metrics.bitrate_bps),
                    "reconnects": metrics.reconnects,
                    "last_packet_age_s": round(metrics.last_packet_age_s, 2),
                    "width": metrics.width,
                    "height": metrics.height,
                    "codec": metrics.codec,
                },
            }
            self.reported[unit.record.id] = ReportedStatus(
                value["status"], value["reason"], value["since_us"], self.replica_id, now_us, value["metrics"]
            )
            try:
                assert self._status_kv is not None
                await self._status_kv.put(unit.record.id, json.dumps(value).encode())
            except Exception as exc:  # noqa: BLE001
                log.warning("camera status not written", camera=unit.record.id, error=str(exc))

    async def _mirror_statuses(self) -> None:
        """Keep every camera's reported status from the bucket (all replicas write there)."""
        while True:
            try:
                assert self._status_kv is not None
                watcher = await self._status_kv.watchall()
                async for entry in watcher:
                    if entry is None or entry.value is None or entry.operation:
                        continue
                    with contextlib.suppress(ValueError, KeyError, TypeError):
                        v = json.loads(entry.value)
                        if v["owner"] != self.replica_id:
                            self.reported[entry.key] = ReportedStatus(
                                v["status"], v["reason"], v["since_us"], v["owner"], v["updated_us"], v["metrics"]
                            )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - NATS reconnecting: watch again
                log.warning("status watch interrupted", error=str(exc))
                await asyncio.sleep(1)

    def current_status(self, record: CameraRecord) -> ReportedStatus:
        """What to show for any camera of the fleet, held here or elsewhere."""
        now_us = to_us(self.capture_clock.now())
        refusal = self.refusal(record)
        unit = self.units.get(record.id)
        if unit is not None:
            metrics = self.reported.get(record.id)
            return ReportedStatus(
                unit.status.status, unit.status.reason, unit.since_us, self.replica_id, now_us,
                metrics.metrics if metrics else {},
            )  # fmt: skip
        reported = self.reported.get(record.id)
        stale_us = int((3 * STATUS_PUT_S + self.settings.lease_ttl_s) * 1_000_000)
        if refusal and record.state not in STREAMING_STATES:
            return ReportedStatus(h.OFFLINE, refusal, record.state_since_us, "", now_us, {})
        if reported is not None and now_us - reported.updated_us < stale_us:
            return reported
        since = reported.updated_us if reported is not None else record.updated_us
        if refusal:
            return ReportedStatus(h.OFFLINE, refusal, since, "", now_us, {})
        if reported is None:
            return ReportedStatus(
                h.CONNECTING, "waiting for an ingest replica to take the camera", since, "", now_us, {}
            )
        return ReportedStatus(
            h.OFFLINE, "the ingest replica running this camera stopped reporting; another one takes over", since, "",
            now_us, {},
        )  # fmt: skip

    # -- PTZ ---------------------------------------------------------------------------------

    def controller(self, camera_id: str) -> PtzController | None:
        unit = self.units.get(camera_id)
        return unit.controller if unit is not None and self.leases.holds(camera_id) else None

    async def _on_ptz_request(self, msg: Msg) -> None:
        from services.ingest.ptz.service import answer_remote

        await answer_remote(self, msg)

    # -- authorisation notices -------------------------------------------------------------

    async def _notify_authorisation(self, kind: str, record: AuthorisationRecord, cameras: list[str]) -> None:
        now_us = to_us(self.policy_clock.now())
        notice = AuthorisationNotice(
            reference=record.reference, kind=kind, expiry_us=record.expiry_us, camera_ids=cameras, raised_us=now_us
        )
        await bus.publish_event(self.js, self.prefix, f"authorisation.{kind}", notice.SerializeToString())
        day = time.strftime("%Y-%m-%d", time.gmtime(record.expiry_us / 1e6))
        listed = ", ".join(cameras) or "no camera"
        if kind == "expiring":
            alarms = [
                Alarm(
                    kind="authorisation.expiring",
                    source="ingest",
                    message=f"prefectoral authorisation {record.reference} expires on {day} ({listed}): "
                    "file the renewal now",
                    raised_us=now_us,
                )
            ]
        else:
            alarms = [
                Alarm(
                    kind="authorisation.expired",
                    source="ingest",
                    camera_id=camera_id,
                    message=f"camera {camera_id} stopped recording: authorisation {record.reference} expired on {day}",
                    raised_us=now_us,
                )
                for camera_id in cameras
            ] or [
                Alarm(
                    kind="authorisation.expired",
                    source="ingest",
                    message=f"prefectoral authorisation {record.reference} expired on {day}",
                    raised_us=now_us,
                )
            ]
        for alarm in alarms:
            await bus.publish_event(self.js, self.prefix, "alarm.raised", alarm.SerializeToString())
        log.warning(f"authorisation {kind}", reference=record.reference, cameras=listed)
