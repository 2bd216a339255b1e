"""The operator console: its pages and assets, what the signed-in user may do, and saved wall layouts.

Pages and assets are plain files from services/gateway/static (ES modules, CSS, vendored
libraries): no build step, nothing fetched from elsewhere at run time. Every page carries a strict
Content-Security-Policy (no inline script, same-origin connections only), so an injected string
can never run as code in an operator's browser.

The console decides what to show from GET /api/v1/console/me (the role's actions as the server
computes them, and which optional API modules this gateway serves); the API enforces every right
anyway. Layouts of the video wall are kept here, per user, and may be shared (supervisors and
managers) with everyone who watches; a layout never names to a user a camera they may not see.
"""

import asyncio
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import JSON, BigInteger, Column, UniqueConstraint
from sqlmodel import Field as SQLField
from sqlmodel import SQLModel, col, select

from services.common.clock import to_us
from services.common.db import session
from services.common.timefmt import iso
from services.gateway.backends import Backends, BackendsDep
from services.gateway.identity import accounts
from services.gateway.identity.roles import CAMERA_ACTIONS, ROLE_ACTIONS
from services.gateway.identity.security import Principal, audit, authenticate
from services.gateway.operations.access import groups_by_camera, require_any, sees_camera
from services.gateway.operations.fields import line
from services.gateway.page_headers import STATIC, page_headers

router = APIRouter(tags=["console"])
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
}
GRIDS = (1, 4, 9, 16)
MAX_LAYOUTS_PER_USER = 100
SHARERS = ("supervisor", "manager")
# Optional API modules (built by other parts of the platform): the console shows their screens
# only when this gateway serves them.
FEATURES = {
    "ptz": "/api/v1/cameras/{camera_id}/ptz",
    "playback": "/api/v1/cameras/{camera_id}/timeline",
    "camera_admin": "/api/v1/authorisations",
    "masks": "/api/v1/cameras/{camera_id}/masks",
    "redaction": "/api/v1/redactions",
    "requisitions": "/api/v1/requisitions",
    "register": "/api/v1/register",
    "citizen_requests": "/api/v1/citizen-requests",
    "kiosk": "/api/v1/kiosk",
    "bollards": "/api/v1/bollards",
    "alarms": "/api/v1/alarms",
    "journal": "/api/v1/journal",
    "visitors": "/api/v1/visitors",
    "compliance": "/api/v1/compliance/report",
    "users": "/api/v1/users",
    "audit": "/api/v1/audit",
    "partners": "/api/v1/partners",
}


def _page(request: Request, name: str) -> HTMLResponse:
    return HTMLResponse((STATIC / name).read_text(encoding="utf-8"), headers=page_headers(request))


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def console_page(request: Request) -> HTMLResponse:
    """The console (login, wall, playback, administration...): one page, screens chosen by its menu."""
    return _page(request, "index.html")


@router.get("/kiosk", response_class=HTMLResponse, include_in_schema=False)
async def kiosk_page(request: Request) -> HTMLResponse:
    """The citizens' on-site viewing page: plays one redacted clip, offers nothing to keep."""
    return _page(request, "kiosk.html")


@router.get("/static/{path:path}", include_in_schema=False)
async def asset(path: str, request: Request) -> Response:
    target = (STATIC / path).resolve()
    if not target.is_relative_to(STATIC) or not target.is_file() or target.suffix not in TYPES:
        raise HTTPException(404, "no such file")
    headers = page_headers(request)
    return FileResponse(target, media_type=TYPES[target.suffix], headers=headers)


# -- who is signed in, and what the console may show them --------------------------------------


class HabilitationOut(BaseModel):
    camera_groups: list[str]
    expires: str | None
    problem: str | None


class ConsoleMeOut(BaseModel):
    username: str
    display_name: str
    role: str
    partner: str | None
    actions: list[str] = Field(description="What the role (and partner agreement) allows; groups still apply.")
    ptz_priority: int
    playback_days: int | None
    habilitation: HabilitationOut
    features: list[str] = Field(description="Optional API modules this gateway serves.")


