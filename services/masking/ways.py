"""What a masking replica knows about each camera's way through masking (modes.py), kept apart
from the replica's leases and lanes (node.py):

- facts: PTZ or fixed and the imaging settings (from ingest's registry, each refresh), the
  statement in force (masking's table, each reload: signed with this deployment's key, not
  withdrawn);
- the camera's own masks: for each held camera that burns them, the approved set is pushed and
  read back through ingest (SyncPrivacyMasks) every READBACK_S, and at once when a router asks
  (a new stream session: maybe a reboot; a failure); the read-back becomes the routers'
  Confirmation;
- switches: every switch between ways is in the audit trail (actor "system", action
  `masking.way`), and a camera whose own masks failed raises an alarm (`masking.camera_masks`).
  The switch has happened when this is written (it is towards more masking, never held back): a
  trail that cannot be reached is logged and counted, not waited for.
Design: docs/design/masking.md
"""

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import grpc
from nats.js import JetStreamContext
from prometheus_client import Counter

from services.common import audit, bus
from services.common.cameras import CameraConfig
from services.common.clock import Clock, to_us
from services.common.log import get_logger
from services.common.pb.csu.v1 import ingest_pb2, ingest_pb2_grpc
from services.common.pb.csu.v1.events_pb2 import Alarm
from services.masking.masks import Yuv
from services.masking.modes import CameraFacts, Confirmation
from services.masking.osd import OsdSettings
from services.masking.planner import MaskSet
from services.masking.projection import Position, PtzModel
from services.masking.router import CameraRouter, Switch
from services.masking.store import MaskStore, statement_in_force

log = get_logger(__name__)

UNAUDITED = Counter("csu_masking_unaudited_switches_total", "Way switches the audit trail could not take", ["camera"])
READBACK_S = 5.0
SYNC_TIMEOUT_S = 15.0
# Read-backs in flight at once (each is a few ONVIF requests to one camera, through ingest).
PARALLEL_SYNCS = 16
ALARM = "masking.camera_masks"
AUDIT_ACTION = "masking.way"


@dataclass
class CameraInfo:
    name: str = ""
    ptz_driver: str = ""
    imaging: ingest_pb2.CameraImaging = field(default_factory=ingest_pb2.CameraImaging)
    statement: bool = False


def info_of_catalogue(camera: CameraConfig) -> CameraInfo:
    imaging = ingest_pb2.CameraImaging(
        camera_masks=camera.camera_masks, camera_osd=camera.camera_osd, osd_overlay=camera.osd_overlay,
        osd_position=camera.osd_position,
    )  # fmt: skip
    return CameraInfo(camera.name, camera.ptz_driver, imaging)


