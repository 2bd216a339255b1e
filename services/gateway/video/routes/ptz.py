"""PTZ control through the gateway: commands, the control session, reservations, presets, tours.

Every command carries the caller's PTZ priority (per role, or the user's own; for federated
users, the priority the city configured for the partner). The current holder is visible to all
who may steer the camera (who, priority, time left); a caller outranked by the holder gets 409
naming the holder. Reservations are for supervisors; an administrator ("config") releases any
session. Every PTZ action is audited before it is sent, and a refused one is audited as refused.
"""

from typing import Literal

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from services.common.pb.csu.v1 import ingest_pb2
from services.common.timefmt import iso
from services.gateway.backends import RPC_TIMEOUT_S, Backends, BackendsDep, rpc_errors
from services.gateway.identity.security import Principal, audit, require

router = APIRouter(prefix="/api/v1/cameras/{camera_id}/ptz", tags=["ptz"])


class Vector(BaseModel):
    pan: float = Field(0.0, ge=-1, le=1)
    tilt: float = Field(0.0, ge=-1, le=1)
    zoom: float = Field(0.0, ge=-1, le=1)


class MoveIn(BaseModel):
    kind: Literal["continuous", "absolute", "relative", "stop", "home", "preset"]
    pan: float = Field(0.0, ge=-2, le=2, description="Velocity, position or delta, by kind.")
    tilt: float = Field(0.0, ge=-2, le=2)
    zoom: float = Field(0.0, ge=-1, le=1)
    preset: str = ""


class ReserveIn(BaseModel):
    duration_s: float = Field(900.0, gt=0, description="Up to CSU_PTZ_RESERVATION_MAX_S.")


class PresetIn(BaseModel):
    position: Vector | None = Field(None, description="Empty: the camera's current position.")


class TourStep(BaseModel):
    preset: str
    dwell_s: float = Field(ge=1, le=3600)


class TourIn(BaseModel):
    steps: list[TourStep] = Field(min_length=1)


class SessionOut(BaseModel):
    holder: str
    priority: int
    reserved: bool
    time_left_s: float | None = Field(description="None while a guard tour runs (until stopped).")
    since: str
    tour: str


class PresetOut(BaseModel):
    name: str
    position: Vector


class TourOut(BaseModel):
    name: str
    steps: list[TourStep]


class PtzOut(BaseModel):
    camera_id: str
    driver: str
    driver_problem: str
    position: Vector | None
    position_read: str | None
    moving: bool
    session: SessionOut | None
    presets: list[PresetOut]
    tours: list[TourOut]
    you: str
    your_priority: int


def _actor(principal: Principal) -> ingest_pb2.PtzActor:
    user = f"{principal.partner}:{principal.username}" if principal.partner else principal.username
    return ingest_pb2.PtzActor(user=user, priority=principal.ptz_priority, role=principal.role)


def _out(state: ingest_pb2.PtzState, principal: Principal) -> PtzOut:
    session = None
    if state.has_session:
        s = state.session
        session = SessionOut(
            holder=s.holder,
            priority=s.priority,
            reserved=s.reserved,
            time_left_s=None if s.time_left_s < 0 else round(s.time_left_s, 1),
            since=iso(s.since_us),
            tour=s.tour,
        )
    p = state.position
    return PtzOut(
        camera_id=state.camera_id,
        driver=state.driver,
        driver_problem=state.driver_problem,
        position=Vector(pan=p.pan, tilt=p.tilt, zoom=p.zoom) if state.has_position else None,
        position_read=iso(p.read_time_us) if state.has_position else None,
        moving=state.moving,
        session=session,
        presets=[
            PresetOut(name=x.name, position=Vector(pan=x.position.pan, tilt=x.position.tilt, zoom=x.position.zoom))
            for x in state.presets
        ],
        tours=[
            TourOut(name=t.name, steps=[TourStep(preset=s.preset, dwell_s=s.dwell_s) for s in t.steps])
            for t in state.tours
        ],
        you=_actor(principal).user,
        your_priority=principal.ptz_priority,
    )


async def _call(principal: Principal, b: Backends, camera_id: str, action: str, method: str, request, details: dict):
    """Audit, call ingest; a refusal (409/403) is audited as refused, with the holder it names."""
    target = f"camera:{camera_id}"
    if action:
        await audit(principal, action, target, details=details)
    try:
        async with rpc_errors("ingest"):
            state = await getattr(b.ingest, method)(request, timeout=RPC_TIMEOUT_S)
    except HTTPException as exc:
        if action and exc.status_code in (403, 409):
            try:
                await audit(principal, f"{action}.refused", target, details=details | {"reason": exc.detail},
                            outcome="refused")  # fmt: skip
            except HTTPException:
                pass  # the refusal stands whether or not it could be recorded
        raise
    return _out(state, principal)


@router.get("", response_model=PtzOut)
async def ptz_state(
    camera_id: str, b: BackendsDep, principal: Principal = Depends(require("ptz", camera="camera_id"))
) -> PtzOut:
    """Position, who holds the control session (priority, time left), presets and tours."""
    request = ingest_pb2.PtzCameraRequest(camera_id=camera_id, actor=_actor(principal))
    return await _call(principal, b, camera_id, "", "PtzGetState", request, {})


