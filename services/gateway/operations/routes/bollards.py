"""Pedestrian-zone bollards: registry (administrators), commands (operators), intercom calls, statistics.

- Registering or changing a bollard needs "config" on its camera's groups (and on the former
  camera's when it moves); the relay's URLs are write-only secrets, shown without credentials.
- Opening or closing needs "live" on the bollard's camera, a reason, optionally the vehicle's plate;
  the command is audited before the controller is called, and recorded whatever its outcome.
- An intercom reports a call with the bollard's own token (header X-Intercom-Token, no session):
  the call is stored and pops the camera up on the consoles allowed to watch it.
- The registry, calls and daily statistics are shown to those who may watch or configure the
  bollard's camera, and to auditors.
"""

import asyncio
from datetime import date, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, field_validator

from services.common.timefmt import iso
from services.gateway.backends import Backends, BackendsDep
from services.gateway.identity.security import Principal, audit, check_camera, record, refuse
from services.gateway.operations import bollards, notifications
from services.gateway.operations.access import (
    groups_by_camera,
    require_any,
    sees_camera,
)
from services.gateway.operations.bollard_drivers import DriverError
from services.gateway.operations.fields import MAX_ID, line
from services.gateway.operations.models import Bollard, BollardCall, BollardCommand
from services.gateway.video.timerange import checked_us, parse_instant

router = APIRouter(prefix="/api/v1/bollards", tags=["bollards"])
BollardId = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
CallId = Annotated[int, Path(ge=1, le=MAX_ID)]
PLATE = r"^[A-Za-z0-9][A-Za-z0-9 -]{0,14}[A-Za-z0-9]$"
MAX_STATS_DAYS = 366
VIEWERS = ("live", "config")
# One command at a time per bollard in this process: two operators racing open/close get a clear order.
_LOCKS: dict[str, asyncio.Lock] = {}


class HttpIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    open_url: AnyHttpUrl = Field(description="Called to open; may carry credentials (stored encrypted)")
    close_url: AnyHttpUrl
    method: Literal["POST", "PUT", "GET"] = "POST"

    @field_validator("open_url", "close_url")
    @classmethod
    def _short(cls, value: AnyHttpUrl) -> AnyHttpUrl:
        if len(str(value)) > 2000:
            raise ValueError("URL longer than 2000 characters")
        return value


class BollardIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    name: line(128)  # type: ignore[valid-type]
    location: line(256, 0) = ""  # type: ignore[valid-type]
    camera_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    driver: Literal["simulated", "http"]
    http: HttpIn | None = None


class BollardPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: line(128) | None = None  # type: ignore[valid-type]
    location: line(256, 0) | None = None  # type: ignore[valid-type]
    camera_id: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    driver: Literal["simulated", "http"] | None = None
    http: HttpIn | None = None
    active: bool | None = None


class CommandIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: line(500, 3)  # type: ignore[valid-type]
    plate: str | None = Field(None, pattern=PLATE, description="Vehicle registration, when one goes through")


class HttpOut(BaseModel):
    method: str
    open_url: str
    close_url: str


class BollardOut(BaseModel):
    id: str
    name: str
    location: str
    camera_id: str
    driver: str
    http: HttpOut | None
    state: str
    state_since: str | None
    active: bool
    created_by: str
    created: str


class RegisteredOut(BollardOut):
    intercom_token: str = Field(description="Shown once: configure it in the bollard's intercom")


class TokenOut(BaseModel):
    bollard_id: str
    intercom_token: str


class CommandOut(BaseModel):
    id: int
    bollard_id: str
    command: str
    reason: str
    plate: str
    actor: str
    time: str
    outcome: str
    error: str
    state: str


class CallOut(BaseModel):
    id: int
    bollard_id: str
    camera_id: str
    time: str
    answered_by: str
    answered: str | None


