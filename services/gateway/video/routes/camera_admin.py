"""The camera registry through the gateway: cameras, lifecycle, CSV import/export, authorisations.

Who sees what:
- a camera's details (state, profile, status, metrics) need any right on it; its position and its
  (credential-free) stream addresses only "config" or "live" on it; there is no endpoint listing
  positions to anyone else;
- every change needs "config" (administrators) on the camera's groups, and is audited before it is
  made; stream credentials are write-only (never returned, never in the audit trail);
- authorisations are read with "config" or "audit" (auditors); their perimeter, which reveals
  where cameras are, only with "config".
Errors from ingest keep their message: 404 unknown, 422 a rule broken, 409 a conflict (e.g. a
position outside the authorised perimeter).
"""

import json
from datetime import UTC, date, datetime, time
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from services.common import commissioning as commissioning_gate
from services.common.clock import to_us
from services.common.pb.csu.v1 import ingest_pb2
from services.common.timefmt import iso
from services.gateway.backends import RPC_TIMEOUT_S, Backends, BackendsDep, rpc_errors, unknown_camera
from services.gateway.identity.roles import CAMERA_ACTIONS
from services.gateway.identity.security import Principal, audit, authenticate, require
from services.gateway.video.commissioning import ensure_commissionable

router = APIRouter(prefix="/api/v1", tags=["camera registry"])
MAX_CSV_BYTES = 5 * 1024 * 1024


# -- models ------------------------------------------------------------------------------------


class Position(BaseModel):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    view_direction_deg: float = Field(0.0, ge=0, lt=360)


class Profile(BaseModel):
    # Bounded so that nothing past what a camera can send reaches the registry (int32 on the wire).
    width: int = Field(ge=1, le=16_384)
    height: int = Field(ge=1, le=16_384)
    fps: float = Field(gt=0, le=240)
    segment_duration_s: float = Field(60.0, gt=0, le=600)
    close_up: bool = Field(False, description="A close-up camera filming people (stricter norms).")


class Metrics(BaseModel):
    fps: float
    bitrate_bps: float
    reconnects: int
    last_packet_age_s: float
    replica: str
    width: int
    height: int
    codec: str


class Imaging(BaseModel):
    """What the camera burns in itself, and the date/time/identity overlay masking burns in."""

    camera_masks: bool = Field(
        False, description="The camera burns the approved privacy masks itself (ONVIF Media2 at ptz_url); checked."
    )
    camera_osd: bool = Field(
        False, description="The camera's own OSD shows date, time and its identity (needed to pass its packets)."
    )
    osd_overlay: bool = Field(True, description="Masking burns date, time and camera identity in where it encodes.")
    osd_position: Literal["top-left", "top-right", "bottom-left", "bottom-right"] = "top-left"


class CameraDetails(BaseModel):
    id: str
    name: str
    state: str
    status: str
    status_reason: str
    status_since: str
    groups: list[str]
    model: str
    generation: str
    ptz_driver: str
    profile: Profile
    retention_days: int
    authorisation_ref: str
    recording_allowed: bool
    recording_refusal: str
    has_sub_stream: bool
    metrics: Metrics
    imaging: Imaging
    # Only for principals allowed "config" or "live" on the camera.
    position: Position | None = None
    main_source: str | None = Field(None, description="Without credentials.")
    sub_source: str | None = None
    transport: str | None = None


class CameraIn(BaseModel):
    """A camera's settings. URLs may carry credentials: they are stored encrypted, never shown back."""

    name: str = Field(min_length=1, max_length=200)
    main_url: str = Field(
        "", max_length=2048, description="Required on creation; empty on update keeps the stored one."
    )
    sub_url: str = Field("", max_length=2048)
    clear_sub_url: bool = False
    transport: Literal["tcp", "udp"] = "tcp"
    model: str = Field("", max_length=100)
    generation: str = Field("", max_length=100)
    ptz_driver: Literal["", "onvif", "simulated"] = ""
    ptz_url: str = Field("", max_length=2048)
    position: Position
    groups: list[str] = Field(["default"], max_length=64)
    profile: Profile
    retention_days: int = Field(15, ge=1, le=30)
    authorisation_ref: str = Field("", max_length=128)
    imaging: Imaging | None = Field(None, description="Absent on update: kept as stored.")


class CameraCreate(CameraIn):
    id: str
    state: Literal["commissioning", "in_service", "maintenance"] = "commissioning"


class StateIn(BaseModel):
    state: Literal["commissioning", "in_service", "maintenance", "decommissioned"]


class ImportOut(BaseModel):
    created: int
    updated: int
    dry_run: bool


