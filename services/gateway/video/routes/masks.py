"""Privacy-mask governance through the gateway: mask sets, four-eyes approval, the commissioning
gate, no-private-area statements, mask-error reports, the mask editor's masked preview and its PTZ
calibration step.

Who may do what:
- reading, drafting, changing, discarding and approving mask sets, previews and closing reports
  need "mask_admin" on the camera (supervisors, administrators); approval needs a second mask
  administrator (four-eyes, enforced by masking on the draft's author);
- the statement that no private area is in view is a supervisor's, signed with the deployment's
  Ed25519 key over its exact bytes;
- any user who watches the camera (live or playback) may report a mask error;
- calibrating a PTZ camera (fitting its optics to reference points, storing the fit) needs
  "mask_admin" on it; a stored calibration changes no frame by itself: the sets drawn under it do,
  once approved by a second administrator (services/masking/calibration.py).
Every change, every preview (it shows video) and every report is audited before it happens.
Masking's refusals keep their message: 404 unknown, 422 a bad polygon, 409 a governance rule.

The commissioning gate for the camera lifecycle (a camera leaves `commissioning` for `in_service`
only with an approved mask set or a signed statement that verifies with this deployment's key) is
services/gateway/video/commissioning.py; its status route is here.
"""

import json
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from services.common import commissioning as commissioning_gate
from services.common.clock import to_us
from services.common.pb.csu.v1 import masking_pb2
from services.common.pb.csu.v1.frame_pb2 import PtzPosition
from services.common.timefmt import iso_if_set
from services.gateway.backends import RPC_TIMEOUT_S, Backends, BackendsDep, rpc_errors
from services.gateway.identity.security import Principal, audit, authenticate, check_camera, require

router = APIRouter(prefix="/api/v1", tags=["privacy masks"])
PREVIEW_TIMEOUT_S = 20.0


# -- models ------------------------------------------------------------------------------------


class PolygonIn(BaseModel):
    points: list[tuple[float, float]] = Field(
        description="[[x, y], ...]: normalised image coordinates (0..1) for fixed cameras; pan/tilt (-1..1) for "
        "PTZ cameras, or image coordinates with drawn_at."
    )
    label: str = Field("", max_length=200)


class PtzIn(BaseModel):
    pan: float = Field(ge=-1, le=1)
    tilt: float = Field(ge=-1, le=1)
    zoom: float = Field(ge=0, le=1)


class MaskSetIn(BaseModel):
    polygons: list[PolygonIn] = Field(max_length=64)
    space: Literal["", "image", "ptz"] = Field("", description="Empty: the camera's kind (ptz or image).")
    comment: str = Field("", max_length=2000)
    drawn_at: PtzIn | None = Field(
        None, description="PTZ cameras: the polygons are drawn on the image seen at this position."
    )


class PolygonOut(BaseModel):
    points: list[tuple[float, float]]
    label: str


class MaskSetOut(BaseModel):
    camera_id: str
    version: int
    mask_version: str
    status: str
    space: str
    polygons: list[PolygonOut]
    author: str
    created: str | None
    approver: str
    approved: str | None
    superseded: str | None
    comment: str
    origin: str
    # PTZ sets: the calibration the polygons were drawn under (None: none; approved, it masks the
    # camera whole until replaced by a set drawn after calibrating).
    calibration_version: int | None = None


class CalibrationPointIn(BaseModel):
    landmark: str = Field(min_length=1, max_length=64, description="A name for a fixed landmark clicked in the image.")
    pan: float = Field(ge=-1, le=1)
    tilt: float = Field(ge=-1, le=1)
    zoom: float = Field(ge=0, le=1)
    x: float = Field(ge=0, le=1, description="Where the landmark is in that image, normalised (0..1 from the left).")
    y: float = Field(ge=0, le=1, description="Normalised, 0..1 from the top.")


class CalibrationIn(BaseModel):
    points: list[CalibrationPointIn] = Field(
        max_length=200,
        description="Each landmark clicked on the images seen at two positions or more, at two zooms or more.",
    )
    save: bool = Field(False, description="False: fit and show the residuals; true: store as the next calibration.")
    comment: str = Field("", max_length=2000)


