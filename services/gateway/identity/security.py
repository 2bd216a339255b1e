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
from datetime import datetime, timedelta
from typing import Any, NoReturn

from fastapi import HTTPException
from starlette.requests import HTTPConnection

from services.common.clock import from_us, to_us
from services.common.pb.csu.v1 import ingest_pb2
from services.gateway import audit_outcome
from services.gateway.backends import Backends, unknown_camera
from services.gateway.identity import accounts, refusals, sessions
from services.gateway.identity.federation import partners
from services.gateway.identity.roles import ACTIONS, CAMERA_ACTIONS, PTZ_PRIORITY, ROLE_ACTIONS, VIDEO_ACTIONS

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
    # Federated users: what the city grants their partner (None: the role's actions).
    allowed_actions: frozenset[str] | None = None
    # Federated users: the reference of the convention their partner works under (audited).
    convention: str | None = None
    token: str = field(default="", repr=False)
    _backends: Backends | None = field(default=None, repr=False, compare=False)

    def may(self, action: str, groups: Iterable[str] = ()) -> bool:
        return self.refusal(action, groups) is None

    def refusal(self, action: str, groups: Iterable[str] = ()) -> str | None:
        """Why the action is refused, or None when it is allowed."""
        reason = self.role_refusal(action)
        if reason is None and not self.covers(action, groups):
            return f"your habilitation does not cover this camera for {action}"
        return reason

    def role_refusal(self, action: str) -> str | None:
        """Why the action is refused whatever the camera (role, agreement, habilitation), or None."""
        if action not in ROLE_ACTIONS.get(self.role, frozenset()):
            return f"the {self.role} role does not allow {action}"
        if self.allowed_actions is not None and action not in self.allowed_actions:
            return f"the agreement with partner {self.partner} does not allow {action}"
        if action in VIDEO_ACTIONS and self.habilitation_problem:
            return self.habilitation_problem
        return None

    def covers(self, action: str, groups: Iterable[str]) -> bool:
        """Whether the caller's camera groups cover a camera in `groups` for `action`."""
        return action not in CAMERA_ACTIONS or self.in_groups(groups)

    def in_groups(self, groups: Iterable[str]) -> bool:
        """Whether the caller's camera groups cover a camera of `groups`, whatever the action."""
        return ALL_GROUPS in self.camera_groups or bool(self.camera_groups.intersection(groups))


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
    """The caller's principal, or HTTP 401.

    On the federation listener (mutual TLS) only partners' signed user assertions are accepted; on
    the main listener only sessions.
    """
    b: Backends = connection.app.state.backends
    tls = (connection.scope.get("extensions") or {}).get("tls")
    if tls is not None:
        return await _federated(b, connection, tls)
    token = _token(connection)
    if not token:
        raise HTTPException(401, "authentication required: log in first", headers={"WWW-Authenticate": "Bearer"})
    row = await asyncio.to_thread(sessions.resolve, b.engine, b.clock, token, b.settings.session_idle_minutes)
    user = await asyncio.to_thread(accounts.get, b.engine, row.user_id) if row else None
    if row is None or user is None or not user.active:
        # A token was presented and is not valid (expired, revoked, forged): worth a line for
        # auditors, but anyone can send made-up tokens: aggregated per address (refusals.py).
        await refusals.refused(
            b,
            action="auth.refused",
            origin_ip=_ip(connection),
            reason="expired, revoked or unknown session",
            sample=connection.url.path,
            actor=user.username if user else "(unknown token)",
            role=user.role if user else "",
            target=connection.url.path,
        )
        raise HTTPException(
            401, "your session has expired or was revoked: log in again", headers={"WWW-Authenticate": "Bearer"}
        )
    return principal_for(b, user, _ip(connection), token)