class AuthorisationIn(BaseModel):
    decision_date: date
    expiry_date: date = Field(description="Last day of validity is the day before; at most 5 years after the decision.")
    purposes: list[str]
    max_retention_days: int = Field(ge=1, le=30)
    recipients: list[str]
    perimeter: dict[str, Any] = Field(description="GeoJSON Polygon or MultiPolygon, [lon, lat] coordinates.")


class AuthorisationOut(BaseModel):
    reference: str
    decision: str
    expiry: str
    warning_from: str
    status: str
    purposes: list[str]
    max_retention_days: int
    recipients: list[str]
    camera_ids: list[str]
    perimeter: dict[str, Any] | None = None


class LeaseOut(BaseModel):
    key: str
    owner: str
    revision: int


class LeasesOut(BaseModel):
    replicas: list[str]
    leases: list[LeaseOut]


# -- helpers -----------------------------------------------------------------------------------


def _details(c: ingest_pb2.Camera, confidential: bool) -> CameraDetails:
    m = c.metrics
    details = CameraDetails(
        id=c.id,
        name=c.name,
        state=c.state,
        status=c.status,
        status_reason=c.status_reason,
        status_since=iso(c.status_since_us),
        groups=list(c.groups),
        model=c.model,
        generation=c.generation,
        ptz_driver=c.ptz_driver,
        profile=Profile(
            width=c.profile.width,
            height=c.profile.height,
            fps=c.profile.fps,
            segment_duration_s=c.profile.segment_duration_s,
            close_up=c.profile.close_up,
        ),
        retention_days=c.retention_days,
        authorisation_ref=c.authorisation_ref,
        recording_allowed=c.recording_allowed,
        recording_refusal=c.recording_refusal,
        has_sub_stream=c.has_sub_stream,
        imaging=Imaging(
            camera_masks=c.imaging.camera_masks,
            camera_osd=c.imaging.camera_osd,
            osd_overlay=c.imaging.osd_overlay,
            osd_position=c.imaging.osd_position or "top-left",
        ),
        metrics=Metrics(
            fps=m.fps,
            bitrate_bps=m.bitrate_bps,
            reconnects=m.reconnects,
            last_packet_age_s=m.last_packet_age_s,
            replica=m.owner,
            width=m.width,
            height=m.height,
            codec=m.codec,
        ),
    )
    if confidential and c.has_position:
        details.position = Position(
            lat=c.position.lat, lon=c.position.lon, view_direction_deg=c.position.view_direction_deg
        )
        details.main_source, details.sub_source, details.transport = c.main_source, c.sub_source, c.transport
    return details


def may_see_position(principal: Principal, groups: list[str]) -> bool:
    return principal.may("config", groups) or principal.may("live", groups)


def _spec(camera_id: str, body: CameraIn, state: str = "") -> ingest_pb2.CameraSpec:
    spec = ingest_pb2.CameraSpec(
        id=camera_id,
        name=body.name,
        main_url=body.main_url,
        sub_url=body.sub_url,
        clear_sub_url=body.clear_sub_url,
        transport=body.transport,
        model=body.model,
        generation=body.generation,
        ptz_driver=body.ptz_driver,
        ptz_url=body.ptz_url,
        position=ingest_pb2.GeoPosition(
            lat=body.position.lat, lon=body.position.lon, view_direction_deg=body.position.view_direction_deg
        ),
        groups=body.groups,
        profile=ingest_pb2.RecordingProfile(
            width=body.profile.width,
            height=body.profile.height,
            fps=body.profile.fps,
            segment_duration_s=body.profile.segment_duration_s,
            close_up=body.profile.close_up,
        ),
        retention_days=body.retention_days,
        authorisation_ref=body.authorisation_ref,
        state=state,
    )
    if body.imaging is not None:
        spec.imaging.CopyFrom(ingest_pb2.CameraImaging(**body.imaging.model_dump()))
        spec.has_imaging = True
    return spec


def _audited_fields(body: CameraIn) -> dict[str, Any]:
    """What the audit trail records of a change: everything but the secrets."""
    fields = body.model_dump(exclude={"main_url", "sub_url", "ptz_url"})
    fields["urls_changed"] = [k for k in ("main_url", "sub_url", "ptz_url") if getattr(body, k)]
    return fields


def _check_groups(principal: Principal, groups: list[str]) -> None:
    if not principal.may("config", groups):
        raise HTTPException(403, f"your habilitation does not cover camera group(s) {', '.join(groups)} for config")


def _authorisation(a: ingest_pb2.Authorisation, confidential: bool) -> AuthorisationOut:
    return AuthorisationOut(
        reference=a.reference,
        decision=iso(a.decision_us),
        expiry=iso(a.expiry_us),
        warning_from=iso(a.warning_from_us),
        status=a.status,
        purposes=list(a.purposes),
        max_retention_days=a.max_retention_days,
        recipients=list(a.recipients),
        camera_ids=list(a.camera_ids),
        perimeter=json.loads(a.perimeter_geojson) if confidential and a.perimeter_geojson else None,
    )