class CalibrationPointOut(BaseModel):
    landmark: str
    pan: float
    tilt: float
    zoom: float
    x: float
    y: float
    residual_px: float


class OpticsOut(BaseModel):
    hfov_wide_deg: float
    hfov_tele_deg: float
    zoom_exponent: float
    pan_offset_deg: float
    tilt_offset_deg: float
    pan_direction: int
    tilt_direction: int
    pan_range_deg: float
    tilt_range_deg: float


class CalibrationOut(BaseModel):
    camera_id: str
    # None: not stored (a fit shown, or the camera's defaults when it was never calibrated).
    version: int | None
    calibrated: bool
    optics: OpticsOut
    points: list[CalibrationPointOut]
    rms_px: float
    max_px: float
    image_width: int
    image_height: int
    fitted: list[str]
    author: str
    created: str | None
    comment: str
    # Why this fit may not be stored ("" when it may).
    problem: str


class StatementIn(BaseModel):
    text: str = Field(
        min_length=10,
        max_length=2000,
        description="What the supervisor checked, e.g. 'At every preset, no window, garden or entrance of a home "
        "is in view.'",
    )


class StatementOut(BaseModel):
    camera_id: str
    supervisor: str
    text: str
    signed: str | None
    statement: str
    signature: str
    public_key_pem: str
    verified: bool
    withdrawn: str | None = None
    withdrawn_by: str = ""


class CommissioningOut(BaseModel):
    camera_id: str
    commissionable: bool
    approved_version: int | None
    statement: StatementOut | None
    reason: str


class ReportIn(BaseModel):
    description: str = Field(min_length=3, max_length=4000)
    snapshot_ref: str = Field(
        "", max_length=500, description="What was on screen: e.g. a segment id and time, or the live time."
    )


class CloseIn(BaseModel):
    resolution: str = Field(min_length=3, max_length=4000)


class ReportOut(BaseModel):
    id: str
    camera_id: str
    reporter: str
    description: str
    snapshot_ref: str
    mask_version: str
    reported: str | None
    status: str
    closed_by: str
    closed: str | None
    resolution: str


def _set_out(m: masking_pb2.MaskSet) -> MaskSetOut:
    return MaskSetOut(
        camera_id=m.camera_id,
        version=m.version,
        mask_version=m.mask_version,
        status=m.status,
        space=m.space,
        polygons=[PolygonOut(points=[(p.x, p.y) for p in poly.points], label=poly.label) for poly in m.polygons],
        author=m.author,
        created=iso_if_set(m.created_us),
        approver=m.approver,
        approved=iso_if_set(m.approved_us),
        superseded=iso_if_set(m.superseded_us),
        comment=m.comment,
        origin=m.origin,
        calibration_version=m.calibration_version or None,
    )


def _calibration_out(c: masking_pb2.PtzCalibration) -> CalibrationOut:
    o = c.optics
    return CalibrationOut(
        camera_id=c.camera_id,
        version=c.version or None,
        calibrated=c.has_calibration,
        optics=OpticsOut(
            hfov_wide_deg=o.hfov_wide_deg, hfov_tele_deg=o.hfov_tele_deg, zoom_exponent=o.zoom_exponent,
            pan_offset_deg=o.pan_offset_deg, tilt_offset_deg=o.tilt_offset_deg, pan_direction=o.pan_direction,
            tilt_direction=o.tilt_direction, pan_range_deg=o.pan_range_deg, tilt_range_deg=o.tilt_range_deg,
        ),
        points=[
            CalibrationPointOut(
                landmark=p.landmark, pan=p.pan, tilt=p.tilt, zoom=p.zoom, x=p.x, y=p.y, residual_px=p.residual_px
            )
            for p in c.points
        ],
        rms_px=c.rms_px,
        max_px=c.max_px,
        image_width=c.image_width,
        image_height=c.image_height,
        fitted=list(c.fitted),
        author=c.author,
        created=iso_if_set(c.created_us),
        comment=c.comment,
        problem=c.problem,
    )  # fmt: skip


