"""Who is in the viewing room now: agents' shifts, visitors checked in and out at the door.

The agents are the room's own staff (those who watch: "live", city staff only, never a partner);
they record their own shift and check visitors in and out. Who is inside is shown to them, to
auditors and to administrators. Every entry and exit is audited before it is recorded.
"""

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path
from pydantic import BaseModel, ConfigDict, Field

from services.common.timefmt import iso
from services.gateway.backends import BackendsDep
from services.gateway.identity.security import Principal, audit
from services.gateway.operations import room, visitors
from services.gateway.operations.access import require_any
from services.gateway.operations.fields import MAX_ID
from services.gateway.operations.models import VisitorDeclaration

router = APIRouter(prefix="/api/v1/room", tags=["viewing room"])
AGENTS = ("live",)
PresenceId = Annotated[int, Path(ge=1, le=MAX_ID)]


class CheckInIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    declaration_id: int = Field(ge=1, le=MAX_ID, description="the visitor's declaration in the register")


class PresenceOut(BaseModel):
    id: int
    kind: str
    name: str
    organisation: str
    username: str
    declaration_id: int | None
    declaration: str
    entered: str
    entered_by: str
    exited: str | None
    exited_by: str


def out(row: room.RoomPresence, declaration: VisitorDeclaration | None = None) -> PresenceOut:
    assert row.id is not None
    return PresenceOut(
        id=row.id,
        kind=row.kind,
        name=declaration.name if declaration else row.username,
        organisation=declaration.organisation if declaration else "",
        username=row.username,
        declaration_id=row.declaration_id,
        declaration=visitors.reference(declaration) if declaration else "",
        entered=iso(row.entered_us) or "",
        entered_by=row.entered_by,
        exited=iso(row.exited_us),
        exited_by=row.exited_by,
    )


async def _do(call: object, *args: object) -> room.RoomPresence:
    return await asyncio.to_thread(call, *args)  # type: ignore[arg-type]


@router.get("/now", response_model=list[PresenceOut])
async def now(
    b: BackendsDep,
    principal: Principal = Depends(require_any(*AGENTS, "audit", "users", city_staff=True)),
) -> list[PresenceOut]:
    """Everyone inside the room now, first in first."""
    return [out(r, d) for r, d in await asyncio.to_thread(room.inside, b.engine)]


@router.post("/shift/start", response_model=PresenceOut, status_code=201)
async def start_shift(
    b: BackendsDep, principal: Principal = Depends(require_any(*AGENTS, city_staff=True))
) -> PresenceOut:
    """The calling agent enters the room at the start of their shift."""
    refusal = await asyncio.to_thread(room.shift_refusal, b.engine, principal.username, True)
    if refusal is not None:
        raise HTTPException(409, refusal)
    await audit(principal, "room.shift_start", "room", details={"agent": principal.username})
    return out(await _do(room.start_shift, b.engine, b.clock, principal.username))


@router.post("/shift/end", response_model=PresenceOut)
async def end_shift(
    b: BackendsDep, principal: Principal = Depends(require_any(*AGENTS, city_staff=True))
) -> PresenceOut:
    """The calling agent leaves the room at the end of their shift."""
    refusal = await asyncio.to_thread(room.shift_refusal, b.engine, principal.username, False)
    if refusal is not None:
        raise HTTPException(409, refusal)
    await audit(principal, "room.shift_end", "room", details={"agent": principal.username})
    return out(await _do(room.end_shift, b.engine, b.clock, principal.username))


@router.post("/visitors", response_model=PresenceOut, status_code=201)
async def check_in(
    body: CheckInIn,
    b: BackendsDep,
    principal: Principal = Depends(require_any(*AGENTS, city_staff=True)),
) -> PresenceOut:
    """Let a declared visitor in: their declaration must be validated by the prefecture and for now."""
    target = f"visitor:{body.declaration_id}"
    try:
        declaration = await asyncio.to_thread(room.admit, b.engine, b.clock, body.declaration_id, principal.username)
    except room.RoomError as exc:
        # Nothing is recorded, but the attempt is worth a line: an undeclared person at the door.
        await audit(principal, "room.check_in", target, outcome="refused", details={"reason": exc.message})
        raise HTTPException(exc.status, exc.message) from exc
    await audit(
        principal,
        "room.check_in",
        target,
        details={"declaration": visitors.reference(declaration), "name": declaration.name},
    )
    return out(await _do(room.check_in, b.engine, b.clock, declaration, principal.username), declaration)


@router.post("/presences/{presence_id}/exit", response_model=PresenceOut)
async def check_out(
    presence_id: PresenceId,
    b: BackendsDep,
    principal: Principal = Depends(require_any(*AGENTS, city_staff=True)),
) -> PresenceOut:
    """A visitor leaves the room (agents end their own shift instead)."""
    row = await _do(room.leaving, b.engine, presence_id)
    await audit(principal, "room.check_out", f"visitor:{row.declaration_id}", details={"presence": presence_id})
    left = await _do(room.check_out, b.engine, b.clock, presence_id, principal.username)
    declaration = await asyncio.to_thread(room.declaration_of, b.engine, left)
    return out(left, declaration)