class DayStatsOut(BaseModel):
    day: str
    bollard_id: str
    opens: int
    closes: int
    failed: int
    with_plate: int
    calls: int
    calls_unanswered: int


class StatsOut(BaseModel):
    first_day: str
    last_day: str
    days: list[DayStatsOut]
    totals: dict[str, int]


def out(b: Backends, row: Bollard) -> BollardOut:
    urls = bollards.http_urls(row, b.box)
    return BollardOut(
        id=row.id,
        name=row.name,
        location=row.location,
        camera_id=row.camera_id,
        driver=row.driver,
        http=HttpOut(method=row.http_method, open_url=urls[0], close_url=urls[1]) if urls else None,
        state=row.state,
        state_since=iso(row.state_us),
        active=row.active,
        created_by=row.created_by,
        created=iso(row.created_us) or "",
    )


def command_out(c: BollardCommand, state: str) -> CommandOut:
    assert c.id is not None
    return CommandOut(
        id=c.id,
        bollard_id=c.bollard_id,
        command=c.command,
        reason=c.reason,
        plate=c.plate,
        actor=c.actor,
        time=iso(c.time_us) or "",
        outcome=c.outcome,
        error=c.error,
        state=state,
    )


def call_out(c: BollardCall) -> CallOut:
    assert c.id is not None
    return CallOut(
        id=c.id,
        bollard_id=c.bollard_id,
        camera_id=c.camera_id,
        time=iso(c.time_us) or "",
        answered_by=c.answered_by,
        answered=iso(c.answered_us),
    )


async def _bollard(b: Backends, bollard_id: str) -> Bollard:
    return await asyncio.to_thread(bollards.get, b.engine, bollard_id)


def _http_error(exc: bollards.BollardError) -> HTTPException:
    return HTTPException(exc.status, exc.message)


def _unknown(bollard_id: str) -> HTTPException:
    """A bollard whose camera the caller may not see answers as an unknown one (security.check_camera)."""
    return _http_error(bollards.unknown_bollard(bollard_id))


def _http(body: HttpIn | None) -> bollards.HttpConfig | None:
    if body is None:
        return None
    return bollards.HttpConfig(open_url=str(body.open_url), close_url=str(body.close_url), method=body.method)


async def _visible_ids(principal: Principal, rows: list[Bollard]) -> set[str]:
    if principal.may("audit"):
        return {r.id for r in rows}
    groups = await groups_by_camera(principal)
    return {r.id for r in rows if sees_camera(principal, VIEWERS, r.camera_id, groups)}


# -- registry ----------------------------------------------------------------------------------


@router.get("", response_model=list[BollardOut])
async def list_bollards(
    b: BackendsDep, principal: Principal = Depends(require_any("live", "config", "audit"))
) -> list[BollardOut]:
    rows = await asyncio.to_thread(bollards.all_bollards, b.engine)
    visible = await _visible_ids(principal, rows)
    return [out(b, r) for r in rows if r.id in visible]


@router.post("", response_model=RegisteredOut, status_code=201)
async def register(
    body: BollardIn, b: BackendsDep, principal: Principal = Depends(require_any("config"))
) -> RegisteredOut:
    """Register a bollard; the answer carries its intercom token, shown this once."""
    if body.driver == "http" and body.http is None:
        raise HTTPException(422, "the http driver needs the relay's URLs (http.open_url, http.close_url)")
    if body.driver == "simulated" and body.http is not None:
        raise HTTPException(422, "http settings only apply to the http driver")
    await check_camera(principal, "config", body.camera_id)
    await audit(
        principal,
        "bollard.register",
        f"bollard:{body.id}",
        details={"camera_id": body.camera_id, "driver": body.driver, "name": body.name},
    )
    new = bollards.NewBollard(
        id=body.id,
        name=body.name,
        location=body.location,
        camera_id=body.camera_id,
        driver=body.driver,
        http=_http(body.http),
    )
    row, token = await asyncio.to_thread(bollards.create, b.engine, b.clock, b.box, new, principal.username)
    return RegisteredOut(**out(b, row).model_dump(), intercom_token=token)