def _report_out(r: masking_pb2.MaskErrorReport) -> ReportOut:
    return ReportOut(
        id=r.id,
        camera_id=r.camera_id,
        reporter=r.reporter,
        description=r.description,
        snapshot_ref=r.snapshot_ref,
        mask_version=r.mask_version,
        reported=iso_if_set(r.reported_us),
        status=r.status,
        closed_by=r.closed_by,
        closed=iso_if_set(r.closed_us),
        resolution=r.resolution,
    )


def _statement_out(s: masking_pb2.NoPrivateAreaStatement, b: Backends) -> StatementOut:
    return StatementOut(
        camera_id=s.camera_id,
        supervisor=s.supervisor,
        text=s.text,
        signed=iso_if_set(s.signed_us),
        statement=bytes(s.statement).decode(errors="replace"),
        signature=s.signature,
        public_key_pem=s.public_key_pem,
        verified=commissioning_gate.statement_verifies(s, b.signer.keyring()),
        withdrawn=iso_if_set(s.withdrawn_us),
        withdrawn_by=s.withdrawn_by,
    )


def _polygons(body: MaskSetIn) -> list[masking_pb2.MaskPolygon]:
    return [
        masking_pb2.MaskPolygon(points=[masking_pb2.MaskPoint(x=x, y=y) for x, y in p.points], label=p.label)
        for p in body.polygons
    ]


def _drawn_at(body: MaskSetIn) -> tuple[PtzPosition | None, bool]:
    if body.drawn_at is None:
        return None, False
    return PtzPosition(pan=body.drawn_at.pan, tilt=body.drawn_at.tilt, zoom=body.drawn_at.zoom), True


# -- PTZ calibration ---------------------------------------------------------------------------


@router.get("/cameras/{camera_id}/ptz-calibration", response_model=CalibrationOut)
async def get_calibration(
    camera_id: str,
    b: BackendsDep,
    principal: Principal = Depends(require("mask_admin", camera="camera_id")),
) -> CalibrationOut:
    """The camera's latest calibration (calibrated false: never calibrated, the defaults are shown)."""
    del principal
    async with rpc_errors("masking"):
        answer = await b.masking.GetPtzCalibration(
            masking_pb2.PtzCalibrationRef(camera_id=camera_id), timeout=RPC_TIMEOUT_S
        )
    return _calibration_out(answer)


@router.post("/cameras/{camera_id}/ptz-calibration", response_model=CalibrationOut)
async def calibrate(
    camera_id: str,
    body: CalibrationIn,
    b: BackendsDep,
    principal: Principal = Depends(require("mask_admin", camera="camera_id")),
) -> CalibrationOut:
    """Fit the PTZ camera's optics to the reference points and show each point's residual; with
    save, store the fit as the camera's next calibration (refused, 422, when it does not fit within
    1 % of the image width). Masks drawn from then on are drawn under it; the approved set keeps
    its own until a new one is approved."""
    target, details = f"camera:{camera_id}", {"points": len(body.points), "comment": body.comment}
    if body.save:
        await audit(principal, "mask.calibration.save", target, details=details)
    points = [masking_pb2.CalibrationPoint(**p.model_dump()) for p in body.points]
    # A fit masking refuses (422) is the save's own audit entry, outcome refused with the reason.
    async with rpc_errors("masking"):
        answer = await b.masking.CalibratePtz(
            masking_pb2.CalibratePtzRequest(
                camera_id=camera_id, points=points, save=body.save, actor=principal.username, comment=body.comment
            ),
            timeout=PREVIEW_TIMEOUT_S,
        )
    return _calibration_out(answer)


# -- mask sets ---------------------------------------------------------------------------------


@router.get("/cameras/{camera_id}/masks", response_model=list[MaskSetOut])
async def list_masks(
    camera_id: str,
    b: BackendsDep,
    principal: Principal = Depends(require("mask_admin", camera="camera_id")),
) -> list[MaskSetOut]:
    """Every version of the camera's mask set: drafts, the approved one, superseded and discarded ones."""
    del principal
    async with rpc_errors("masking"):
        answer = await b.masking.ListMaskSets(
            masking_pb2.ListMaskSetsRequest(camera_id=camera_id), timeout=RPC_TIMEOUT_S
        )
    return [_set_out(m) for m in answer.sets]