class Ways:
    def __init__(
        self,
        store: MaskStore,
        ingest: "ingest_pb2_grpc.IngestServiceAsyncStub",
        js: JetStreamContext,
        prefix: str,
        clock: Clock,
        colour: Yuv,
        public_key_pem: str | None,
        routers: Callable[[str], list[CameraRouter]],
    ) -> None:
        self.store, self.ingest, self.js, self.prefix, self.clock = store, ingest, js, prefix, clock
        self.colour = colour
        self.public_key_pem = public_key_pem
        self.routers = routers
        self.cameras: dict[str, CameraInfo] = {}
        self._due: dict[str, float] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._parallel = asyncio.Semaphore(PARALLEL_SYNCS)
        self._tasks: set[asyncio.Task[None]] = set()

    # -- facts -----------------------------------------------------------------------------

    def facts(self, camera_id: str) -> CameraFacts:
        info = self.cameras.get(camera_id, CameraInfo())
        return CameraFacts(
            ptz=bool(info.ptz_driver),
            statement=info.statement,
            camera_osd=info.imaging.camera_osd,
            camera_masks=info.imaging.camera_masks,
        )

    def osd(self, camera_id: str) -> tuple[str, OsdSettings]:
        info = self.cameras.get(camera_id, CameraInfo())
        return info.name, OsdSettings(info.imaging.osd_overlay, info.imaging.osd_position or "top-left")

    def seed(self, cameras: Iterable[CameraConfig]) -> None:
        self.cameras = {c.id: info_of_catalogue(c) for c in cameras}

    def update_cameras(self, cameras: Iterable[ingest_pb2.Camera]) -> None:
        previous = self.cameras
        self.cameras = {
            c.id: CameraInfo(c.name, c.ptz_driver, c.imaging, previous.get(c.id, CameraInfo()).statement)
            for c in cameras
        }
        self.apply(list(self.cameras))

    def reload_statements(self, camera_ids: list[str]) -> None:
        """Synchronous (database): from a worker thread. A failure to read leaves none in force."""
        try:
            rows = self.store.statements_for(camera_ids)
        except Exception as exc:  # noqa: BLE001 - unknown means no statement: burn in
            log.warning("statements not loaded: cameras burned in", error=str(exc))
            rows = {}
        for camera_id in camera_ids:
            info = self.cameras.setdefault(camera_id, CameraInfo())
            info.statement = statement_in_force(rows.get(camera_id), self.public_key_pem)

    def apply(self, camera_ids: Iterable[str]) -> None:
        """Hand each held camera's routers their facts and overlay settings."""
        from services.masking.osd import Osd

        for camera_id in camera_ids:
            facts = self.facts(camera_id)
            name, settings = self.osd(camera_id)
            for router in self.routers(camera_id):
                router.set_facts(facts)
                osd = router.masker.osd
                if osd is None or osd.settings != settings or osd.label != Osd(camera_id, name, settings).label:
                    router.masker.osd = Osd(camera_id, name, settings)

    # -- the camera's own masks ------------------------------------------------------------

    def held(self, camera_id: str) -> None:
        self._due[camera_id] = 0.0
        self._wake.set()

    def released(self, camera_id: str) -> None:
        self._due.pop(camera_id, None)

    async def run(self, stop: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        while not stop.is_set():
            self._wake.clear()
            now = time.monotonic()
            due = [c for c, at in list(self._due.items()) if at <= now and self.facts(c).camera_masks]
            for camera_id in due:
                self._due[camera_id] = now + READBACK_S
            # Cameras are asked side by side: one slow camera must not make the others' read-backs stale.
            await asyncio.gather(*(self._sync_bounded(c) for c in due))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 1.0)
        for task in list(self._tasks):
            task.cancel()

    async def _sync_bounded(self, camera_id: str) -> None:
        async with self._parallel:
            try:
                await self.sync(camera_id)
            except Exception as exc:  # noqa: BLE001 - one camera's failure must not stop the others'
                log.warning("camera masks not read back", camera=camera_id, error=str(exc) or type(exc).__name__)

    async def sync(self, camera_id: str) -> Confirmation | None:
        routers = self.routers(camera_id)
        if not routers:
            return None
        masks = routers[0].masker.latest_planner.masks
        if masks is None or not masks.polygons:
            return None
        request = ingest_pb2.SyncPrivacyMasksRequest(
            camera_id=camera_id, colour_y=self.colour.y, colour_cb=self.colour.u, colour_cr=self.colour.v, push=True
        )
        for polygon in self._image_polygons(masks, routers[0]):
            request.masks.append(ingest_pb2.PrivacyMask(points=[ingest_pb2.ImagePoint(x=x, y=y) for x, y in polygon]))
        try:
            state = await self.ingest.SyncPrivacyMasks(request, timeout=SYNC_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            confirmation = Confirmation("", to_us(self.clock.now()), f"ingest: {exc.details() or exc.code().name}")
        else:
            confirmation = Confirmation(masks.version if state.matches else "", state.read_time_us, state.problem)
        if confirmation.problem:
            log.warning("camera's own masks not confirmed", camera=camera_id, problem=confirmation.problem)
        for router in routers:
            router.set_confirmation(confirmation)
        return confirmation

    @staticmethod
    def _image_polygons(masks: MaskSet, router: CameraRouter) -> list[list[tuple[float, float]]]:
        """The set as the camera takes it: image coordinates; a PTZ set as seen from home (the
        dome keeps its masks on the scene as it moves; the checks prove it does)."""
        model: PtzModel | None = router.masker.latest_planner.ptz_model
        if masks.space == "image" or model is None:
            return [list(p) for p in masks.polygons]
        width, height = router.size
        aspect = width / height if width and height else 16 / 9
        home = Position(0.0, 0.0, 0.0)
        return [[(min(1.0, max(0.0, x)), min(1.0, max(0.0, y))) for x, y in model.project(p, home, aspect)]
                for p in masks.polygons]  # fmt: skip

    # -- switches --------------------------------------------------------------------------

    def switched(self, switch: Switch) -> None:
        """From a lane's worker thread: handled on the event loop."""
        loop = self._loop
        if loop is None:
            return
        loop.call_soon_threadsafe(self._spawn, switch)

    def _spawn(self, switch: Switch) -> None:
        if switch.failure or switch.reason == "new_session_unconfirmed":
            self._due[switch.camera_id] = 0.0
            self._wake.set()
        task = asyncio.create_task(self._record(switch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _record(self, switch: Switch) -> None:
        details = {
            "stream": switch.stream, "from": switch.previous or "none", "to": switch.way, "reason": switch.reason,
            "capture_us": switch.capture_us,
        }  # fmt: skip
        try:
            await audit.record(
                self.js, self.prefix, self.clock, actor="system", role="system", action=AUDIT_ACTION,
                target=f"camera:{switch.camera_id}", details=details,
            )  # fmt: skip
        except audit.AuditUnavailable as exc:
            UNAUDITED.labels(switch.camera_id).inc()
            log.warning("way switch not audited", camera=switch.camera_id, error=str(exc))
        if not (switch.failure and switch.stream == "main"):
            return
        alarm = Alarm(
            kind=ALARM,
            source="masking",
            camera_id=switch.camera_id,
            message=f"camera {switch.camera_id}'s own privacy masks cannot be trusted ({switch.reason}): "
            "masking burns them in",
            raised_us=to_us(self.clock.now()),
        )
        try:
            await bus.publish_event(self.js, self.prefix, "alarm.raised", alarm.SerializeToString())
        except Exception as exc:  # noqa: BLE001 - the switch is made; the alarm is logged
            log.warning("camera-mask alarm not published", camera=switch.camera_id, error=str(exc))