@router.patch("/{bollard_id}", response_model=BollardOut)
async def change(
    bollard_id: BollardId,
    body: BollardPatch,
    b: BackendsDep,
    principal: Principal = Depends(require_any("config")),
) -> BollardOut:
    row = await _bollard(b, bollard_id)
    await check_camera(principal, "config", row.camera_id, hidden=_unknown(bollard_id))  # before telling anything
    given = body.model_dump(exclude_unset=True)
    cleared = sorted(
        k for k in ("name", "location", "camera_id", "driver", "active") if k in given and given[k] is None
    )
    if cleared:
        raise HTTPException(422, f"{', '.join(cleared)} cannot be null")
    driver = body.driver or row.driver
    if driver == "simulated" and body.http is not None:
        raise HTTPException(422, "http settings only apply to the http driver")
    if driver == "http" and body.http is None and row.open_url_sealed is None:
        raise HTTPException(422, "the http driver needs the relay's URLs (http.open_url, http.close_url)")
    if body.camera_id and body.camera_id != row.camera_id:
        await check_camera(principal, "config", body.camera_id)
    await audit(principal, "bollard.update", f"bollard:{bollard_id}", details={"changes": sorted(given)})
    # A simulated bollard keeps no relay URLs; an http one keeps its URLs unless new ones are given.
    set_http = driver == "simulated" or body.http is not None
    row = await asyncio.to_thread(
        bollards.update,
        b.engine,
        b.clock,
        b.box,
        bollard_id,
        fields={k: v for k, v in given.items() if k != "http"},
        http=_http(body.http),
        set_http=set_http,
    )
    return out(b, row)


@router.post("/{bollard_id}/intercom-token", response_model=TokenOut)
async def renew_intercom_token(
    bollard_id: BollardId, b: BackendsDep, principal: Principal = Depends(require_any("config"))
) -> TokenOut:
    """A new token for the bollard's intercom (the old one stops working at once)."""
    row = await _bollard(b, bollard_id)
    await check_camera(principal, "config", row.camera_id, hidden=_unknown(bollard_id))
    await audit(principal, "bollard.intercom_token", f"bollard:{bollard_id}")
    token = await asyncio.to_thread(bollards.new_intercom_token, b.engine, b.clock, bollard_id)
    return TokenOut(bollard_id=bollard_id, intercom_token=token)


# -- statistics and calls (before /{bollard_id} routes that would swallow them) ------------------


@router.get("/stats", response_model=StatsOut)
async def stats(
    b: BackendsDep,
    start: date = Query(description="First day (Europe/Paris), e.g. 2026-11-01"),
    end: date = Query(description="Last day, included"),
    principal: Principal = Depends(require_any("live", "config", "audit")),
) -> StatsOut:
    """Per day and bollard: openings, closings, failed commands, commands with a plate, intercom calls."""
    if end < start:
        raise HTTPException(422, "end must not be before start")
    if (end - start).days >= MAX_STATS_DAYS:
        raise HTTPException(422, f"at most {MAX_STATS_DAYS} days at once")
    if start.year < 2000 or end.year >= 2100:
        raise HTTPException(422, "days must be between 2000 and 2099")
    rows = await asyncio.to_thread(bollards.all_bollards, b.engine)
    visible = await _visible_ids(principal, rows)
    days = await asyncio.to_thread(bollards.daily_stats, b.engine, start, end, visible)
    return StatsOut(
        first_day=start.isoformat(),
        last_day=end.isoformat(),
        days=[DayStatsOut(**d.__dict__) for d in days],
        totals=bollards.totals(days),
    )