@router.get("/cameras/{camera_id}/masks/{version}", response_model=MaskSetOut)
async def get_mask(
    camera_id: str,
    version: str,
    b: BackendsDep,
    principal: Principal = Depends(require("mask_admin", camera="camera_id")),
) -> MaskSetOut:
    """One version (a number, or "current" for the approved set)."""
    del principal
    async with rpc_errors("masking"):
        answer = await b.masking.GetMaskSet(
            masking_pb2.MaskSetRef(camera_id=camera_id, version=_version(version, allow_current=True)),
            timeout=RPC_TIMEOUT_S,
        )
    return _set_out(answer)


def _version(value: str, allow_current: bool = False) -> int:
    if allow_current and value == "current":
        return 0
    # isdigit() alone takes "²" and other Unicode digits, which int() refuses.
    if not (value.isascii() and value.isdigit() and len(value) <= 9) or int(value) < 1:
        raise HTTPException(422, f"version {value!r} is not a mask set version (1, 2, ...)")
    return int(value)


@router.post("/cameras/{camera_id}/masks", response_model=MaskSetOut, status_code=201)
async def create_mask(
    camera_id: str,
    body: MaskSetIn,
    b: BackendsDep,
    principal: Principal = Depends(require("mask_admin", camera="camera_id")),
) -> MaskSetOut:
    """A new draft version; it applies to nothing until another mask administrator approves it."""
    await audit(principal, "mask.draft.create", f"camera:{camera_id}", details=body.model_dump(mode="json"))
    drawn_at, has = _drawn_at(body)
    async with rpc_errors("masking"):
        answer = await b.masking.CreateMaskSet(
            masking_pb2.CreateMaskSetRequest(
                camera_id=camera_id, space=body.space, polygons=_polygons(body), comment=body.comment,
                drawn_at=drawn_at, has_drawn_at=has, actor=principal.username,
            ),
            timeout=RPC_TIMEOUT_S,
        )  # fmt: skip
    return _set_out(answer)


@router.put("/cameras/{camera_id}/masks/{version}", response_model=MaskSetOut)
async def update_mask(
    camera_id: str,
    version: str,
    body: MaskSetIn,
    b: BackendsDep,
    principal: Principal = Depends(require("mask_admin", camera="camera_id")),
) -> MaskSetOut:
    """Change a draft (only drafts change); its last editor counts as its author for four-eyes."""
    number = _version(version)
    await audit(
        principal,
        "mask.draft.update",
        f"camera:{camera_id}",
        details={"version": number} | body.model_dump(mode="json"),
    )
    drawn_at, has = _drawn_at(body)
    async with rpc_errors("masking"):
        answer = await b.masking.UpdateDraft(
            masking_pb2.UpdateDraftRequest(
                camera_id=camera_id, version=number, space=body.space, polygons=_polygons(body),
                comment=body.comment, drawn_at=drawn_at, has_drawn_at=has, actor=principal.username,
            ),
            timeout=RPC_TIMEOUT_S,
        )  # fmt: skip
    return _set_out(answer)


@router.delete("/cameras/{camera_id}/masks/{version}", response_model=MaskSetOut)
async def discard_mask(
    camera_id: str,
    version: str,
    b: BackendsDep,
    principal: Principal = Depends(require("mask_admin", camera="camera_id")),
) -> MaskSetOut:
    """Discard a draft (kept, marked discarded, for the record)."""
    number = _version(version)
    await audit(principal, "mask.draft.discard", f"camera:{camera_id}", details={"version": number})
    async with rpc_errors("masking"):
        answer = await b.masking.DiscardDraft(
            masking_pb2.MaskSetRef(camera_id=camera_id, version=number, actor=principal.username),
            timeout=RPC_TIMEOUT_S,
        )
    return _set_out(answer)


@router.post("/cameras/{camera_id}/masks/{version}/approve", response_model=MaskSetOut)
async def approve_mask(
    camera_id: str,
    version: str,
    b: BackendsDep,
    principal: Principal = Depends(require("mask_admin", camera="camera_id")),
) -> MaskSetOut:
    """Approve a draft (four-eyes: not its author). It is burned into the stream from the next keyframe on."""
    number = _version(version)
    await audit(principal, "mask.approve", f"camera:{camera_id}", details={"version": number})
    async with rpc_errors("masking"):
        answer = await b.masking.ApproveMaskSet(
            masking_pb2.MaskSetRef(camera_id=camera_id, version=number, actor=principal.username),
            timeout=RPC_TIMEOUT_S,
        )
    return _set_out(answer)


