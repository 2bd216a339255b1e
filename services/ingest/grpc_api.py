"""IngestService over gRPC: the registry, the fleet's statuses, leases, and PTZ (forwarded to the holder).

Positions, stream sources and perimeters are confidential: they are returned only when the caller
sets include_confidential, which the gateway does only for principals allowed "config" or "live"
on the camera. Credentials are never returned at all (URLs show *** in their place).
"""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from pydantic import ValidationError

from services.common import refusals
from services.common.clock import to_us
from services.common.log import get_logger
from services.common.pb.csu.v1 import ingest_pb2, ingest_pb2_grpc
from services.common.refusals import NotFound, Refusal
from services.common.secretbox import SecretBoxError
from services.ingest import authorisations as auth
from services.ingest import csvio, onvif_masks
from services.ingest.node import IngestNode
from services.ingest.onvif_masks import CameraMask
from services.ingest.ptz import service as ptz
from services.ingest.registry import AuthorisationRecord, CameraRecord, masked_url
from services.ingest.specs import CameraInput, first_error

log = get_logger(__name__)
T = TypeVar("T")


def camera_input(spec: ingest_pb2.CameraSpec) -> CameraInput:
    fields: dict[str, Any] = {
        "id": spec.id,
        "name": spec.name,
        "main_url": spec.main_url,
        "sub_url": spec.sub_url,
        "transport": spec.transport or "tcp",
        "model": spec.model,
        "generation": spec.generation,
        "ptz_driver": spec.ptz_driver,
        "ptz_url": spec.ptz_url,
        "lat": spec.position.lat,
        "lon": spec.position.lon,
        "view_direction_deg": spec.position.view_direction_deg,
        "groups": list(spec.groups) or ["default"],
        "width": spec.profile.width,
        "height": spec.profile.height,
        "fps": spec.profile.fps,
        "segment_duration_s": spec.profile.segment_duration_s or 60.0,
        "close_up": spec.profile.close_up,
        "retention_days": spec.retention_days,
        "authorisation_ref": spec.authorisation_ref,
    }
    if spec.state:
        fields["state"] = spec.state
    if spec.has_imaging:
        i = spec.imaging
        fields |= {"camera_masks": i.camera_masks, "camera_osd": i.camera_osd, "osd_overlay": i.osd_overlay}
        fields["osd_position"] = i.osd_position or "top-left"
    return CameraInput.model_validate(fields)


def imaging_message(record: CameraRecord) -> ingest_pb2.CameraImaging:
    return ingest_pb2.CameraImaging(
        camera_masks=record.camera_masks,
        camera_osd=record.camera_osd,
        osd_overlay=record.osd_overlay,
        osd_position=record.osd_position,
    )


