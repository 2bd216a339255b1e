"""MaskingService over gRPC: mask governance, PTZ calibration, commissioning, reports, previews,
redaction jobs.

Who may do what is the gateway's business (mask_admin, four-eyes is checked here with the
actor's name because it is a rule about the data); every call that changes something carries the
actor, and the gateway audits it before calling.
"""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import grpc
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from services.common import bus, refusals
from services.common.clock import to_us
from services.common.log import get_logger
from services.common.objectstore import ObjectNotFound, ObjectStore
from services.common.optics import Optics
from services.common.pb.csu.v1 import archive_pb2, archive_pb2_grpc, ingest_pb2, ingest_pb2_grpc, masking_pb2_grpc
from services.common.pb.csu.v1 import masking_pb2 as pb
from services.common.pb.csu.v1.events_pb2 import Alarm
from services.common.refusals import Conflict, NotFound, Refusal, Unavailable
from services.common.settings import Settings
from services.common.signing import verify
from services.common.timefmt import DAY_US
from services.masking import calibration
from services.masking.models import CalibrationRow, MaskErrorRow, MaskSetRow, RedactionJobRow, StatementRow
from services.masking.node import MaskingNode, preview_subject
from services.masking.projection import Position, SphericalModel
from services.masking.redaction.jobs import DONE, RedactionJobs
from services.masking.store import MaskStore, optics_of, points_of, polygons_of, version_label
from services.masking.validation import InvalidMask, check_box, check_polygons

log = get_logger(__name__)
T = TypeVar("T")
RPC_TIMEOUT_S = 10.0
PREVIEW_TIMEOUT_S = 8.0
MAX_SELECTION = 200
MODES = ("scene", "persons")
EFFECTS = ("pixelate", "blur")
CHUNK = 512 * 1024
# Ingest's refusals of a preset lookup that are the caller's to fix (no such camera, no PTZ now);
# any other failure is ingest being unavailable, not a server fault of ours.
_INGEST_REFUSALS = (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION)


def mask_set_message(row: MaskSetRow) -> pb.MaskSet:
    return pb.MaskSet(
        camera_id=row.camera_id,
        version=row.version,
        mask_version=version_label(row.version),
        status=row.status,
        space=row.space,
        polygons=[
            pb.MaskPolygon(points=[pb.MaskPoint(x=x, y=y) for x, y in p["points"]], label=p.get("label", ""))
            for p in polygons_of(row)
        ],
        author=row.author,
        created_us=row.created_us,
        approver=row.approver,
        approved_us=row.approved_us or 0,
        superseded_us=row.superseded_us or 0,
        comment=row.comment,
        origin=row.origin,
        calibration_version=row.calibration_version or 0,
    )


def optics_message(optics: Optics) -> pb.PtzOptics:
    return pb.PtzOptics(**optics.as_dict())


def calibration_message(row: CalibrationRow) -> pb.PtzCalibration:
    return pb.PtzCalibration(
        camera_id=row.camera_id,
        version=row.version,
        optics=optics_message(optics_of(row)),
        points=[pb.CalibrationPoint(**p) for p in points_of(row)],
        rms_px=row.rms_px,
        max_px=row.max_px,
        image_width=row.image_width,
        image_height=row.image_height,
        fitted=row.fitted.split(),
        author=row.author,
        created_us=row.created_us,
        comment=row.comment,
        has_calibration=True,
    )


def statement_message(row: StatementRow) -> pb.NoPrivateAreaStatement:
    return pb.NoPrivateAreaStatement(
        camera_id=row.camera_id,
        supervisor=row.supervisor,
        text=row.text,
        signed_us=row.signed_us,
        statement=row.statement.encode(),
        signature=row.signature,
        public_key_pem=row.public_key_pem,
        withdrawn_us=row.withdrawn_us or 0,
        withdrawn_by=row.withdrawn_by,
    )


def report_message(row: MaskErrorRow) -> pb.MaskErrorReport:
    return pb.MaskErrorReport(
        id=row.id,
        camera_id=row.camera_id,
        reporter=row.reporter,
        description=row.description,
        snapshot_ref=row.snapshot_ref,
        mask_version=row.mask_version,
        reported_us=row.reported_us,
        status=row.status,
        closed_by=row.closed_by,
        closed_us=row.closed_us or 0,
        resolution=row.resolution,
    )


