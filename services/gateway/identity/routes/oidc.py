"""Single sign-on through the city's OpenID Connect provider (optional; on when CSU_OIDC_ISSUER is set).

    GET /api/v1/auth/methods         how one may log in here (the console's login page asks)
    GET /api/v1/auth/oidc/login      leaves for the provider (a browser navigation, not an API call)
    GET /api/v1/auth/oidc/callback   back from the provider: checks everything, opens a session, goes to /

The callback opens exactly the session a password login opens (same table, lifetime and
HttpOnly cookie) for a nominative account of kind "oidc", created at the user's first login and
linked to the provider's account by (issuer, sub). Its role and camera groups follow the
provider's groups through CSU_OIDC_ROLE_MAP at every login; the prefecture's validation and the
expiry of its habilitation are recorded here by an admin, as for local accounts, and without them
the user sees no video. Every login, accepted or refused, is in the audit trail (auth.login, with
method "oidc" and the provider's amr/acr: the provider does the second factor, not the gateway).

A refusal answers a browser with a small page saying why (and a link back to the console), any
other client with the usual JSON `detail`. These routes take no session, like the password login,
and stay out of /openapi.json: they are browser navigations, not API calls.
"""

import asyncio
from html import escape
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from prometheus_client import Counter
from pydantic import BaseModel

from services.common.log import get_logger
from services.gateway.backends import BackendsDep
from services.gateway.identity import accounts, sessions
from services.gateway.identity.oidc import CALLBACK_PATH, LOGIN_PATH, LOGIN_WINDOW_S, OidcClient, OidcError, Transaction
from services.gateway.identity.security import COOKIE, principal_for, record
from services.gateway.page_headers import page_headers

log = get_logger(__name__)
LOGINS = Counter("csu_gateway_oidc_logins_total", "OIDC logins by outcome", ["outcome"])
# The login in progress: sent back only to the callback, and on the provider's top-level redirect
# to it (SameSite=Lax; the session cookie itself stays Strict).
TX_COOKIE = "csu_oidc_login"
TX_COOKIE_PATH = CALLBACK_PATH.rsplit("/", 1)[0]


class OidcMethodOut(BaseModel):
    name: str
    login_url: str


class MethodsOut(BaseModel):
    password: bool
    oidc: OidcMethodOut | None


def _ip(request: Request) -> str:
    return request.client.host if request.client else ""


def _refusal(request: Request, status: int, message: str) -> Response:
    """A browser gets a page it can show (no script: the console's CSP applies); others get JSON."""
    if "text/html" in request.headers.get("accept", ""):
        page = (
            '<!doctype html><html lang="fr"><head><meta charset="utf-8"><title>Connexion refusée — CSU</title>'
            '<link rel="stylesheet" href="/static/css/console.css"></head><body><section class="login">'
            '<div class="login-card"><h1>Connexion refusée / Login refused</h1>'
            f'<p class="error" role="alert" id="oidc-error">{escape(message)}</p>'
            '<p><a href="/">Retour à la console / Back to the console</a></p></div></section></body></html>'
        )
        headers = page_headers(request, cache_control="no-store")
        response: Response = HTMLResponse(page, status_code=status, headers=headers)
    else:
        response = JSONResponse({"detail": message}, status_code=status, headers={"Cache-Control": "no-store"})
    response.delete_cookie(TX_COOKIE, path=TX_COOKIE_PATH)
    return response