@router.post("/move", response_model=PtzOut)
async def move(
    camera_id: str,
    body: MoveIn,
    b: BackendsDep,
    principal: Principal = Depends(require("ptz", camera="camera_id")),
) -> PtzOut:
    """Steer the camera; opens or refreshes your control session. 409 names the holder if outranked."""
    if body.kind == "preset" and not body.preset:
        raise HTTPException(422, "kind=preset needs the preset's name")
    request = ingest_pb2.PtzCommand(
        camera_id=camera_id,
        actor=_actor(principal),
        kind=body.kind,
        vector=ingest_pb2.PtzVector(pan=body.pan, tilt=body.tilt, zoom=body.zoom),
        preset=body.preset,
    )
    return await _call(principal, b, camera_id, "ptz.move", "PtzMove", request, body.model_dump())


@router.post("/reserve", response_model=PtzOut)
async def reserve(
    camera_id: str,
    body: ReserveIn,
    b: BackendsDep,
    principal: Principal = Depends(require("ptz", camera="camera_id")),
) -> PtzOut:
    """Supervisors: hold the camera (no idle timeout) for duration_s; lower priorities cannot take it."""
    if principal.role != "supervisor":
        raise HTTPException(403, "only supervisors may reserve a PTZ camera")
    request = ingest_pb2.PtzReserveRequest(camera_id=camera_id, actor=_actor(principal), duration_s=body.duration_s)
    return await _call(principal, b, camera_id, "ptz.reserve", "PtzReserve", request, body.model_dump())


@router.post("/release", response_model=PtzOut)
async def release(
    camera_id: str, b: BackendsDep, principal: Principal = Depends(require("ptz", camera="camera_id"))
) -> PtzOut:
    """End your own control session or reservation."""
    request = ingest_pb2.PtzReleaseRequest(camera_id=camera_id, actor=_actor(principal))
    return await _call(principal, b, camera_id, "ptz.release", "PtzRelease", request, {})


@router.post("/force-release", response_model=PtzOut)
async def force_release(
    camera_id: str,
    b: BackendsDep,
    principal: Principal = Depends(require("config", camera="camera_id")),
) -> PtzOut:
    """Administrators: end whoever's session or reservation holds the camera."""
    request = ingest_pb2.PtzReleaseRequest(camera_id=camera_id, actor=_actor(principal), force=True)
    return await _call(principal, b, camera_id, "ptz.force_release", "PtzRelease", request, {})


@router.put("/presets/{name}", response_model=PtzOut)
async def put_preset(
    camera_id: str,
    name: str,
    body: PresetIn,
    b: BackendsDep,
    principal: Principal = Depends(require("ptz", camera="camera_id")),
) -> PtzOut:
    request = ingest_pb2.PtzPresetRequest(camera_id=camera_id, actor=_actor(principal), name=name)
    if body.position is not None:
        request.position.CopyFrom(ingest_pb2.PtzVector(**body.position.model_dump()))
        request.has_position = True
    details = {"preset": name, "position": body.position.model_dump() if body.position else "current"}
    return await _call(principal, b, camera_id, "ptz.preset.put", "PtzSetPreset", request, details)


@router.delete("/presets/{name}", response_model=PtzOut)
async def delete_preset(
    camera_id: str,
    name: str,
    b: BackendsDep,
    principal: Principal = Depends(require("ptz", camera="camera_id")),
) -> PtzOut:
    request = ingest_pb2.PtzPresetRequest(camera_id=camera_id, actor=_actor(principal), name=name)
    return await _call(principal, b, camera_id, "ptz.preset.delete", "PtzDeletePreset", request, {"preset": name})


@router.put("/tours/{name}", response_model=PtzOut)
async def put_tour(
    camera_id: str,
    name: str,
    body: TourIn,
    b: BackendsDep,
    principal: Principal = Depends(require("ptz", camera="camera_id")),
) -> PtzOut:
    """A guard tour: presets visited in order, each held dwell_s seconds, round and round."""
    tour = ingest_pb2.PtzTour(
        name=name, steps=[ingest_pb2.PtzTourStep(preset=s.preset, dwell_s=s.dwell_s) for s in body.steps]
    )
    request = ingest_pb2.PtzTourRequest(camera_id=camera_id, actor=_actor(principal), tour=tour)
    return await _call(
        principal, b, camera_id, "ptz.tour.put", "PtzPutTour", request, {"tour": name} | body.model_dump()
    )


@router.delete("/tours/{name}", response_model=PtzOut)
async def delete_tour(
    camera_id: str,
    name: str,
    b: BackendsDep,
    principal: Principal = Depends(require("ptz", camera="camera_id")),
) -> PtzOut:
    request = ingest_pb2.PtzTourRequest(
        camera_id=camera_id, actor=_actor(principal), tour=ingest_pb2.PtzTour(name=name)
    )
    return await _call(principal, b, camera_id, "ptz.tour.delete", "PtzDeleteTour", request, {"tour": name})


@router.post("/tours/{name}/start", response_model=PtzOut)
async def start_tour(
    camera_id: str,
    name: str,
    b: BackendsDep,
    principal: Principal = Depends(require("ptz", camera="camera_id")),
) -> PtzOut:
    """Run the tour at the guard-tour priority: any operator who takes the camera stops it."""
    request = ingest_pb2.PtzTourRequest(
        camera_id=camera_id, actor=_actor(principal), tour=ingest_pb2.PtzTour(name=name)
    )
    return await _call(principal, b, camera_id, "ptz.tour.start", "PtzStartTour", request, {"tour": name})


@router.post("/tours/stop", response_model=PtzOut)
async def stop_tour(
    camera_id: str, b: BackendsDep, principal: Principal = Depends(require("ptz", camera="camera_id"))
) -> PtzOut:
    request = ingest_pb2.PtzCameraRequest(camera_id=camera_id, actor=_actor(principal))
    return await _call(principal, b, camera_id, "ptz.tour.stop", "PtzStopTour", request, {})