@router.get("/calls", response_model=list[CallOut])
async def list_calls(
    b: BackendsDep,
    start: str | None = Query(None, description="ISO 8601 with zone; default: 24 hours before end"),
    end: str | None = Query(None, description="ISO 8601 with zone; default: now"),
    unanswered: bool = Query(False, description="only calls nobody took yet"),
    limit: int = Query(200, ge=1, le=1000),
    principal: Principal = Depends(require_any("live", "config", "audit")),
) -> list[CallOut]:
    now = b.clock.now()
    end_at = parse_instant("end", end) if end else now
    start_at = parse_instant("start", start) if start else end_at - timedelta(hours=24)
    start_us, end_us = checked_us("start", start_at), checked_us("end", end_at)
    if start_us >= end_us:
        raise HTTPException(422, "start must be before end")
    rows = await asyncio.to_thread(bollards.all_bollards, b.engine)
    visible = await _visible_ids(principal, rows)
    found = await asyncio.to_thread(
        bollards.calls, b.engine, start_us=start_us, end_us=end_us, unanswered_only=unanswered, limit=limit
    )
    return [call_out(c) for c in found if c.bollard_id in visible]


@router.post("/calls/{call_id}/answer", response_model=CallOut)
async def answer_call(
    call_id: CallId,
    b: BackendsDep,
    principal: Principal = Depends(require_any("live", city_staff=True)),
) -> CallOut:
    """Take an intercom call (the other consoles see it is taken)."""
    call = await asyncio.to_thread(bollards.get_call, b.engine, call_id)
    await check_camera(principal, "live", call.camera_id, hidden=_http_error(bollards.unknown_call(call_id)))
    if call.answered_us is not None:
        raise HTTPException(409, f"call {call_id} was already taken by {call.answered_by}")
    await audit(principal, "bollard.call_answer", f"bollard:{call.bollard_id}", details={"call": call_id})
    call = await asyncio.to_thread(bollards.answer_call, b.engine, b.clock, call_id, principal.username)
    return call_out(call)


# -- one bollard -------------------------------------------------------------------------------


@router.get("/{bollard_id}", response_model=BollardOut)
async def one(
    bollard_id: BollardId,
    b: BackendsDep,
    principal: Principal = Depends(require_any("live", "config", "audit")),
) -> BollardOut:
    row = await _bollard(b, bollard_id)
    if bollard_id not in await _visible_ids(principal, [row]):
        reason = "your habilitation does not cover this bollard's camera"
        await refuse(principal, "live", f"bollard:{bollard_id}", reason, answer=_unknown(bollard_id))
    return out(b, row)


@router.get("/{bollard_id}/commands", response_model=list[CommandOut])
async def list_commands(
    bollard_id: BollardId,
    b: BackendsDep,
    start: str | None = Query(None, description="ISO 8601 with zone; default: 24 hours before end"),
    end: str | None = Query(None, description="ISO 8601 with zone; default: now"),
    limit: int = Query(200, ge=1, le=1000),
    principal: Principal = Depends(require_any("live", "config", "audit")),
) -> list[CommandOut]:
    row = await _bollard(b, bollard_id)
    if bollard_id not in await _visible_ids(principal, [row]):
        reason = "your habilitation does not cover this bollard's camera"
        await refuse(principal, "live", f"bollard:{bollard_id}", reason, answer=_unknown(bollard_id))
    end_at = parse_instant("end", end) if end else b.clock.now()
    start_at = parse_instant("start", start) if start else end_at - timedelta(hours=24)
    start_us, end_us = checked_us("start", start_at), checked_us("end", end_at)
    if start_us >= end_us:
        raise HTTPException(422, "start must be before end")
    await audit(principal, "bollard.consult", f"bollard:{bollard_id}")
    found = await asyncio.to_thread(
        bollards.commands, b.engine, bollard_id=bollard_id, start_us=start_us, end_us=end_us, limit=limit
    )
    return [command_out(c, "") for c in found]


