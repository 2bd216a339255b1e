"""One masking replica: the cameras it holds, their lanes, their mask sets and previews.

- Cameras to hold are those of ingest's registry that are not decommissioned (asked over gRPC
  every REFRESH_S; until ingest first answers, the catalogue's). Replicas share them through
  per-camera leases (services.common.leases, bucket `<prefix>_masking_leases`): one owner per
  camera, because its decoder, encoder and GOP are state; a dead replica's cameras are taken over
  when its leases expire (lease_ttl_s), a stopping replica hands them over at once. A replica
  subscribes to the raw subjects of exactly the cameras it holds (not a queue group: per-camera
  state needs one owner, not load spreading), main and sub stream, each with its own lane
  (decoder, encoder) and the same masks: the video wall's sub streams are masked like the rest.
- Mask sets come from masking's database: loaded when a camera is taken, reloaded when any
  replica announces a change on `<prefix>.masking.masks` and every REFRESH_S. A camera whose set
  cannot be loaded is masked whole until it can. A PTZ set comes with the optics of the calibration
  it was drawn under; a PTZ camera whose approved set has none is masked whole (the planner) and
  raises a `masking.ptz_uncalibrated` alarm, once each time it comes to that.
- Previews: the holder answers `<prefix>.masking.preview.<camera>` requests (the only replica with
  the camera's decoded image); the image leaves masked.
"""

import asyncio
import contextlib
import time
from collections.abc import Callable

import grpc
from nats.aio.client import Client
from nats.aio.msg import Msg
from prometheus_client import Gauge

from services.common import bus, subjects
from services.common.cameras import load_cameras
from services.common.clock import SystemClock, to_us
from services.common.envelope import parse_frame
from services.common.leases import HANDOVER_S, LeaseBalancer, LeaseManager
from services.common.leases import replica_id as lease_replica_id
from services.common.log import get_logger
from services.common.pb.csu.v1 import ingest_pb2, ingest_pb2_grpc
from services.common.pb.csu.v1.events_pb2 import Alarm
from services.common.pb.csu.v1.frame_pb2 import FramePacket
from services.common.pb.csu.v1.masking_pb2 import PreviewImage, PreviewRequest
from services.common.refusals import Refusal, Unavailable
from services.common.settings import Settings
from services.masking.lanes import CameraLane
from services.masking.masks import rgb_hex_to_yuv
from services.masking.osd import Osd
from services.masking.pipeline import DROPPED, CameraMasker, EncoderSettings, PtzPolicy
from services.masking.planner import NO_APPROVED_SET, SET_UNAVAILABLE, MaskSet
from services.masking.preview import render_preview
from services.masking.projection import PtzModel, default_optics, model_for
from services.masking.router import CameraRouter
from services.masking.store import MaskStore
from services.masking.ways import Ways

log = get_logger(__name__)

HELD = Gauge("csu_masking_cameras_held", "Cameras this masking replica holds")
REFRESH_S = 5.0
INGEST_TIMEOUT_S = 5.0


def masks_subject(prefix: str) -> str:
    return f"{prefix}.masking.masks"


def preview_subject(prefix: str, camera_id: str) -> str:
    return f"{prefix}.masking.preview.{camera_id}"


