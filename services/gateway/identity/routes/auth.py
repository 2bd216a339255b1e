"""Logging in and out: password, then TOTP (enrolled at first login), then a session; changing
one's own password. The checks and their limits are services/gateway/identity/login.py."""

import asyncio
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from services.common.log import get_logger
from services.common.secretbox import SecretBoxError
from services.common.timefmt import iso
from services.gateway.backends import Backends, BackendsDep
from services.gateway.identity import accounts, sessions
from services.gateway.identity import login as procedure
from services.gateway.identity.oidc import OidcError
from services.gateway.identity.security import COOKIE, Principal, audit, authenticate, principal_for, record

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])
log = get_logger(__name__)


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)
    totp: str | None = Field(None, pattern=r"^[0-9]{6}$", description="The current 6-digit TOTP code")
    new_password: str | None = Field(
        None,
        min_length=1,
        max_length=256,
        description="After an admin's password reset (status password_change_required): the password replacing it",
    )


class HabilitationOut(BaseModel):
    camera_groups: list[str]
    expires: str | None
    prefecture_ref: str | None
    validated: str | None
    problem: str | None


class MeOut(BaseModel):
    username: str
    display_name: str
    role: str
    partner: str | None
    habilitation: HabilitationOut


class LoginOut(BaseModel):
    status: Literal["ok", "totp_required", "totp_enrolment", "password_change_required"]
    access_token: str | None = None
    token_type: str = "bearer"
    expires_at: str | None = None
    user: MeOut | None = None
    # Only during enrolment: the secret to load into an authenticator app (shown once).
    otpauth_uri: str | None = None
    # Logins of this account that failed since its last successful one (a lock among them shows
    # here: the refusal itself said nothing about it).
    failed_attempts: int = 0


def me_out(principal: Principal, user: object) -> MeOut:
    return MeOut(
        username=principal.username,
        display_name=principal.display_name,
        role=principal.role,
        partner=principal.partner,
        habilitation=HabilitationOut(
            camera_groups=sorted(principal.camera_groups),
            expires=iso(user.expires_us),  # type: ignore[attr-defined]
            prefecture_ref=user.prefecture_ref,  # type: ignore[attr-defined]
            validated=iso(user.prefecture_validated_us),  # type: ignore[attr-defined]
            problem=principal.habilitation_problem,
        ),
    )


@router.post("/login", response_model=LoginOut, responses={429: {"description": "Too many failed logins"}})
async def login(body: LoginIn, request: Request, response: Response, b: BackendsDep) -> LoginOut:
    s = b.settings
    ip = request.client.host if request.client else ""
    attempt = procedure.Attempt(body.username, body.password, ip, body.totp, body.new_password)
    try:
        outcome = await procedure.login(b, attempt)
    except procedure.Refused as exc:
        raise exc.http() from exc
    if outcome.status != "ok":
        return LoginOut(status=outcome.status, otpauth_uri=outcome.otpauth_uri)
    user = outcome.user
    details: dict[str, object] = {}
    if outcome.failed_attempts:
        details["failed_attempts_before"] = outcome.failed_attempts
    if outcome.new_password is not None:
        details["password_changed"] = "the single-use password of an admin's reset was replaced"
    await record(
        b,
        actor=user.username,
        role=user.role,
        origin_ip=ip,
        action="auth.login",
        target=f"user:{user.username}",
        details=details or None,
    )
    if outcome.new_password is not None:
        user = await asyncio.to_thread(accounts.set_password, b.engine, user.id, outcome.new_password, False)
    issued = await asyncio.to_thread(
        sessions.issue, b.engine, b.clock, user.id, ip, s.session_idle_minutes, s.session_max_hours
    )
    response.set_cookie(
        COOKIE,
        issued.token,
        httponly=True,
        samesite="strict",
        secure=s.cookie_secure,
        max_age=int(s.session_max_hours * 3600),
        path="/",
    )
    principal = principal_for(b, user, ip, issued.token)
    return LoginOut(
        status="ok",
        access_token=issued.token,
        expires_at=iso(issued.expires_us),
        user=me_out(principal, user),
        failed_attempts=outcome.failed_attempts,
    )


class PasswordIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    current_password: str = Field(min_length=1, max_length=256)
    new_password: str = Field(min_length=1, max_length=256)


class PasswordOut(BaseModel):
    status: Literal["changed"]
    other_sessions_revoked: int


@router.post("/password", response_model=PasswordOut, responses={429: {"description": "Too many failed logins"}})
async def change_password(
    body: PasswordIn, b: BackendsDep, principal: Principal = Depends(authenticate)
) -> PasswordOut:
    """Change one's own password: the current one is checked like a login (same limits and lock);
    the account's other sessions end."""
    target = f"user:{principal.username}"
    if principal.partner is not None:
        raise HTTPException(409, "a partner's agent has no password here: change it with your own service")
    try:
        outcome = await procedure.check_current_password(b, principal, body.current_password, body.new_password)
    except procedure.Refused as exc:
        try:
            await audit(principal, "auth.password_change", target, outcome="refused", details={"reason": exc.reason})
        except HTTPException:
            pass  # the refusal stands whether or not it could be recorded
        if exc.user is not None and exc.user.kind != accounts.LOCAL:
            raise HTTPException(409, "your password is managed by the identity provider: change it there") from exc
        raise exc.http() from exc
    await audit(principal, "auth.password_change", target)
    assert outcome.new_password is not None
    await asyncio.to_thread(accounts.set_password, b.engine, principal.user_id, outcome.new_password, False)
    revoked = await asyncio.to_thread(sessions.revoke_others, b.engine, b.clock, principal.user_id, principal.token)
    return PasswordOut(status="changed", other_sessions_revoked=revoked)


class LogoutOut(BaseModel):
    # Where the browser must go next so the identity provider ends its session too (sessions opened
    # through OIDC); null with a notice when the provider cannot be asked.
    end_session_url: str | None
    notice: str | None = None


@router.post(
    "/logout",
    status_code=204,
    responses={200: {"model": LogoutOut, "description": "A session opened through the OIDC provider"}},
)
async def logout(request: Request, response: Response, b: BackendsDep) -> Response:
    principal = await authenticate(request)
    await audit(principal, "auth.logout", f"user:{principal.username}")
    sealed = await asyncio.to_thread(sessions.revoke, b.engine, b.clock, principal.token)
    if sealed is not None and b.oidc.enabled:
        # Ended here first: whatever the provider says, this session is over.
        out = await _provider_logout(b, sealed)
        answer = JSONResponse(out.model_dump(), headers={"Cache-Control": "no-store"})
        answer.delete_cookie(COOKIE, path="/")
        return answer
    response.delete_cookie(COOKIE, path="/")
    response.status_code = 204
    return response


async def _provider_logout(b: Backends, sealed: str) -> LogoutOut:
    left_open = "your session at the identity provider may still be open: close the browser"
    try:
        url = await b.oidc.end_session_url(b.box.open(sealed))
    except (OidcError, SecretBoxError) as exc:
        reason = exc.message if isinstance(exc, OidcError) else str(exc)
        log.warning("oidc logout not sent to the provider", reason=reason)
        return LogoutOut(end_session_url=None, notice=f"{reason}; {left_open}")
    if url is None:
        return LogoutOut(end_session_url=None, notice=f"the identity provider offers no logout; {left_open}")
    return LogoutOut(end_session_url=url)


@router.get("/me", response_model=MeOut)
async def me(request: Request, b: BackendsDep) -> MeOut:
    principal = await authenticate(request)
    user = await asyncio.to_thread(accounts.get, b.engine, principal.user_id)
    return me_out(principal, user)