# -- commissioning -----------------------------------------------------------------------------


async def commissioning(b: Backends, camera_id: str) -> masking_pb2.CommissioningStatus:
    async with rpc_errors("masking"):
        return await b.masking.GetCommissioningStatus(
            masking_pb2.CommissioningStatusRequest(camera_id=camera_id), timeout=RPC_TIMEOUT_S
        )


@router.get("/cameras/{camera_id}/commissioning", response_model=CommissioningOut)
async def commissioning_status(
    camera_id: str, b: BackendsDep, principal: Principal = Depends(authenticate)
) -> CommissioningOut:
    """Whether the camera may go into service (approved mask set, or signed statement), and why not."""
    await check_camera(principal, ("mask_admin", "config"), camera_id)
    status = await commissioning(b, camera_id)
    return CommissioningOut(
        camera_id=camera_id,
        commissionable=status.commissionable,
        approved_version=status.approved_version or None,
        statement=_statement_out(status.statement, b) if status.has_statement else None,
        reason=status.reason,
    )


@router.post("/cameras/{camera_id}/no-private-area-statement", response_model=StatementOut, status_code=201)
async def sign_statement(
    camera_id: str,
    body: StatementIn,
    b: BackendsDep,
    principal: Principal = Depends(require("mask_admin", camera="camera_id")),
) -> StatementOut:
    """A supervisor states, signed, that no private area is in the camera's view (instead of masks)."""
    if principal.role != "supervisor":
        raise HTTPException(403, "only a supervisor may state that no private area is in view")
    await b.camera(camera_id)
    signed_us = to_us(b.clock.now())
    content = {"camera_id": camera_id, "supervisor": principal.username, "text": body.text, "signed_us": signed_us}
    data = json.dumps(content, sort_keys=True, separators=(",", ":")).encode()
    await audit(principal, "mask.statement.sign", f"camera:{camera_id}", details={"text": body.text})
    statement = masking_pb2.NoPrivateAreaStatement(
        camera_id=camera_id, supervisor=principal.username, text=body.text, signed_us=signed_us, statement=data,
        signature=b.signer.sign(data), public_key_pem=b.signer.public_pem(),
    )  # fmt: skip
    async with rpc_errors("masking"):
        answer = await b.masking.RecordStatement(
            masking_pb2.RecordStatementRequest(
                statement=statement, actor=principal.username, actor_role=principal.role
            ),
            timeout=RPC_TIMEOUT_S,
        )
    return _statement_out(answer, b)


@router.delete("/cameras/{camera_id}/no-private-area-statement", response_model=StatementOut)
async def withdraw_statement(
    camera_id: str,
    b: BackendsDep,
    principal: Principal = Depends(require("mask_admin", camera="camera_id")),
) -> StatementOut:
    """Withdraw the statement in force: the camera is burned in again from its next keyframe (whole
    image masked until an approved mask set or a new statement)."""
    await b.camera(camera_id)
    await audit(principal, "mask.statement.withdraw", f"camera:{camera_id}")
    async with rpc_errors("masking"):
        answer = await b.masking.WithdrawStatement(
            masking_pb2.WithdrawStatementRequest(camera_id=camera_id, actor=principal.username),
            timeout=RPC_TIMEOUT_S,
        )
    return _statement_out(answer, b)


# -- mask-error reports ------------------------------------------------------------------------


async def _watcher(camera_id: str, principal: Principal = Depends(authenticate)) -> Principal:
    await check_camera(principal, ("live", "playback"), camera_id)
    return principal