def job_message(row: RedactionJobRow, include_track: bool = False) -> pb.RedactionJob:
    job = pb.RedactionJob(
        id=row.id,
        camera_id=row.camera_id,
        start_us=row.start_us,
        end_us=row.end_us,
        mode=row.mode,
        effect=row.effect,
        status=row.status,
        progress=row.progress,
        error=row.error,
        frames=row.frames,
        size=row.size,
        created_us=row.created_us,
        finished_us=row.finished_us or 0,
        expires_us=row.expires_us,
        actor=row.actor,
        request_ref=row.request_ref,
        selection=[
            pb.RedactionBox(time_us=s["time_us"], x=s["x"], y=s["y"], width=s["width"], height=s["height"])
            for s in json.loads(row.selection_json)
        ],
    )
    if include_track and row.track_json:
        for entry in json.loads(row.track_json):
            if len(entry) == 5:
                job.track.append(
                    pb.RedactionBox(time_us=entry[0], x=entry[1], y=entry[2], width=entry[3], height=entry[4])
                )
            else:
                job.track.append(pb.RedactionBox(time_us=entry[0]))
    return job


class MaskingApi(masking_pb2_grpc.MaskingServiceServicer):
    def __init__(
        self,
        settings: Settings,
        store: MaskStore,
        jobs: RedactionJobs,
        node: MaskingNode,
        ingest: "ingest_pb2_grpc.IngestServiceAsyncStub",
        archive: "archive_pb2_grpc.ArchiveServiceAsyncStub",
        redactions: ObjectStore,
        public_key_pem: str | None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.jobs = jobs
        self.node = node
        self.ingest = ingest
        self.archive = archive
        self.redactions = redactions
        self.public_key_pem = public_key_pem

    async def _run(self, context: grpc.aio.ServicerContext, work: Callable[[], Awaitable[T]]) -> T:
        try:
            return await work()
        except Refusal as exc:
            await refusals.abort(context, exc)
        except (InvalidMask, ValueError) as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        raise AssertionError("unreachable")

    async def _camera(self, camera_id: str) -> ingest_pb2.Camera:
        """The camera from ingest's registry; NotFound when unknown."""
        try:
            return await self.ingest.GetCamera(ingest_pb2.GetCameraRequest(camera_id=camera_id), timeout=RPC_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                raise NotFound(f"unknown camera {camera_id!r}") from exc
            raise Unavailable("the camera registry (ingest) is unavailable; try again") from exc

    # -- mask sets -----------------------------------------------------------------------------

    async def _polygons(
        self, camera: ingest_pb2.Camera, space: str, polygons, drawn_at, has_drawn_at: bool
    ) -> tuple[str, list[list[tuple[float, float]]], list[str], int | None]:
        """(space, polygons, labels, the calibration version they were drawn or given under)."""
        ptz = bool(camera.ptz_driver)
        points = [[(p.x, p.y) for p in polygon.points] for polygon in polygons]
        labels = [polygon.label for polygon in polygons]
        # A PTZ set is drawn under the camera's latest calibration (none: the defaults, and the set
        # will mask the camera whole once approved, until one drawn after calibrating replaces it).
        calibrated = await asyncio.to_thread(self.store.calibration, camera.id) if ptz else None
        version = calibrated.version if calibrated is not None else None
        if has_drawn_at:
            if not ptz:
                raise InvalidMask(f"camera {camera.id} has no PTZ: draw its masks in image coordinates (no drawn_at)")
            checked = check_polygons(points, "image")
            model = SphericalModel(optics_of(calibrated) if calibrated is not None else self.node.optics)
            at = Position(drawn_at.pan, drawn_at.tilt, drawn_at.zoom)
            aspect = (camera.profile.width / camera.profile.height) if camera.profile.height else 16 / 9
            converted = [[model.unproject(p, at, aspect) for p in polygon] for polygon in checked]
            return "ptz", check_polygons(converted, "ptz"), labels, version
        space = space or ("ptz" if ptz else "image")
        if space == "ptz" and not ptz:
            raise InvalidMask(f"camera {camera.id} has no PTZ: its masks are in image coordinates (space 'image')")
        if space == "image" and ptz:
            raise InvalidMask(
                f"camera {camera.id} is a PTZ camera: give its masks in pan/tilt space (space 'ptz'), or drawn on "
                "an image with the position it was seen at (drawn_at)"
            )
        return space, check_polygons(points, space), labels, version

    async def ListMaskSets(self, request, context):
        rows = await asyncio.to_thread(self.store.versions, request.camera_id)
        return pb.ListMaskSetsResponse(sets=[mask_set_message(r) for r in rows])

    async def GetMaskSet(self, request, context):
        async def work() -> pb.MaskSet:
            return mask_set_message(await asyncio.to_thread(self.store.get, request.camera_id, request.version))

        return await self._run(context, work)

    async def CreateMaskSet(self, request, context):
        async def work() -> pb.MaskSet:
            camera = await self._camera(request.camera_id)
            space, polygons, labels, calibration_version = await self._polygons(
                camera, request.space, request.polygons, request.drawn_at, request.has_drawn_at
            )
            row = await asyncio.to_thread(
                self.store.create, camera.id, space, polygons, request.actor, request.comment, labels,
                calibration_version,
            )  # fmt: skip
            log.info("mask set drafted", camera=camera.id, version=row.version, actor=request.actor)
            return mask_set_message(row)

        return await self._run(context, work)

    async def UpdateDraft(self, request, context):
        async def work() -> pb.MaskSet:
            camera = await self._camera(request.camera_id)
            space, polygons, labels, calibration_version = await self._polygons(
                camera, request.space, request.polygons, request.drawn_at, request.has_drawn_at
            )
            row = await asyncio.to_thread(
                self.store.update_draft, camera.id, request.version, space, polygons, request.actor,
                request.comment or None, labels, calibration_version,
            )  # fmt: skip
            return mask_set_message(row)

        return await self._run(context, work)

    async def DiscardDraft(self, request, context):
        async def work() -> pb.MaskSet:
            row = await asyncio.to_thread(self.store.discard, request.camera_id, request.version, request.actor)
            return mask_set_message(row)

        return await self._run(context, work)

    async def ApproveMaskSet(self, request, context):
        async def work() -> pb.MaskSet:
            if not request.version:
                raise ValueError("name the version to approve")
            row, previous = await asyncio.to_thread(
                self.store.approve, request.camera_id, request.version, request.actor
            )
            log.info(
                "mask set approved", camera=row.camera_id, version=row.version, author=row.author,
                approver=row.approver, superseded=previous.version if previous else 0,
            )  # fmt: skip
            await self.node.announce(row.camera_id)
            return mask_set_message(row)

        return await self._run(context, work)

    # -- PTZ calibration -----------------------------------------------------------------------

    async def CalibratePtz(self, request, context):
        async def work() -> pb.PtzCalibration:
            camera = await self._camera(request.camera_id)
            if not camera.ptz_driver:
                raise Conflict(f"camera {camera.id} has no PTZ: nothing to calibrate")
            width, height = camera.profile.width, camera.profile.height
            if not (width and height):
                raise Conflict(f"camera {camera.id} has no recording profile (image size)")
            points = [calibration.ReferencePoint(p.landmark, p.pan, p.tilt, p.zoom, p.x, p.y) for p in request.points]
            try:
                result = await asyncio.to_thread(calibration.fit, points, width, height, self.node.optics)
            except calibration.CalibrationError as exc:
                raise InvalidMask(str(exc)) from exc
            if request.save:
                if result.problem:
                    raise InvalidMask(f"calibration not saved: {result.problem}")
                row = await asyncio.to_thread(
                    self.store.save_calibration, camera.id, result, points, width, height, request.actor,
                    request.comment.strip(),
                )  # fmt: skip
                log.info(
                    "PTZ camera calibrated", camera=camera.id, version=row.version, rms_px=round(result.rms_px, 2),
                    actor=request.actor,
                )  # fmt: skip
                return calibration_message(row)
            return pb.PtzCalibration(
                camera_id=camera.id,
                optics=optics_message(result.optics),
                points=[
                    pb.CalibrationPoint(
                        landmark=p.landmark, pan=p.pan, tilt=p.tilt, zoom=p.zoom, x=p.x, y=p.y, residual_px=r
                    )
                    for p, r in zip(points, result.residuals_px, strict=True)
                ],
                rms_px=result.rms_px,
                max_px=result.max_px,
                image_width=width,
                image_height=height,
                fitted=list(result.fitted),
                problem=result.problem,
            )

        return await self._run(context, work)

    async def GetPtzCalibration(self, request, context):
        async def work() -> pb.PtzCalibration:
            camera = await self._camera(request.camera_id)
            row = await asyncio.to_thread(self.store.calibration, camera.id, request.version)
            if row is None and request.version:
                raise NotFound(f"camera {camera.id} has no calibration version {request.version}")
            if row is None:
                return pb.PtzCalibration(camera_id=camera.id, optics=optics_message(self.node.optics))
            return calibration_message(row)

        return await self._run(context, work)

    # -- commissioning -------------------------------------------------------------------------

    async def GetCommissioningStatus(self, request, context):
        approved = await asyncio.to_thread(self.store.approved, request.camera_id)
        statement = await asyncio.to_thread(self.store.statement, request.camera_id)
        status = pb.CommissioningStatus(
            camera_id=request.camera_id, approved_version=approved.version if approved else 0
        )
        if statement is not None and statement.withdrawn_us is None:
            status.statement.CopyFrom(statement_message(statement))
            status.has_statement = True
        status.commissionable = approved is not None or status.has_statement
        if not status.commissionable:
            status.reason = (
                f"camera {request.camera_id} has no approved mask set and no supervisor's signed statement that no "
                "private area is in view"
            )
        return status

    async def RecordStatement(self, request, context):
        async def work() -> pb.NoPrivateAreaStatement:
            s = request.statement
            if request.actor_role != "supervisor":
                await context.abort(
                    grpc.StatusCode.PERMISSION_DENIED, "only a supervisor may state that no private area is in view"
                )
            await self._camera(s.camera_id)
            if not s.text.strip():
                raise ValueError("the statement's text is empty")
            try:
                content = json.loads(s.statement)
            except ValueError as exc:
                raise ValueError("the signed statement is not JSON") from exc
            expected = {"camera_id": s.camera_id, "supervisor": s.supervisor, "text": s.text, "signed_us": s.signed_us}
            if content != expected or s.supervisor != request.actor:
                raise ValueError("the signed statement does not match its fields or its author")
            if not verify(s.public_key_pem, bytes(s.statement), s.signature):
                raise ValueError("the statement's signature does not verify")
            if self.public_key_pem is not None and s.public_key_pem.strip() != self.public_key_pem.strip():
                raise ValueError("the statement is not signed with this deployment's key")
            row = StatementRow(
                id=uuid.uuid4().hex, camera_id=s.camera_id, supervisor=s.supervisor, text=s.text,
                signed_us=s.signed_us, statement=bytes(s.statement).decode(), signature=s.signature,
                public_key_pem=s.public_key_pem, recorded_by=request.actor,
            )  # fmt: skip
            await asyncio.to_thread(self.store.record_statement, row)
            log.info("no-private-area statement recorded", camera=s.camera_id, supervisor=s.supervisor)
            await self.node.announce(s.camera_id)
            return statement_message(row)

        return await self._run(context, work)

    async def WithdrawStatement(self, request, context):
        async def work() -> pb.NoPrivateAreaStatement:
            row = await asyncio.to_thread(self.store.withdraw_statement, request.camera_id, request.actor)
            log.info("no-private-area statement withdrawn", camera=row.camera_id, actor=request.actor)
            await self.node.announce(row.camera_id)
            return statement_message(row)

        return await self._run(context, work)

    # -- mask-error reports --------------------------------------------------------------------

    async def ReportMaskError(self, request, context):
        async def work() -> pb.MaskErrorReport:
            await self._camera(request.camera_id)
            if not request.description.strip():
                raise ValueError("describe the mask error (what is visible that should not be, or the reverse)")
            lane = self.node.lanes.get(request.camera_id)
            if lane is not None:
                version = lane.masker.mask_version
            else:
                approved = await asyncio.to_thread(self.store.approved, request.camera_id)
                version = version_label(approved.version) if approved else "none"
            row = await asyncio.to_thread(
                self.store.report, request.camera_id, request.actor, request.description.strip(),
                request.snapshot_ref.strip(), version,
            )  # fmt: skip
            alarm = Alarm(
                kind="mask_error",
                source="masking",
                camera_id=row.camera_id,
                message=f"mask error reported by {row.reporter} on camera {row.camera_id} ({version}): "
                f"{row.description[:200]}",
                raised_us=row.reported_us,
            )
            try:
                await bus.publish_event(
                    self.node.js, self.settings.nats_prefix, "alarm.raised", alarm.SerializeToString()
                )
            except Exception as exc:  # noqa: BLE001 - the report is stored; the alarm list catches up
                log.warning("mask-error alarm not published", report=row.id, error=str(exc))
            return report_message(row)

        return await self._run(context, work)

    async def ListMaskErrors(self, request, context):
        rows = await asyncio.to_thread(self.store.reports, request.camera_id, request.status)
        return pb.ListMaskErrorsResponse(reports=[report_message(r) for r in rows])

    async def CloseMaskError(self, request, context):
        async def work() -> pb.MaskErrorReport:
            if not request.resolution.strip():
                raise ValueError("say how the report was resolved")
            row = await asyncio.to_thread(
                self.store.close_report, request.id, request.actor, request.resolution.strip()
            )
            return report_message(row)

        return await self._run(context, work)

    # -- preview -------------------------------------------------------------------------------

    async def Preview(self, request, context):
        async def work() -> pb.PreviewImage:
            camera = await self._camera(request.camera_id)
            if camera.state not in ("commissioning", "in_service"):
                # Not streamed (maintenance, decommissioned): no replica holds an image of it.
                raise Conflict(f"camera {camera.id} is {camera.state}: it sends no image to preview")
            if request.version:
                await asyncio.to_thread(self.store.get, request.camera_id, request.version)
            if request.preset and not request.has_preset_position:
                if not camera.ptz_driver:
                    raise ValueError(f"camera {camera.id} has no PTZ: it has no presets to preview")
                await self._preset_position(request)
            if request.camera_id in self.node.lanes:
                return await self.node.preview(request)
            try:
                reply = await self.node.nc.request(
                    preview_subject(self.settings.nats_prefix, request.camera_id),
                    request.SerializeToString(),
                    timeout=PREVIEW_TIMEOUT_S,
                )
            except (NoRespondersError, NatsTimeout) as exc:
                raise Unavailable(
                    f"no masking replica holds camera {request.camera_id} now; try again shortly"
                ) from exc
            if reply.data.startswith(b"ok"):
                return pb.PreviewImage.FromString(reply.data[2:])
            name, _, message = reply.data.decode(errors="replace").partition(":")
            code = grpc.StatusCode.__members__.get(name, grpc.StatusCode.UNAVAILABLE)
            raise refusals.from_code(code, message)

        return await self._run(context, work)

    async def _preset_position(self, request: pb.PreviewRequest) -> None:
        try:
            state = await self.ingest.PtzGetState(
                ingest_pb2.PtzCameraRequest(
                    camera_id=request.camera_id, actor=ingest_pb2.PtzActor(user=request.actor or "masking")
                ),
                timeout=RPC_TIMEOUT_S,
            )
        except grpc.aio.AioRpcError as exc:
            # Ingest's refusals (no such camera, no PTZ now) are the caller's to fix, not a server fault.
            code = exc.code() if exc.code() in _INGEST_REFUSALS else grpc.StatusCode.UNAVAILABLE
            raise refusals.from_code(code, f"the camera's presets are unavailable: {exc.details()}") from exc
        for preset in state.presets:
            if preset.name == request.preset:
                p = preset.position
                request.preset_position.pan, request.preset_position.tilt = p.pan, p.tilt
                request.preset_position.zoom = p.zoom
                request.has_preset_position = True
                return
        raise NotFound(f"camera {request.camera_id} has no preset {request.preset!r}")

    # -- redaction -----------------------------------------------------------------------------

    async def CreateRedaction(self, request, context):
        async def work() -> pb.RedactionJob:
            camera = await self._camera(request.camera_id)
            now = to_us(self.jobs.clock.now())
            mode = request.mode or "scene"
            effect = request.effect or "pixelate"
            if mode not in MODES:
                raise ValueError(f"unknown mode {mode!r}: one of {', '.join(MODES)}")
            if effect not in EFFECTS:
                raise ValueError(f"unknown effect {effect!r}: one of {', '.join(EFFECTS)}")
            start, end = request.start_us, request.end_us
            if end <= start:
                raise ValueError("the range ends before it starts")
            if end - start > self.settings.redaction_max_range_s * 1e6:
                raise ValueError(f"the range is longer than {self.settings.redaction_max_range_s:.0f} s")
            if end > now:
                raise ValueError("the range ends in the future")
            retention_us = (camera.retention_days or 30) * DAY_US
            if start < now - retention_us:
                raise ValueError("the range starts before the camera's retention: that footage no longer exists")
            if not request.selection:
                raise ValueError("select the requester: at least one box on one frame")
            if len(request.selection) > MAX_SELECTION:
                raise ValueError(f"at most {MAX_SELECTION} boxes")
            covered = await self._covered(camera.id, start, end)
            if not covered:
                raise Conflict("nothing was recorded in that range")
            selection = []
            for n, box in enumerate(request.selection, start=1):
                check_box(box.x, box.y, box.width, box.height, f"box {n}")
                if not start <= box.time_us < end:
                    raise ValueError(f"box {n}: its time is outside the range")
                if not any(a <= box.time_us < b for a, b in covered):
                    raise ValueError(f"box {n}: nothing was recorded at that time")
                selection.append(
                    {"time_us": box.time_us, "x": box.x, "y": box.y, "width": box.width, "height": box.height}
                )
            limit = min(now + self.settings.redaction_max_days * DAY_US, start + retention_us)
            expires = min(request.expires_us or limit, limit)
            if expires <= now:
                raise ValueError("the request has already expired")
            row = await asyncio.to_thread(
                self.jobs.create, camera.id, start, end, mode, effect, selection, expires, request.actor,
                request.request_ref,
            )  # fmt: skip
            log.info("redaction queued", job=row.id, camera=camera.id, actor=request.actor, mode=mode)
            return job_message(row)

        return await self._run(context, work)

    async def _covered(self, camera_id: str, start: int, end: int) -> list[tuple[int, int]]:
        try:
            timeline = await self.archive.GetTimeline(
                archive_pb2.TimelineRequest(camera_id=camera_id, start_us=start, end_us=end, stream="main"),
                timeout=RPC_TIMEOUT_S,
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.OUT_OF_RANGE):
                raise ValueError(exc.details() or "invalid range") from exc
            raise Unavailable("the archive is unavailable; try again shortly") from exc
        return [(c.start_us, c.end_us) for c in timeline.covered]

    async def GetRedaction(self, request, context):
        async def work() -> pb.RedactionJob:
            return job_message(await asyncio.to_thread(self.jobs.get, request.id), include_track=True)

        return await self._run(context, work)

    async def ListRedactions(self, request, context):
        rows = await asyncio.to_thread(self.jobs.of_camera, request.camera_id)
        return pb.ListRedactionsResponse(jobs=[job_message(r) for r in rows])

    async def CancelRedaction(self, request, context):
        async def work() -> pb.RedactionJob:
            return job_message(await asyncio.to_thread(self.jobs.cancel, request.id))

        return await self._run(context, work)

    async def ReadRedaction(self, request, context) -> AsyncIterator[pb.RedactionChunk]:
        try:
            row = await asyncio.to_thread(self.jobs.get, request.id)
        except Refusal as exc:
            await refusals.abort(context, exc)
        if row.status != DONE or not row.object_key:
            code = grpc.StatusCode.NOT_FOUND if row.status == "expired" else grpc.StatusCode.FAILED_PRECONDITION
            await context.abort(code, f"job {row.id} is {row.status}: no clip to read")
        if row.expires_us <= to_us(self.jobs.clock.now()):
            await context.abort(grpc.StatusCode.NOT_FOUND, f"the clip of job {row.id} has expired")
        yield pb.RedactionChunk(job=job_message(row))
        chunks = await asyncio.to_thread(lambda: self.redactions.iter_chunks(row.object_key, chunk_size=CHUNK))
        try:
            while True:
                data = await asyncio.to_thread(next, chunks, None)
                if data is None:
                    break
                yield pb.RedactionChunk(data=data)
        except ObjectNotFound:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"the clip of job {row.id} is gone")
