"""Who is calling, what they may do, and the audit record of what they did.

Every route declares its action with `require(action, camera=...)`; the dependency authenticates
the session (bearer token or the console's session cookie), checks the role's actions, the
habilitation (validated, not expired) for video, and the camera's groups. Routes call `audit`
before acting: the record is durable on JetStream first, and if it cannot be written the action is
refused (HTTP 503) — the trail never misses an action that happened.

WebSocket routes cannot answer with an HTTP status once open, so they call `authorize` themselves
after accepting and close with 4000 + the status on refusal.
"""

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from fastapi import HTTPException
from starlette.requests import HTTPConnection

from services.common import audit as audit_events
from services.common.clock import from_us, to_us
from services.gateway import accounts, sessions
from services.gateway.backends import Backends
from services.gateway.roles import ACTIONS, CAMERA_ACTIONS, PTZ_PRIORITY, ROLE_ACTIONS, VIDEO_ACTIONS

COOKIE = "csu_session"
ALL_GROUPS = "*"


@dataclass(frozen=True)
class Principal:
    user_id: str
    username: str
    display_name: str
    role: str
    ip: str
    camera_groups: frozenset[str]
    # None when the habilitation allows video now; otherwise why not (shown to the user).
    habilitation_problem: str | None
    playback_days: int | None
    ptz_priority: int
    partner: str | None = None
    token: str = field(default="", repr=False)
    _backends: Backends | None = field(default=None, repr=False, compare=False)

    def may(self, action: str, groups: Iterable[str] = ()) -> bool:
        return self.refusal(action, groups) is None

    def refusal(self, action: str, groups: Iterable[str] = ()) -> str | None:
        """Why the action is refused, or None when it is allowed."""
        if action not in ROLE_ACTIONS.get(self.role, frozenset()):
            return f"the {self.role} role does not allow {action}"
        if action in VIDEO_ACTIONS and self.habilitation_problem:
            return self.habilitation_problem
        if action in CAMERA_ACTIONS and ALL_GROUPS not in self.camera_groups:
            if not self.camera_groups.intersection(groups):
                return f"your habilitation does not cover this camera for {action}"
        return None


def _token(connection: HTTPConnection) -> str | None:
    header = connection.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return connection.cookies.get(COOKIE)


def _ip(connection: HTTPConnection) -> str:
    return connection.client.host if connection.client else ""


def _habilitation_problem(user: Any, now_us: int) -> str | None:
    if user.prefecture_validated_us is None:
        return "your habilitation has not been validated by the prefecture: no access to video"
    if user.expires_us is not None and user.expires_us <= now_us:
        return f"your habilitation expired on {from_us(user.expires_us):%Y-%m-%d}: no access to video"
    return None


async def authenticate(connection: HTTPConnection) -> Principal:
    """The caller's principal, or HTTP 401."""
    b: Backends = connection.app.state.backends
    token = _token(connection)
    if not token:
        raise HTTPException(401, "authentication required: log in first", headers={"WWW-Authenticate": "Bearer"})
    row = await asyncio.to_thread(sessions.resolve, b.engine, b.clock, token, b.settings.session_idle_minutes)
    user = await asyncio.to_thread(accounts.get, b.engine, row.user_id) if row else None
    if row is None or user is None or not user.active:
        raise HTTPException(
            401, "your session has expired or was revoked: log in again", headers={"WWW-Authenticate": "Bearer"}
        )
    return principal_for(b, user, _ip(connection), token)


def principal_for(b: Backends, user: Any, ip: str, token: str) -> Principal:
    return Principal(
        user_id=user.id,
        username=user.username,
        display_name=user.display_name,
        role=user.role,
        ip=ip,
        camera_groups=frozenset(user.camera_groups),
        habilitation_problem=_habilitation_problem(user, to_us(b.clock.now())),
        playback_days=user.playback_days,
        ptz_priority=user.ptz_priority if user.ptz_priority is not None else PTZ_PRIORITY.get(user.role, 0),
        token=token,
        _backends=b,
    )


async def authorize(connection: HTTPConnection, action: str, camera_id: str | None = None) -> Principal:
    """Authenticate and check `action` (on the camera, if given); 401/403/404 as HTTPException.

    A refusal is itself audited: attempts to reach what one may not are what auditors look for.
    """
    principal = await authenticate(connection)
    groups: list[str] = []
    target = ""
    if camera_id is not None:
        camera = await principal_backends(principal).camera(camera_id)
        groups = list(camera.groups)
        target = f"camera:{camera_id}"
    reason = principal.refusal(action, groups)
    if reason is not None:
        try:
            await audit(
                principal,
                f"{action}.refused",
                target or connection.url.path,
                outcome="refused",
                details={"reason": reason, "path": connection.url.path},
            )
        except HTTPException:
            pass  # the refusal stands whether or not it could be recorded
        raise HTTPException(403, reason)
    return principal


def require(action: str, camera: str | None = None) -> Callable[[HTTPConnection], Awaitable[Principal]]:
    """FastAPI dependency: the principal, allowed `action` (on the camera named by parameter `camera`)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")

    async def dependency(connection: HTTPConnection) -> Principal:
        camera_id = None
        if camera is not None:
            camera_id = connection.path_params.get(camera) or connection.query_params.get(camera)
            if not camera_id:
                raise HTTPException(422, f"missing parameter {camera!r}")
        return await authorize(connection, action, camera_id)

    return dependency


def principal_backends(principal: Principal) -> Backends:
    if principal._backends is None:
        raise RuntimeError("principal without backends")
    return principal._backends


async def audit(
    principal: Principal,
    action: str,
    target: str,
    *,
    justification: str | None = None,
    recipient: str | None = None,
    details: dict[str, Any] | None = None,
    outcome: str = "ok",
) -> None:
    """Record an action in the audit trail before performing it; HTTP 503 if that is impossible."""
    b = principal_backends(principal)
    await record(
        b,
        actor=f"{principal.partner}:{principal.username}" if principal.partner else principal.username,
        role=principal.role,
        origin_ip=principal.ip,
        partner=principal.partner or "",
        action=action,
        target=target,
        justification=justification or "",
        recipient=recipient or "",
        details=details,
        outcome=outcome,
    )


async def record(b: Backends, **fields: Any) -> None:
    """Audit an event without a principal (e.g. a failed login); HTTP 503 if the trail is down."""
    if b.js is None:
        raise HTTPException(503, "the audit trail is unavailable: the action was not performed")
    try:
        await audit_events.record(b.js, b.settings.nats_prefix, b.clock, **fields)
    except audit_events.AuditUnavailable as exc:
        raise HTTPException(503, "the audit trail is unavailable: the action was not performed") from exc