@router.post("/cameras/{camera_id}/mask-errors", response_model=ReportOut, status_code=201)
async def report_mask_error(
    camera_id: str, body: ReportIn, b: BackendsDep, principal: Principal = Depends(_watcher)
) -> ReportOut:
    """Report a mask that hides too little (or too much); it stays open until a mask administrator closes it."""
    await audit(
        principal, "mask.error.report", f"camera:{camera_id}",
        details={"description": body.description, "snapshot_ref": body.snapshot_ref},
    )  # fmt: skip
    async with rpc_errors("masking"):
        answer = await b.masking.ReportMaskError(
            masking_pb2.ReportMaskErrorRequest(
                camera_id=camera_id, description=body.description, snapshot_ref=body.snapshot_ref,
                actor=principal.username,
            ),
            timeout=RPC_TIMEOUT_S,
        )  # fmt: skip
    return _report_out(answer)


@router.get("/cameras/{camera_id}/mask-errors", response_model=list[ReportOut])
async def list_mask_errors(
    camera_id: str,
    b: BackendsDep,
    status: Literal["", "open", "closed"] = Query(""),
    principal: Principal = Depends(require("mask_admin", camera="camera_id")),
) -> list[ReportOut]:
    del principal
    async with rpc_errors("masking"):
        answer = await b.masking.ListMaskErrors(
            masking_pb2.ListMaskErrorsRequest(camera_id=camera_id, status=status), timeout=RPC_TIMEOUT_S
        )
    return [_report_out(r) for r in answer.reports]


@router.post("/cameras/{camera_id}/mask-errors/{report_id}/close", response_model=ReportOut)
async def close_mask_error(
    camera_id: str,
    report_id: str,
    body: CloseIn,
    b: BackendsDep,
    principal: Principal = Depends(require("mask_admin", camera="camera_id")),
) -> ReportOut:
    async with rpc_errors("masking"):
        reports = await b.masking.ListMaskErrors(
            masking_pb2.ListMaskErrorsRequest(camera_id=camera_id), timeout=RPC_TIMEOUT_S
        )
    if report_id not in {r.id for r in reports.reports}:
        raise HTTPException(404, f"camera {camera_id} has no mask-error report {report_id!r}")
    await audit(
        principal,
        "mask.error.close",
        f"camera:{camera_id}",
        details={"report": report_id, "resolution": body.resolution},
    )
    async with rpc_errors("masking"):
        answer = await b.masking.CloseMaskError(
            masking_pb2.CloseMaskErrorRequest(id=report_id, resolution=body.resolution, actor=principal.username),
            timeout=RPC_TIMEOUT_S,
        )
    return _report_out(answer)


# -- preview -----------------------------------------------------------------------------------


@router.get("/cameras/{camera_id}/masks-preview", response_class=Response)
async def preview(
    camera_id: str,
    b: BackendsDep,
    version: str = Query(
        "current",
        description='"current" (the set applied now, as the frames get it) or a version number: that set as drawn '
        "(a PTZ set without a calibration through the default optics, so that it can be seen and calibrated).",
    ),
    preset: str = Query("", max_length=100, description="PTZ cameras: the view of this preset, as last seen."),
    max_width: int = Query(1280, ge=64, le=3840),
    principal: Principal = Depends(require("mask_admin", camera="camera_id")),
) -> Response:
    """A masked still (JPEG) for the mask editor: the latest keyframe, with the set applied now or a draft."""
    number = _version(version, allow_current=True)
    await audit(principal, "mask.preview", f"camera:{camera_id}", details={"version": version, "preset": preset})
    async with rpc_errors("masking"):
        image = await b.masking.Preview(
            masking_pb2.PreviewRequest(
                camera_id=camera_id, version=number, preset=preset, max_width=max_width, actor=principal.username
            ),
            timeout=PREVIEW_TIMEOUT_S,
        )
    headers = {
        "Cache-Control": "no-store",
        "X-Mask-Version": image.mask_version,
        "X-Capture-Time": iso_if_set(image.capture_time_us) or "",
        "X-Fully-Masked": "true" if image.fully_masked else "false",
    }
    if image.reason:
        headers["X-Fully-Masked-Reason"] = image.reason
    if image.has_ptz:
        headers["X-Ptz-Position"] = f"{image.ptz.pan:.4f},{image.ptz.tilt:.4f},{image.ptz.zoom:.4f}"
    return Response(image.jpeg, media_type="image/jpeg", headers=headers)