class IngestApi(ingest_pb2_grpc.IngestServiceServicer):
    def __init__(self, node: IngestNode) -> None:
        self._node = node

    # -- helpers -----------------------------------------------------------------------------

    async def _run(self, context: grpc.aio.ServicerContext, work: Callable[[], Awaitable[T]]) -> T:
        try:
            return await work()
        except ValidationError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, first_error(exc))
        except Refusal as exc:
            await refusals.abort(context, exc)
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except SecretBoxError as exc:
            log.error("camera secrets unreadable", error=str(exc))
            await context.abort(grpc.StatusCode.INTERNAL, "stored camera credentials cannot be decrypted")
        raise AssertionError("unreachable")  # context.abort raises

    def _camera(self, record: CameraRecord, confidential: bool) -> ingest_pb2.Camera:
        node = self._node
        status = node.current_status(record)
        refusal = node.refusal(record)
        metrics = status.metrics or {}
        camera = ingest_pb2.Camera(
            id=record.id,
            name=record.name,
            status=status.status,
            status_reason=status.reason,
            status_since_us=status.since_us,
            retention_days=record.retention_days,
            groups=record.groups,
            state=record.state,
            model=record.model,
            generation=record.generation,
            ptz_driver=record.ptz_driver,
            profile=ingest_pb2.RecordingProfile(
                width=record.width,
                height=record.height,
                fps=record.fps,
                segment_duration_s=record.segment_duration_s,
                close_up=record.close_up,
            ),
            authorisation_ref=record.authorisation_ref,
            recording_allowed=refusal is None,
            recording_refusal=refusal or "",
            has_sub_stream=bool(record.sub_url),
            imaging=imaging_message(record),
            metrics=ingest_pb2.CameraMetrics(
                fps=float(metrics.get("fps", 0.0)),
                bitrate_bps=float(metrics.get("bitrate_bps", 0.0)),
                reconnects=int(metrics.get("reconnects", 0)),
                last_packet_age_s=float(metrics.get("last_packet_age_s", -1.0)),
                owner=status.owner,
                width=int(metrics.get("width", 0)),
                height=int(metrics.get("height", 0)),
                codec=str(metrics.get("codec", "")),
            ),
        )
        if confidential:
            camera.position.CopyFrom(
                ingest_pb2.GeoPosition(lat=record.lat, lon=record.lon, view_direction_deg=record.view_direction_deg)
            )
            camera.has_position = True
            camera.main_source = masked_url(record.main_url)
            camera.sub_source = masked_url(record.sub_url)
            camera.transport = record.transport
        return camera

    def _authorisation(self, record: AuthorisationRecord, confidential: bool) -> ingest_pb2.Authorisation:
        now = to_us(self._node.policy_clock.now())
        return ingest_pb2.Authorisation(
            reference=record.reference,
            decision_us=record.decision_us,
            expiry_us=record.expiry_us,
            purposes=record.purposes,
            max_retention_days=record.max_retention_days,
            recipients=record.recipients,
            perimeter_geojson=record.perimeter_geojson if confidential else "",
            status=record.status(now),
            camera_ids=sorted(c.id for c in self._node.cameras.values() if c.authorisation_ref == record.reference),
            warning_from_us=auth.warning_from_us(record.expiry_us),
        )

    async def _record(self, camera_id: str) -> CameraRecord:
        record = self._node.cameras.get(camera_id)
        if record is None:
            await self._node.refresh()
            record = self._node.cameras.get(camera_id)
        if record is None:
            raise NotFound(f"unknown camera {camera_id!r}")
        return record

    # -- cameras -----------------------------------------------------------------------------

    async def ListCameras(self, request, context):
        cameras = sorted(self._node.cameras.values(), key=lambda c: c.id)
        return ingest_pb2.ListCamerasResponse(cameras=[self._camera(c, request.include_confidential) for c in cameras])

    async def GetCamera(self, request, context):
        async def work() -> ingest_pb2.Camera:
            return self._camera(await self._record(request.camera_id), request.include_confidential)

        return await self._run(context, work)

    async def SyncPrivacyMasks(self, request, context):
        async def work() -> ingest_pb2.PrivacyMasksState:
            record = await self._record(request.camera_id)
            colour = (request.colour_y, request.colour_cb, request.colour_cr)
            wanted = [CameraMask(tuple((p.x, p.y) for p in m.points), colour) for m in request.masks]
            state = ingest_pb2.PrivacyMasksState()
            if not record.camera_masks:
                state.problem = f"camera {record.id} does not burn privacy masks itself (camera_masks is off)"
            else:
                try:
                    held, state.problem = await onvif_masks.sync(record.ptz_url, wanted, request.push)
                except onvif_masks.MaskDriverError as exc:
                    state.problem = str(exc)
                else:
                    state.held.extend(
                        ingest_pb2.PrivacyMask(points=[ingest_pb2.ImagePoint(x=x, y=y) for x, y in m.polygon])
                        for m in held
                        if m.enabled
                    )
            state.matches = not state.problem
            # On the clock packets are stamped with: masking compares it with their capture times.
            state.read_time_us = to_us(self._node.capture_clock.now())
            if state.problem:
                log.warning("camera's privacy masks not as approved", camera=record.id, problem=state.problem)
            return state

        return await self._run(context, work)

    async def CreateCamera(self, request, context):
        async def work() -> ingest_pb2.Camera:
            spec = camera_input(request.camera)
            record = await asyncio.to_thread(self._node.registry.create_camera, spec, request.actor or "unknown")
            await self._node.changed()
            log.info("camera created", camera=record.id, actor=request.actor)
            return self._camera(record, True)

        return await self._run(context, work)

    async def UpdateCamera(self, request, context):
        async def work() -> ingest_pb2.Camera:
            current = await self._record(request.camera.id)
            spec = request.camera
            if not spec.state:
                spec.state = current.state
            record = await asyncio.to_thread(
                self._node.registry.update_camera, camera_input(spec), request.actor or "unknown", spec.clear_sub_url
            )
            await self._node.changed()
            log.info("camera updated", camera=record.id, actor=request.actor)
            return self._camera(record, True)

        return await self._run(context, work)

    async def SetCameraState(self, request, context):
        async def work() -> ingest_pb2.Camera:
            record = await asyncio.to_thread(
                self._node.registry.set_state, request.camera_id, request.state, request.actor or "unknown"
            )
            await self._node.changed()
            log.info("camera state", camera=record.id, state=record.state, actor=request.actor)
            return self._camera(record, True)

        return await self._run(context, work)

    async def ImportCameras(self, request, context):
        async def work() -> ingest_pb2.CsvImportResponse:
            states = {c.id: c.state for c in self._node.cameras.values()}
            specs, errors = csvio.parse(request.csv, states)
            # Rows that parsed are checked against the registry's rules even when others did not,
            # so one answer lists every line to fix.
            dry_run = request.dry_run or bool(errors)
            created, updated, rule_errors = await asyncio.to_thread(
                self._node.registry.apply_bulk, specs, request.actor or "unknown", dry_run
            )
            errors = errors + rule_errors
            response = ingest_pb2.CsvImportResponse()
            if errors:
                response.errors.extend(ingest_pb2.CsvError(line=line, message=m) for line, m in sorted(errors))
                return response
            response.created, response.updated = created, updated
            if not request.dry_run:
                await self._node.changed()
                log.info("cameras imported", created=created, updated=updated, actor=request.actor)
            return response

        return await self._run(context, work)

    async def ExportCameras(self, request, context):
        async def work() -> ingest_pb2.ExportCamerasResponse:
            cameras = await asyncio.to_thread(self._node.registry.cameras)
            return ingest_pb2.ExportCamerasResponse(csv=csvio.export(cameras))

        return await self._run(context, work)

    # -- authorisations ----------------------------------------------------------------------

    async def PutAuthorisation(self, request, context):
        async def work() -> ingest_pb2.Authorisation:
            a = request.authorisation
            data = auth.AuthorisationInput(
                reference=a.reference,
                decision_us=a.decision_us,
                expiry_us=a.expiry_us,
                purposes=list(a.purposes),
                max_retention_days=a.max_retention_days,
                recipients=list(a.recipients),
                perimeter_geojson=a.perimeter_geojson,
            )
            record = await asyncio.to_thread(self._node.registry.put_authorisation, data, request.actor or "unknown")
            await self._node.changed()
            log.info("authorisation saved", reference=record.reference, actor=request.actor)
            return self._authorisation(record, True)

        return await self._run(context, work)

    async def GetAuthorisation(self, request, context):
        async def work() -> ingest_pb2.Authorisation:
            record = await asyncio.to_thread(self._node.registry.authorisation, request.reference)
            return self._authorisation(record, request.include_confidential)

        return await self._run(context, work)

    async def ListAuthorisations(self, request, context):
        records = await asyncio.to_thread(self._node.registry.authorisations)
        return ingest_pb2.ListAuthorisationsResponse(
            authorisations=[self._authorisation(r, request.include_confidential) for r in records]
        )

    async def DeleteAuthorisation(self, request, context):
        async def work() -> ingest_pb2.Empty:
            await asyncio.to_thread(self._node.registry.delete_authorisation, request.id, request.actor or "unknown")
            await self._node.changed()
            log.info("authorisation deleted", reference=request.id, actor=request.actor)
            return ingest_pb2.Empty()

        return await self._run(context, work)

    # -- leases ------------------------------------------------------------------------------

    async def ListLeases(self, request, context):
        from services.common.leases import MEMBER

        entries = await self._node.leases.entries()
        members = await self._node.leases.entries(MEMBER)
        return ingest_pb2.ListLeasesResponse(
            leases=[ingest_pb2.Lease(key=k, owner=o, revision=r) for k, (o, r) in sorted(entries.items())],
            replicas=sorted(members),
        )

    # -- PTZ ---------------------------------------------------------------------------------

    async def _ptz(self, method: str, request, context):
        return await self._run(context, lambda: ptz.call(self._node, method, request))

    async def PtzGetState(self, request, context):
        return await self._ptz("PtzGetState", request, context)

    async def PtzMove(self, request, context):
        return await self._ptz("PtzMove", request, context)

    async def PtzReserve(self, request, context):
        return await self._ptz("PtzReserve", request, context)

    async def PtzRelease(self, request, context):
        return await self._ptz("PtzRelease", request, context)

    async def PtzSetPreset(self, request, context):
        return await self._ptz("PtzSetPreset", request, context)

    async def PtzDeletePreset(self, request, context):
        return await self._ptz("PtzDeletePreset", request, context)

    async def PtzPutTour(self, request, context):
        return await self._ptz("PtzPutTour", request, context)

    async def PtzDeleteTour(self, request, context):
        return await self._ptz("PtzDeleteTour", request, context)

    async def PtzStartTour(self, request, context):
        return await self._ptz("PtzStartTour", request, context)

    async def PtzStopTour(self, request, context):
        return await self._ptz("PtzStopTour", request, context)