def _features(request: Request) -> list[str]:
    paths = set(request.app.openapi().get("paths", {}))  # built once, then cached by FastAPI
    found = {name for name, path in FEATURES.items() if any(p.startswith(path) for p in paths)}
    # WebSockets are not in the OpenAPI document: the notifications stream comes with the alarms.
    if "alarms" in found:
        found.add("notifications")
    return sorted(found)


@router.get("/api/v1/console/me", response_model=ConsoleMeOut, tags=["console"])
async def console_me(request: Request, b: BackendsDep) -> ConsoleMeOut:
    """The signed-in user with the actions their role grants, to build menus (the API still decides)."""
    principal = await authenticate(request)
    actions = ROLE_ACTIONS.get(principal.role, frozenset())
    if principal.allowed_actions is not None:
        actions = actions & principal.allowed_actions
    expires = None
    if principal.partner is None:
        user = await asyncio.to_thread(accounts.get, b.engine, principal.user_id)
        expires = iso(user.expires_us) if user is not None else None
    return ConsoleMeOut(
        username=principal.username,
        display_name=principal.display_name,
        role=principal.role,
        partner=principal.partner,
        actions=sorted(actions),
        ptz_priority=principal.ptz_priority,
        playback_days=principal.playback_days,
        habilitation=HabilitationOut(
            camera_groups=sorted(principal.camera_groups), expires=expires, problem=principal.habilitation_problem
        ),
        features=_features(request),
    )


# -- saved layouts of the video wall -----------------------------------------------------------