class MaskingNode:
    def __init__(
        self,
        settings: Settings,
        store: MaskStore,
        nc: Client,
        ingest: "ingest_pb2_grpc.IngestServiceAsyncStub",
        replica_id: str | None = None,
        public_key_pem: str | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.nc = nc
        self.js = nc.jetstream()
        self.ingest = ingest
        self.prefix = settings.nats_prefix
        self.replica_id = replica_id or lease_replica_id("masking", settings.data_dir, settings.masking_replica_id)
        self.colour = rgb_hex_to_yuv(settings.mask_colour)
        self.encoder = EncoderSettings(
            settings.x264_preset, settings.x264_crf, settings.x264_threads, settings.keyframe_interval_s
        )
        self.policy = PtzPolicy(int(settings.ptz_position_max_age_s * 1e6), settings.ptz_max_follow_speed)
        # The deployment's default optics: what marks a camera as PTZ in its lanes, what uncalibrated
        # drafts are previewed with; approved sets are projected with their calibration's.
        self.optics = default_optics(settings)
        self._uncalibrated: set[str] = set()
        # Camera id -> ptz_driver ("" fixed). Seeded from the catalogue until ingest answers.
        catalogue = load_cameras(settings)
        self.cameras: dict[str, str] = {c.id: c.ptz_driver for c in catalogue}
        # Each camera's way through masking: facts, statements, its own masks' read-backs (ways.py).
        self.ways = Ways(
            store, ingest, self.js, self.prefix, SystemClock(), self.colour, public_key_pem, self._routers_of
        )
        self.ways.seed(catalogue)
        self.ingest_answered = False
        # Camera id -> its main stream's lane (previews, versions and metrics come from it), and
        # the lane of its sub stream when the camera has one: masked alike, for the video wall.
        self.lanes: dict[str, CameraLane] = {}
        self.sub_lanes: dict[str, CameraLane] = {}
        self._subs: dict[str, list[object]] = {}
        self.leases = LeaseManager(self.js, f"{self.prefix}_masking_leases", self.replica_id, settings.lease_ttl_s)
        self._balancer = LeaseBalancer(self.leases, self._wanted, self._acquired, self._lost)
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._lock = asyncio.Lock()

    # -- life ----------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.leases.start()
        await self.refresh_cameras()
        await self.nc.subscribe(masks_subject(self.prefix), cb=self._on_masks_changed)
        self._tasks = [
            asyncio.create_task(self._balancer.run(self._stop)),
            asyncio.create_task(self._loop()),
            asyncio.create_task(self.ways.run(self._stop)),
        ]
        log.info("masking replica running", replica=self.replica_id, cameras=len(self.cameras))

    async def stop(self) -> None:
        """Stop every lane and hand the leases back (a clean stop hands cameras over at once)."""
        self._stop.set()
        if self._tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._tasks[0], HANDOVER_S)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for camera_id in list(self.lanes):
            await self._lost(camera_id)

    # -- which cameras -------------------------------------------------------------------------

    def _wanted(self) -> list[str]:
        return sorted(self.cameras)

    async def refresh_cameras(self) -> None:
        try:
            answer = await self.ingest.ListCameras(ingest_pb2.ListCamerasRequest(), timeout=INGEST_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            if not self.ingest_answered:
                log.info("ingest not answering yet; using the camera catalogue", error=exc.code().name)
            return
        cameras = {c.id: c.ptz_driver for c in answer.cameras if c.state != "decommissioned"}
        self.ways.update_cameras(c for c in answer.cameras if c.state != "decommissioned")
        self.ingest_answered = True
        changed = {cid for cid in cameras if cid in self.cameras and cameras[cid] != self.cameras[cid]}
        self.cameras = cameras
        for camera_id in changed:
            for lane in self._lanes_of(camera_id):
                lane.masker.set_ptz_model(self.ptz_model(camera_id))

    def _lanes_of(self, camera_id: str) -> list[CameraLane]:
        return [lane for lane in (self.lanes.get(camera_id), self.sub_lanes.get(camera_id)) if lane is not None]

    def _routers_of(self, camera_id: str) -> list[CameraRouter]:
        return [lane.masker for lane in self._lanes_of(camera_id)]

    def ptz_model(self, camera_id: str) -> PtzModel | None:
        return model_for(self.cameras.get(camera_id, ""), self.optics)

    # -- holding cameras -----------------------------------------------------------------------

    async def _acquired(self, camera_id: str) -> None:
        async with self._lock:
            masks, reason = await self._load(camera_id)
            holds = self.leases.holds
            lanes = {}
            await asyncio.to_thread(self.ways.reload_statements, [camera_id])
            name, osd = self.ways.osd(camera_id)
            for stream, table in (("main", self.lanes), ("sub", self.sub_lanes)):
                masker = CameraMasker(
                    camera_id, masks, self.colour, self.encoder, ptz_model=self.ptz_model(camera_id),
                    ptz_policy=self.policy, margin_px=self.settings.mask_margin_px, missing_reason=reason,
                    stream=stream, osd=Osd(camera_id, name, osd),
                )  # fmt: skip
                router = CameraRouter(masker, self.ways.facts(camera_id), self.colour, self.ways.switched)
                table[camera_id] = lanes[stream] = CameraLane(
                    router, self.settings.masking_queue_frames, self._publish, lambda: holds(camera_id)
                )
            self.ways.held(camera_id)
            main = lanes["main"].masker
            self._subs[camera_id] = [
                *[
                    await self.nc.subscribe(
                        subjects.raw(self.prefix, camera_id, stream),
                        cb=self._on_raw,
                        pending_msgs_limit=100_000,
                        pending_bytes_limit=512 * 1024 * 1024,
                    )
                    for stream in ("main", "sub")
                ],
                await self.nc.subscribe(preview_subject(self.prefix, camera_id), cb=self._on_preview),
            ]
            HELD.set(len(self.lanes))
        log.info("camera taken", camera=camera_id, replica=self.replica_id, mask_version=main.mask_version)
        await self._check_calibration(camera_id, masks)

    async def _lost(self, camera_id: str) -> None:
        self.ways.released(camera_id)
        async with self._lock:
            for sub in self._subs.pop(camera_id, []):
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()  # type: ignore[attr-defined]
            for lane in (self.lanes.pop(camera_id, None), self.sub_lanes.pop(camera_id, None)):
                if lane is not None:
                    await lane.stop()
            HELD.set(len(self.lanes))
        log.info("camera released", camera=camera_id, replica=self.replica_id)

    async def _load(self, camera_id: str) -> tuple[MaskSet | None, str]:
        try:
            row = await asyncio.to_thread(self.store.approved, camera_id)
        except Exception as exc:  # noqa: BLE001 - any failure to load: fail closed
            log.error("mask set not loadable: camera masked whole", camera=camera_id, error=str(exc))
            return None, SET_UNAVAILABLE
        if row is None:
            return None, NO_APPROVED_SET
        try:
            return (await asyncio.to_thread(self.store.mask_sets, [row]))[camera_id], NO_APPROVED_SET
        except (Refusal, ValueError, KeyError, TypeError) as exc:
            log.error("mask set unreadable: camera masked whole", camera=camera_id, error=str(exc))
            return None, SET_UNAVAILABLE

    async def reload_masks(self, camera_ids: list[str] | None = None) -> None:
        ids = [c for c in (camera_ids if camera_ids is not None else list(self.lanes)) if c in self.lanes]
        if not ids:
            return
        await asyncio.to_thread(self.ways.reload_statements, ids)
        self.ways.apply(ids)
        try:
            rows = await asyncio.to_thread(self.store.approved_for, ids)
        except Exception as exc:  # noqa: BLE001 - keep the sets already loaded (they are approved)
            log.warning("mask sets not reloaded", error=str(exc))
            return
        for camera_id in ids:
            row = rows.get(camera_id)
            masks = None
            try:
                masks = (await asyncio.to_thread(self.store.mask_sets, [row]))[camera_id] if row else None
                for lane in self._lanes_of(camera_id):
                    lane.masker.set_masks(masks, NO_APPROVED_SET)
            except (Refusal, ValueError, KeyError, TypeError) as exc:
                log.error("mask set unreadable: camera masked whole", camera=camera_id, error=str(exc))
                for lane in self._lanes_of(camera_id):
                    lane.masker.set_masks(None, SET_UNAVAILABLE)
            except Exception as exc:  # noqa: BLE001 - the calibration not readable now: keep what is loaded
                log.warning("mask set not reloaded", camera=camera_id, error=str(exc))
                continue
            await self._check_calibration(camera_id, masks)

    async def _check_calibration(self, camera_id: str, masks: MaskSet | None) -> None:
        """A PTZ camera whose approved set was drawn under no calibration is masked whole (planner);
        operators and mask administrators are told once, until a calibrated set is approved."""
        if not (masks is not None and masks.uncalibrated and self.cameras.get(camera_id)):
            self._uncalibrated.discard(camera_id)
            return
        if camera_id in self._uncalibrated:
            return
        self._uncalibrated.add(camera_id)
        message = (
            f"camera {camera_id}: its PTZ masks ({masks.version}) were approved without a calibration of the "
            "camera's optics, so they cannot follow it: the whole image is masked until a set drawn after "
            "calibrating the camera (mask editor) is approved"
        )
        log.warning("PTZ masks without calibration: camera masked whole", camera=camera_id, version=masks.version)
        alarm = Alarm(
            kind="masking.ptz_uncalibrated", source="masking", camera_id=camera_id, message=message,
            raised_us=to_us(self.store.clock.now()),
        )  # fmt: skip
        try:
            await bus.publish_event(self.js, self.prefix, "alarm.raised", alarm.SerializeToString())
        except Exception as exc:  # noqa: BLE001 - the frames are masked whole anyway; raised again next round
            self._uncalibrated.discard(camera_id)
            log.warning("uncalibrated PTZ alarm not published", camera=camera_id, error=str(exc))

    async def announce(self, camera_id: str) -> None:
        """After a mask change here: apply it, and tell the other replicas."""
        await self.reload_masks([camera_id])
        with contextlib.suppress(Exception):
            await self.nc.publish(masks_subject(self.prefix), camera_id.encode())

    async def _on_masks_changed(self, msg: Msg) -> None:
        await self.reload_masks([msg.data.decode(errors="replace")])

    async def _loop(self) -> None:
        last = 0.0
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 1.0)
            if time.monotonic() - last < REFRESH_S:
                continue
            last = time.monotonic()
            try:
                await self.refresh_cameras()
                await self.reload_masks()
            except Exception as exc:  # noqa: BLE001 - one bad round must not stop the replica
                log.warning("masking round failed", error=str(exc) or type(exc).__name__)

    # -- frames --------------------------------------------------------------------------------

    async def _publish(self, packet: FramePacket) -> None:
        await self.nc.publish(subjects.masked(self.prefix, packet.camera_id, packet.stream), packet.SerializeToString())

    async def _on_raw(self, msg: Msg) -> None:
        prefix = self.prefix
        try:
            packet = parse_frame(msg.subject, msg.data, lambda cam, stream: subjects.raw(prefix, cam, stream))
        except ValueError:
            DROPPED.labels("unknown", "malformed").inc()
            return
        lane = (self.sub_lanes if packet.stream == "sub" else self.lanes).get(packet.camera_id)
        if lane is None:
            DROPPED.labels(packet.camera_id, "not_held").inc()
            return
        lane.offer(packet)

    # -- previews ------------------------------------------------------------------------------

    async def _on_preview(self, msg: Msg) -> None:
        try:
            request = PreviewRequest.FromString(msg.data)
            image = await self.preview(request)
            await msg.respond(b"ok" + image.SerializeToString())
        except Refusal as exc:
            # The asking replica answers its caller with the same kind (refusals.from_code).
            await msg.respond(f"{exc.code.name}:{exc.message}".encode())
        except Exception as exc:
            log.exception("preview failed", error=str(exc))
            await msg.respond(f"internal:preview failed: {type(exc).__name__}".encode())

    async def preview(self, request: PreviewRequest) -> PreviewImage:
        lane = self.lanes.get(request.camera_id)
        if lane is None or not self.leases.holds(request.camera_id):
            raise Unavailable(f"this replica does not hold camera {request.camera_id}")
        draft = None
        if request.version:
            row = await asyncio.to_thread(self.store.get, request.camera_id, request.version)
            draft = (await asyncio.to_thread(self.store.mask_sets, [row]))[row.camera_id]
        return await asyncio.to_thread(render_preview, lane.masker, request, draft, self.colour)

    def holder_of(self, camera_id: str) -> Callable[[], bool]:
        return lambda: self.leases.holds(camera_id)