def router_for(client: OidcClient) -> APIRouter:
    """The routes, for this gateway's provider (Backends.oidc)."""
    router = APIRouter(prefix="/api/v1/auth", tags=["auth"])

    def enabled() -> OidcClient:
        if not client.enabled:
            raise HTTPException(404, "OIDC login is not configured on this gateway (CSU_OIDC_ISSUER)")
        return client

    @router.get("/methods", response_model=MethodsOut, include_in_schema=False)
    async def methods() -> MethodsOut:
        """How one may log in: always a local password; the provider when OIDC is on."""
        oidc = OidcMethodOut(name=client.display_name, login_url=LOGIN_PATH) if client.enabled else None
        return MethodsOut(password=True, oidc=oidc)

    @router.get("/oidc/login", include_in_schema=False)
    async def oidc_login(request: Request, b: BackendsDep) -> Response:
        provider = enabled()
        tx = Transaction.new(b.clock)
        try:
            url = await provider.authorization_url(tx)
        except OidcError as exc:
            log.warning("oidc provider unavailable", error=exc.message)
            return _refusal(request, exc.status, exc.message)
        response = RedirectResponse(url, status_code=303)
        response.headers["Cache-Control"] = "no-store"
        response.set_cookie(
            TX_COOKIE,
            tx.seal(b.box),
            httponly=True,
            samesite="lax",
            secure=b.settings.cookie_secure,
            max_age=LOGIN_WINDOW_S,
            path=TX_COOKIE_PATH,
        )
        return response

    @router.get("/oidc/callback", include_in_schema=False)
    async def oidc_callback(
        request: Request,
        b: BackendsDep,
        code: str | None = Query(None, max_length=2048),
        state: str | None = Query(None, max_length=512),
        error: str | None = Query(None, max_length=256),
        error_description: str | None = Query(None, max_length=2048),
        iss: str | None = Query(None, max_length=2048),
    ) -> Response:
        provider = enabled()
        ip = _ip(request)
        actor, role = "(oidc)", ""
        details: dict[str, Any] = {"method": "oidc", "issuer": provider.issuer}
        try:
            tx = Transaction.open(b.box, request.cookies.get(TX_COOKIE), b.clock)
            tx.check_state(state)
            # RFC 9207: an answer naming another issuer is a mix-up attack, whatever else it says.
            if iss is not None and iss != provider.issuer:
                raise OidcError(400, f"the answer comes from another identity provider ({iss!r})")
            if error:
                described = f": {error_description[:200]}" if error_description else ""
                raise OidcError(403, f"the identity provider did not log you in ({error[:64]}{described})")
            if not code:
                raise OidcError(400, "the identity provider's answer has no authorization code")
            verified = await provider.finish(code, tx, b.clock)
            actor = verified.username_hint
            details |= {"subject": verified.subject, **verified.how, "groups": verified.groups[:50]}
            grant = provider.grant_for(verified.groups)
            details |= {"granted_by_groups": grant.groups}
            identity = accounts.OidcIdentity(
                issuer=provider.issuer,
                subject=verified.subject,
                username_hint=verified.username_hint,
                display_name=verified.display_name,
            )
            try:
                user, created = await asyncio.to_thread(
                    accounts.upsert_oidc_user,
                    b.engine,
                    b.clock,
                    identity,
                    grant.role,
                    grant.camera_groups,
                    f"oidc:{grant.groups[0]}",
                )
            except accounts.AccountError as exc:
                raise OidcError(exc.status, exc.message) from exc
            actor, role = user.username, user.role
            details["account_created"] = created
            if not user.active:
                raise OidcError(403, "this account has been deactivated by an administrator")
            if b.settings.oidc_require_validated_habilitation:
                problem = principal_for(b, user, ip, "").habilitation_problem
                if problem:
                    raise OidcError(
                        403,
                        f"{problem.removesuffix(': no access to video')}: this platform admits single sign-on only "
                        "once an administrator has recorded a valid habilitation",
                    )
        except OidcError as exc:
            LOGINS.labels("refused").inc()
            log.info("oidc login refused", actor=actor, reason=exc.message)
            await record(
                b,
                actor=actor[:160],
                role=role,
                origin_ip=ip,
                action="auth.login",
                target=f"user:{actor}"[:256],
                outcome="refused",
                details=details | {"reason": exc.message},
            )
            return _refusal(request, exc.status, exc.message)

        await record(
            b,
            actor=user.username,
            role=user.role,
            origin_ip=ip,
            action="auth.login",
            target=f"user:{user.username}",
            details=details,
        )
        LOGINS.labels("ok").inc()
        issued = await asyncio.to_thread(
            sessions.issue,
            b.engine,
            b.clock,
            user.id,
            ip,
            b.settings.session_idle_minutes,
            b.settings.session_max_hours,
            b.box.seal(verified.id_token),
        )
        response = RedirectResponse("/", status_code=303)
        response.headers["Cache-Control"] = "no-store"
        # The very cookie the password login sets (identity/routes/auth.py).
        response.set_cookie(
            COOKIE,
            issued.token,
            httponly=True,
            samesite="strict",
            secure=b.settings.cookie_secure,
            max_age=int(b.settings.session_max_hours * 3600),
            path="/",
        )
        response.delete_cookie(TX_COOKIE, path=TX_COOKIE_PATH)
        return response

    return router