def _day_us(day: date) -> int:
    return to_us(datetime.combine(day, time(0, 0), UTC))


# -- cameras -----------------------------------------------------------------------------------


@router.get("/cameras.csv", response_class=Response)
async def export_cameras(b: BackendsDep, principal: Principal = Depends(require("config"))) -> Response:
    """The camera list as CSV (positions included, credentials never): the import format."""
    await audit(principal, "config.cameras.export", "cameras")
    async with rpc_errors("ingest"):
        answer = await b.ingest.ExportCameras(ingest_pb2.ExportCamerasRequest(), timeout=RPC_TIMEOUT_S)
    return Response(
        answer.csv,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="cameras.csv"', "Cache-Control": "no-store"},
    )


@router.post("/cameras.csv", response_model=ImportOut)
async def import_cameras(
    request: Request,
    b: BackendsDep,
    dry_run: bool = Query(False, description="Check every line, change nothing."),
    principal: Principal = Depends(require("config")),
) -> ImportOut:
    """Create or update cameras from CSV (text/csv body): all of them, or none with each line's errors."""
    data = await request.body()
    if len(data) > MAX_CSV_BYTES:
        raise HTTPException(413, f"the CSV is larger than {MAX_CSV_BYTES // (1024 * 1024)} MB")
    if not data.strip():
        raise HTTPException(422, "empty body: send the CSV (text/csv), header line first")
    gated = await _commissioning_errors(b, data)
    if not dry_run and not gated:
        await audit(principal, "config.cameras.import", "cameras", details={"bytes": len(data)})
    async with rpc_errors("ingest"):
        answer = await b.ingest.ImportCameras(
            ingest_pb2.CsvRequest(csv=data, actor=principal.username, dry_run=dry_run or bool(gated)), timeout=60
        )
    errors = sorted([(e.line, e.message) for e in answer.errors] + gated)
    if errors:
        raise HTTPException(
            422,
            {
                "message": f"{len(errors)} error(s); nothing was imported",
                "errors": [{"line": line, "message": message} for line, message in errors],
            },
        )
    return ImportOut(created=answer.created, updated=answer.updated, dry_run=dry_run)


async def _commissioning_errors(b: Backends, data: bytes) -> list[tuple[int, str]]:
    """The commissioning gate for every CSV row that asks for in_service, as (line, message)."""
    try:
        return await commissioning_gate.csv_refusals(b.ingest, b.masking, b.signer.keyring(), data)
    except commissioning_gate.GateUnavailable as exc:
        raise HTTPException(503, str(exc)) from exc


@router.get("/cameras/{camera_id}", response_model=CameraDetails)
async def camera_details(camera_id: str, b: BackendsDep, principal: Principal = Depends(authenticate)) -> CameraDetails:
    """A camera's settings and health; position and sources only with "config" or "live" on it."""
    camera = await b.camera(camera_id)
    groups = list(camera.groups)
    if not any(principal.may(a, groups) for a in CAMERA_ACTIONS):
        raise unknown_camera(camera_id)  # as an unknown one: security.authorize
    confidential = may_see_position(principal, groups)
    async with rpc_errors("ingest"):
        full = await b.ingest.GetCamera(
            ingest_pb2.GetCameraRequest(camera_id=camera_id, include_confidential=confidential),
            timeout=RPC_TIMEOUT_S,
        )
    return _details(full, confidential)


@router.post("/cameras", response_model=CameraDetails, status_code=201)
async def create_camera(
    body: CameraCreate, b: BackendsDep, principal: Principal = Depends(require("config"))
) -> CameraDetails:
    _check_groups(principal, body.groups)
    await ensure_commissionable(b, body.id, body.state)
    await audit(principal, "config.camera.create", f"camera:{body.id}", details=_audited_fields(body))
    async with rpc_errors("ingest"):
        camera = await b.ingest.CreateCamera(
            ingest_pb2.PutCameraRequest(camera=_spec(body.id, body, body.state), actor=principal.username),
            timeout=RPC_TIMEOUT_S,
        )
    return _details(camera, True)


@router.put("/cameras/{camera_id}", response_model=CameraDetails)
async def update_camera(
    camera_id: str,
    body: CameraIn,
    b: BackendsDep,
    principal: Principal = Depends(require("config", camera="camera_id")),
) -> CameraDetails:
    """Change a camera (all fields; empty URLs keep the stored ones). Moving it outside its perimeter: 409."""
    _check_groups(principal, body.groups)
    await audit(principal, "config.camera.update", f"camera:{camera_id}", details=_audited_fields(body))
    async with rpc_errors("ingest"):
        camera = await b.ingest.UpdateCamera(
            ingest_pb2.PutCameraRequest(camera=_spec(camera_id, body), actor=principal.username),
            timeout=RPC_TIMEOUT_S,
        )
    return _details(camera, True)