class ConsoleLayout(SQLModel, table=True):
    __tablename__ = "gateway_console_layouts"
    __table_args__ = (UniqueConstraint("owner", "name", name="uq_gateway_console_layouts_owner_name"),)

    id: str = SQLField(primary_key=True, max_length=32)
    owner: str = SQLField(max_length=64, index=True)
    name: str = SQLField(max_length=80)
    shared: bool = False
    grid: int
    tiles: list[str | None] = SQLField(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_us: int = SQLField(sa_column=Column(BigInteger, nullable=False))
    updated_us: int = SQLField(sa_column=Column(BigInteger, nullable=False))


CameraSlot = Annotated[str | None, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class LayoutIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: line(80)  # type: ignore[valid-type]
    shared: bool = False
    grid: int = Field(description="Tiles on the screen: 1, 4, 9 or 16.")
    tiles: list[CameraSlot] = Field(description="A camera id (or null) per tile, row by row.")

    @field_validator("grid")
    @classmethod
    def _grid(cls, value: int) -> int:
        if value not in GRIDS:
            raise ValueError("grid must be 1, 4, 9 or 16")
        return value


class LayoutOut(BaseModel):
    id: str
    name: str
    owner: str
    shared: bool
    mine: bool
    grid: int
    tiles: list[str | None]
    # Tiles emptied because they show a camera this user may not see.
    hidden: int
    updated: str


def _check_tiles(body: LayoutIn) -> None:
    if len(body.tiles) > body.grid:
        raise HTTPException(422, f"a {body.grid}-tile layout has at most {body.grid} cameras, not {len(body.tiles)}")


async def _visible_tiles(principal: Principal, rows: list[ConsoleLayout]) -> list[LayoutOut]:
    groups = await groups_by_camera(principal)
    result = []
    for row in rows:
        tiles: list[str | None] = []
        hidden = 0
        for camera in (row.tiles + [None] * row.grid)[: row.grid]:
            if camera and not sees_camera(principal, CAMERA_ACTIONS, camera, groups):
                camera, hidden = None, hidden + 1
            tiles.append(camera)
        result.append(
            LayoutOut(
                id=row.id,
                name=row.name,
                owner=row.owner,
                shared=row.shared,
                mine=row.owner == _owner(principal),
                grid=row.grid,
                tiles=tiles,
                hidden=hidden,
                updated=iso(row.updated_us) or "",
            )
        )
    return result


def _owner(principal: Principal) -> str:
    return f"{principal.partner}:{principal.username}" if principal.partner else principal.username


def _list(b: Backends, owner: str) -> list[ConsoleLayout]:
    with session(b.engine) as s:
        rows = s.exec(
            select(ConsoleLayout).where((col(ConsoleLayout.owner) == owner) | (col(ConsoleLayout.shared).is_(True)))
        )
        return sorted(rows, key=lambda r: (r.owner != owner, r.name.lower()))


def _save(b: Backends, owner: str, body: LayoutIn, layout_id: str | None) -> ConsoleLayout:
    now = to_us(b.clock.now())
    with session(b.engine) as s:
        clash = s.exec(
            select(ConsoleLayout).where(ConsoleLayout.owner == owner, ConsoleLayout.name == body.name)
        ).first()
        if clash is not None and clash.id != layout_id:
            raise HTTPException(409, f"you already have a layout named {body.name!r}")
        if layout_id is None:
            count = len(list(s.exec(select(ConsoleLayout.id).where(ConsoleLayout.owner == owner))))
            if count >= MAX_LAYOUTS_PER_USER:
                raise HTTPException(409, f"you already have {MAX_LAYOUTS_PER_USER} layouts: delete one first")
            row = ConsoleLayout(id=uuid.uuid4().hex, owner=owner, name=body.name, grid=body.grid, created_us=now,
                                updated_us=now)  # fmt: skip
        else:
            row = _mine(s, owner, layout_id)
        row.name, row.shared, row.grid = body.name, body.shared, body.grid
        row.tiles = list(body.tiles) + [None] * (body.grid - len(body.tiles))
        row.updated_us = now
        s.add(row)
        s.commit()
        s.refresh(row)
        return row


def _mine(s: Any, owner: str, layout_id: str) -> ConsoleLayout:
    row = s.get(ConsoleLayout, layout_id)
    if row is None or (row.owner != owner and not row.shared):
        raise HTTPException(404, f"unknown layout {layout_id!r}")
    if row.owner != owner:
        raise HTTPException(403, f"layout {row.name!r} belongs to {row.owner}: save a copy under your own name")
    return row


def _delete(b: Backends, owner: str, layout_id: str) -> None:
    with session(b.engine) as s:
        s.delete(_mine(s, owner, layout_id))
        s.commit()


def _check_sharing(principal: Principal, body: LayoutIn) -> None:
    if body.shared and principal.role not in SHARERS:
        raise HTTPException(403, "only supervisors and managers may share a layout; save it as personal")


WATCHERS = require_any("live")


@router.get("/api/v1/console/layouts", response_model=list[LayoutOut])
async def list_layouts(b: BackendsDep, principal: Principal = Depends(WATCHERS)) -> list[LayoutOut]:
    """Your layouts, then those shared with everyone (cameras you may not see are left empty)."""
    rows = await asyncio.to_thread(_list, b, _owner(principal))
    return await _visible_tiles(principal, rows)


@router.post("/api/v1/console/layouts", response_model=LayoutOut, status_code=201)
async def create_layout(body: LayoutIn, b: BackendsDep, principal: Principal = Depends(WATCHERS)) -> LayoutOut:
    _check_tiles(body)
    _check_sharing(principal, body)
    if body.shared:
        await audit(principal, "console.layout.share", f"layout:{body.name}", details=body.model_dump())
    row = await asyncio.to_thread(_save, b, _owner(principal), body, None)
    return (await _visible_tiles(principal, [row]))[0]


@router.put("/api/v1/console/layouts/{layout_id}", response_model=LayoutOut)
async def update_layout(
    layout_id: str, body: LayoutIn, b: BackendsDep, principal: Principal = Depends(WATCHERS)
) -> LayoutOut:
    _check_tiles(body)
    _check_sharing(principal, body)
    if body.shared:
        await audit(principal, "console.layout.share", f"layout:{layout_id}", details=body.model_dump())
    row = await asyncio.to_thread(_save, b, _owner(principal), body, layout_id)
    return (await _visible_tiles(principal, [row]))[0]


@router.delete("/api/v1/console/layouts/{layout_id}", status_code=204)
async def delete_layout(layout_id: str, b: BackendsDep, principal: Principal = Depends(WATCHERS)) -> Response:
    await asyncio.to_thread(_delete, b, _owner(principal), layout_id)
    return Response(status_code=204)