async def _federated(b: Backends, connection: HTTPConnection, tls: dict[str, Any]) -> Principal:
    chain = tls.get("client_cert_chain") or []
    partner = await asyncio.to_thread(partners.by_certificate, b.engine, chain[0]) if chain else None
    ip = _ip(connection)

    async def refused(reason: str, actor: str) -> HTTPException:
        try:
            await record(
                b,
                actor=actor,
                role="police_nationale",
                origin_ip=ip,
                partner=partner.id if partner else "",
                action="federation.refused",
                target=connection.url.path,
                outcome="refused",
                details={"reason": reason} | ({"convention": partner.convention_ref} if partner else {}),
            )
        except HTTPException:
            pass
        return HTTPException(401, reason, headers={"WWW-Authenticate": "Bearer"})

    if partner is None:
        raise await refused("this client certificate belongs to no registered partner", "unknown-partner")
    if not partner.active:
        raise await refused(f"partner {partner.id} has been revoked", f"{partner.id}:?")
    # The one place a partner's convention is enforced: past its expiry (or without one), every
    # request of its users is refused, including the next message of an open live view.
    convention_refusal = partners.convention_refusal(partner, to_us(b.clock.now()))
    if convention_refusal is not None:
        raise await refused(convention_refusal, f"{partner.id}:?")
    token = _token(connection)
    if not token:
        raise await refused("a signed user assertion is required (Authorization: Bearer <JWT>)", f"{partner.id}:?")
    try:
        assertion = partners.verify_assertion(
            partner, token, b.settings.federation_audience, b.settings.federation_max_assertion_s, b.clock
        )
    except partners.FederationError as exc:
        raise await refused(exc.message, f"{partner.id}:?") from exc
    now = to_us(b.clock.now())
    problem = None
    if not assertion.habilitation_ref or assertion.habilitation_expires_us is None:
        problem = "the user assertion carries no habilitation (hab_ref, hab_exp): no access to video"
    elif assertion.habilitation_expires_us <= now:
        problem = (
            f"your habilitation expired on {from_us(assertion.habilitation_expires_us):%Y-%m-%d}: no access to video"
        )
    return Principal(
        user_id=f"{partner.id}:{assertion.subject}",
        username=assertion.subject,
        display_name=assertion.name,
        role="police_nationale",
        ip=ip,
        camera_groups=frozenset(partner.camera_groups),
        habilitation_problem=problem,
        playback_days=None,
        ptz_priority=partner.ptz_priority,
        partner=partner.id,
        allowed_actions=frozenset(partner.actions) & ROLE_ACTIONS["police_nationale"],
        convention=partner.convention_ref,
        token=token,
        _backends=b,
    )


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
    path = connection.url.path
    if camera_id is None:
        reason = principal.role_refusal(action)
        if reason is not None:
            await refuse(principal, action, path, reason, path=path)
    else:
        await check_camera(principal, action, camera_id, path=path)
    return principal


async def refuse(
    principal: Principal,
    action: str,
    target: str,
    reason: str,
    *,
    path: str = "",
    answer: HTTPException | None = None,
) -> NoReturn:
    """Audit the refusal (with its real reason) and answer it: 403 with the reason unless told otherwise."""
    try:
        details = {"reason": reason} | ({"path": path} if path else {})
        await audit(principal, f"{action}.refused", target, outcome="refused", details=details)
    except HTTPException:
        pass  # the refusal stands whether or not it could be recorded
    raise answer if answer is not None else HTTPException(403, reason)


async def check_camera(
    principal: Principal,
    action: str | tuple[str, ...],
    camera_id: str,
    *,
    path: str = "",
    hidden: HTTPException | None = None,
) -> ingest_pb2.Camera:
    """The camera, if the principal may do `action` (or one of several) on it: the gateway's one camera rule.

    The role (or agreement, or habilitation) refuses with 403 and its reason. A camera outside the
    caller's groups answers exactly as an unknown one (404, same words): which cameras exist
    elsewhere in the city is not the caller's to learn (issue 23). Reached through an object (a
    bollard, an intercom call, a journal entry, an alarm), it answers as that object unknown:
    `hidden`, so neither the object nor its camera is confirmed. The trail keeps the real reason.
    """
    actions = (action,) if isinstance(action, str) else action
    target = f"camera:{camera_id}"
    reasons = [principal.role_refusal(a) for a in actions]
    if all(reasons):
        await refuse(principal, actions[0], target, reasons[0] or "refused", path=path)
    camera = await principal_backends(principal).camera(camera_id)
    if not any(
        reason is None and principal.covers(a, camera.groups) for a, reason in zip(actions, reasons, strict=True)
    ):
        reason = f"your habilitation does not cover this camera for {' or '.join(actions)}"
        await refuse(principal, actions[0], target, reason, path=path, answer=hidden or unknown_camera(camera_id))
    return camera


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
    """Record an action in the audit trail before performing it; HTTP 503 if that is impossible.

    Its outcome is the one the request ends with (ok, refused, failed: audit_outcome.py).
    """
    b = principal_backends(principal)
    if principal.convention:
        # Every action of a partner's user names the convention it was done under.
        details = (details or {}) | {"convention": principal.convention}
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
    """Audit an event without a principal (e.g. a failed login); HTTP 503 if the trail is down.

    In an HTTP request an action's outcome is the response's (audit_outcome.py): an entry with the
    default outcome "ok" is written once the handler has decided, as ok, refused or failed.
    """
    await audit_outcome.record(b, fields)


def check_playback_window(principal: Principal, start_us: int, now: datetime) -> None:
    """A habilitation may limit playback to the last N days."""
    if principal.playback_days is not None and start_us < to_us(now - timedelta(days=principal.playback_days)):
        raise HTTPException(403, f"your habilitation limits playback to the last {principal.playback_days} days")