@router.post("/cameras/{camera_id}/state", response_model=CameraDetails)
async def set_state(
    camera_id: str,
    body: StateIn,
    b: BackendsDep,
    principal: Principal = Depends(require("config", camera="camera_id")),
) -> CameraDetails:
    """Lifecycle: commissioning -> in_service <-> maintenance -> decommissioned.

    Going into service needs an approved mask set or a signed statement (409 otherwise)."""
    await ensure_commissionable(b, camera_id, body.state)
    await audit(principal, "config.camera.state", f"camera:{camera_id}", details={"state": body.state})
    async with rpc_errors("ingest"):
        camera = await b.ingest.SetCameraState(
            ingest_pb2.SetCameraStateRequest(camera_id=camera_id, state=body.state, actor=principal.username),
            timeout=RPC_TIMEOUT_S,
        )
    return _details(camera, True)


# -- authorisations ----------------------------------------------------------------------------


async def _reader(request: Request) -> Principal:
    principal = await authenticate(request)
    if not (principal.may("config") or principal.may("audit")):
        raise HTTPException(403, "reading authorisations needs the config or audit right")
    return principal


@router.get("/authorisations", response_model=list[AuthorisationOut])
async def list_authorisations(b: BackendsDep, principal: Principal = Depends(_reader)) -> list:
    """Every prefectoral authorisation with its status (valid, expiring, expired, not_yet_valid)."""
    confidential = principal.may("config")
    async with rpc_errors("ingest"):
        answer = await b.ingest.ListAuthorisations(
            ingest_pb2.ListAuthorisationsRequest(include_confidential=confidential), timeout=RPC_TIMEOUT_S
        )
    return [_authorisation(a, confidential) for a in answer.authorisations]


@router.get("/authorisations/{reference}", response_model=AuthorisationOut)
async def get_authorisation(
    reference: str, b: BackendsDep, principal: Principal = Depends(_reader)
) -> AuthorisationOut:
    confidential = principal.may("config")
    async with rpc_errors("ingest"):
        answer = await b.ingest.GetAuthorisation(
            ingest_pb2.GetAuthorisationRequest(reference=reference, include_confidential=confidential),
            timeout=RPC_TIMEOUT_S,
        )
    return _authorisation(answer, confidential)


@router.put("/authorisations/{reference}", response_model=AuthorisationOut)
async def put_authorisation(
    reference: str,
    body: AuthorisationIn,
    b: BackendsDep,
    principal: Principal = Depends(require("config")),
) -> AuthorisationOut:
    """Record (or correct) a prefectoral order. A perimeter leaving a camera outside is refused (409)."""
    await audit(
        principal, "config.authorisation.put", f"authorisation:{reference}", details=body.model_dump(mode="json")
    )
    message = ingest_pb2.Authorisation(
        reference=reference,
        decision_us=_day_us(body.decision_date),
        expiry_us=_day_us(body.expiry_date),
        purposes=body.purposes,
        max_retention_days=body.max_retention_days,
        recipients=body.recipients,
        perimeter_geojson=json.dumps(body.perimeter),
    )
    async with rpc_errors("ingest"):
        answer = await b.ingest.PutAuthorisation(
            ingest_pb2.PutAuthorisationRequest(authorisation=message, actor=principal.username),
            timeout=RPC_TIMEOUT_S,
        )
    return _authorisation(answer, True)


@router.delete("/authorisations/{reference}", status_code=204)
async def delete_authorisation(
    reference: str, b: BackendsDep, principal: Principal = Depends(require("config"))
) -> Response:
    await audit(principal, "config.authorisation.delete", f"authorisation:{reference}")
    async with rpc_errors("ingest"):
        await b.ingest.DeleteAuthorisation(
            ingest_pb2.DeleteRequest(id=reference, actor=principal.username), timeout=RPC_TIMEOUT_S
        )
    return Response(status_code=204)


# -- fleet -------------------------------------------------------------------------------------


@router.get("/ingest/leases", response_model=LeasesOut)
async def leases(b: BackendsDep, principal: Principal = Depends(require("config"))) -> LeasesOut:
    """Which ingest replica holds which camera."""
    del principal
    async with rpc_errors("ingest"):
        answer = await b.ingest.ListLeases(ingest_pb2.Empty(), timeout=RPC_TIMEOUT_S)
    return LeasesOut(
        replicas=list(answer.replicas),
        leases=[LeaseOut(key=lease.key, owner=lease.owner, revision=lease.revision) for lease in answer.leases],
    )