async def _command(principal: Principal, b: Backends, bollard_id: str, command: str, body: CommandIn) -> CommandOut:
    row = await _bollard(b, bollard_id)
    if not row.active:
        raise HTTPException(409, f"bollard {bollard_id} is out of service")
    await check_camera(principal, "live", row.camera_id, hidden=_unknown(bollard_id))
    plate = (body.plate or "").upper()
    async with _LOCKS.setdefault(bollard_id, asyncio.Lock()):
        driver = bollards.driver_for(row, b.box, b.settings)
        await audit(
            principal,
            f"bollard.{command}",
            f"bollard:{bollard_id}",
            justification=body.reason,
            details={"camera_id": row.camera_id, "plate": plate, "driver": row.driver},
        )
        error: str | None = None
        try:
            await driver.send(bollard_id, command)  # type: ignore[arg-type]
        except DriverError as exc:
            error = str(exc)
        entry = await asyncio.to_thread(
            bollards.record_command,
            b.engine,
            b.clock,
            row,
            command,  # type: ignore[arg-type]
            reason=body.reason,
            plate=plate,
            actor=principal.username,
            role=principal.role,
            error=error,
        )
    if error is not None:
        # The command's one audit entry takes this answer as its outcome: failed, with the reason.
        raise HTTPException(502, f"bollard {bollard_id} did not {command}: {error}")
    return command_out(entry, "open" if command == "open" else "closed")


@router.post("/{bollard_id}/open", response_model=CommandOut)
async def open_bollard(
    bollard_id: BollardId,
    body: CommandIn,
    b: BackendsDep,
    principal: Principal = Depends(require_any("live", city_staff=True)),
) -> CommandOut:
    """Lower the bollard (let a vehicle through): a reason is required, the plate when there is one."""
    return await _command(principal, b, bollard_id, "open", body)


@router.post("/{bollard_id}/close", response_model=CommandOut)
async def close_bollard(
    bollard_id: BollardId,
    body: CommandIn,
    b: BackendsDep,
    principal: Principal = Depends(require_any("live", city_staff=True)),
) -> CommandOut:
    return await _command(principal, b, bollard_id, "close", body)


# -- the intercom --------------------------------------------------------------------------------


async def intercom(
    request: Request,
    bollard_id: BollardId,
    x_intercom_token: str | None = Header(None, max_length=200, description="The bollard's intercom token"),
) -> Bollard:
    """The bollard whose intercom presents its token; 401 otherwise (and the attempt is audited)."""
    b: Backends = request.app.state.backends
    row = None
    if x_intercom_token:
        row = await asyncio.to_thread(bollards.by_intercom_token, b.engine, bollard_id, x_intercom_token)
    if row is None:
        try:
            await record(
                b,
                actor=f"intercom:{bollard_id}",
                role="",
                origin_ip=request.client.host if request.client else "",
                action="bollard.call.refused",
                target=f"bollard:{bollard_id}",
                outcome="refused",
                details={"reason": "missing or wrong intercom token"},
            )
        except HTTPException:
            pass
        raise HTTPException(401, "a valid intercom token is required (header X-Intercom-Token)")
    return row


@router.post("/{bollard_id}/calls", response_model=CallOut, status_code=201)
async def intercom_call(b: BackendsDep, row: Bollard = Depends(intercom)) -> CallOut:
    """The bollard's intercom reports a call: stored, and its camera pops up on operators' consoles."""
    call = await asyncio.to_thread(bollards.record_call, b.engine, b.clock, row)
    try:
        groups = list((await b.camera(row.camera_id)).groups)
    except HTTPException:
        groups = []  # ingest away: only consoles habilitated for every camera get the pop-up
    await notifications.publish(
        b,
        "bollard.call",
        row.camera_id,
        groups,
        {
            "call_id": call.id,
            "bollard_id": row.id,
            "bollard_name": row.name,
            "location": row.location,
            "live_url": f"/api/v1/cameras/{row.camera_id}/live",
        },
    )
    return call_out(call)
