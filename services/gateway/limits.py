"""Request hygiene at the door: bodies larger than allowed are refused before they are read whole,
text carrying NUL characters is refused (no store takes them: PostgreSQL refuses them in text, and
they have no business in a name or a reason), cookie-authenticated changes must come from the
console's own origin (OriginCheck), and refused or malformed requests leave a trace in the audit
trail (probing is what auditors look for), without recording what was sent.
"""

import json
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.log import get_logger
from services.common.settings import Settings
from services.gateway.backends import Backends

log = get_logger(__name__)
# Larger bodies only where documents are uploaded (requisition scans, identity documents).
UPLOAD_PREFIXES = ("/api/v1/requisitions", "/api/v1/citizen-requests")


class BodyLimit:
    """413 for bodies over the limit, whether announced by Content-Length or only discovered."""

    def __init__(self, app: ASGIApp, default_bytes: int, upload_bytes: int) -> None:
        self.app = app
        self.default_bytes = default_bytes
        self.upload_bytes = upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.upload_bytes if scope["path"].startswith(UPLOAD_PREFIXES) else self.default_bytes
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._refuse(scope, send, limit)
            return
        # No (or a lying) Content-Length: read up to the limit first, then hand the body on.
        messages: list[Message] = []
        received = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            received += len(message.get("body", b""))
            if received > limit:
                await self._refuse(scope, send, limit)
                return
            if not message.get("more_body", False):
                break

        if _carries_nul(scope, messages):
            await _record_refusal(scope, "request.invalid", {"reason": "NUL character"})
            await _answer(send, 422, "text may not contain NUL characters (\\u0000)")
            return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, send: Send, limit: int) -> None:
        await _record_refusal(scope, "request.too_large", {"limit_bytes": limit})
        await _answer(send, 413, f"the request body is larger than the {limit // 1024} KiB allowed here")


# Uploaded files are binary and may hold any byte; text bodies and addresses may not hold NUL.
_TEXT_TYPES = (b"application/json", b"application/x-www-form-urlencoded", b"text/")


def _carries_nul(scope: Scope, messages: list[Message]) -> bool:
    raw = (scope.get("raw_path") or b"") + b"?" + (scope.get("query_string") or b"")
    if b"%00" in raw or b"\x00" in raw:
        return True
    content_type = dict(scope.get("headers") or []).get(b"content-type", b"").lower()
    if not content_type.startswith(_TEXT_TYPES):
        return False
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")
    return b"\x00" in body or b"\\u0000" in body.lower()


async def _answer(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _record_refusal(scope: Scope, action: str, details: dict[str, Any]) -> None:
    from services.gateway.identity.security import record

    backends = _backends(scope)
    if backends is None:
        return
    client = scope.get("client") or ("", 0)
    try:
        await record(
            backends,
            actor="(request)",
            role="",
            origin_ip=client[0],
            action=action,
            target=scope["path"],
            outcome="refused",
            details=details,
        )
    except Exception as exc:  # noqa: BLE001 - a refusal stands even if it cannot be recorded
        log.warning("refusal not recorded", action=action, error=str(exc))


async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422, plus an audit record naming the fields at fault (never their values)."""
    fields = sorted({".".join(str(part) for part in error.get("loc", ())) for error in exc.errors()})[:20]
    await _record_refusal(request.scope, "request.invalid", {"method": request.method, "fields": fields})
    errors = [{k: v for k, v in error.items() if k != "input"} for error in exc.errors()]
    return JSONResponse(status_code=422, content={"detail": jsonable_encoder(errors)})


# Identifiers in paths and queries (cameras, requests, users, versions...) are at most this long. An
# unbounded one went as is into a gRPC request and came back in the backend's error: 60,000
# characters answered 502 RESOURCE_EXHAUSTED. Checked for every route in one place, before any
# dependency (the camera lookup of the permission check) uses it.
MAX_ID = 128
# A path parameter that is not an id: the console's static file paths.
MAX_PATH = 1024
# Query parameters that name something by id (the others have their own bounds or types).
_ID_QUERIES = frozenset({"id", "camera", "segment", "version", "reference", "username", "name"})


def _is_id_query(name: str) -> bool:
    return name in _ID_QUERIES or name.endswith("_id")


async def bounded_ids(connection: HTTPConnection) -> None:
    """App-wide dependency: every path parameter and id-like query parameter is bounded (422)."""
    values = [(name, str(value), "path") for name, value in connection.path_params.items()]
    values += [(name, value, "query") for name, value in connection.query_params.multi_items() if _is_id_query(name)]
    for name, value, where in values:
        limit = MAX_PATH if (where, name) == ("path", "path") else MAX_ID
        if len(value) > limit:
            # The value itself is never echoed: only its length.
            raise HTTPException(
                422, f"{where} parameter {name!r} is {len(value)} characters long; at most {limit} are accepted"
            )


# Methods a browser may send cross-site without asking (forms) or that change something.
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Routes that read no cookie: a login authenticates with what its body carries, whatever cookie a
# client still holds (and a cross-site page cannot send it a JSON body without a CORS preflight).
_COOKIELESS = frozenset({"/api/v1/auth/login"})


class OriginCheck:
    """Cookie-authenticated changes and WebSocket handshakes come from the console's own origin.

    A browser attaches the session cookie (and the kiosk's) to requests that another site's page
    makes it send; SameSite=Strict stops that in today's browsers, and this check stops it
    whatever the browser, the cookie's attributes or a sibling site under the same registrable
    domain. A state-changing request (POST, PUT, PATCH, DELETE) or a WebSocket handshake that
    carries a cookie and no bearer token must name, in Origin (or Referer when a browser sent no
    Origin), the origin the request itself was sent to (its scheme and Host), or one of
    CSU_ALLOWED_ORIGINS. Bearer-token calls are exempt: a browser never adds that header on its
    own, so a cross-site page cannot make one. Refused: 403 (HTTP) or a refused handshake.
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.extra = settings.allowed_origin_set
        # Behind a TLS-terminating proxy the browser's scheme is https whatever the proxy says.
        self.https_too = settings.cookie_secure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if (kind == "http" and scope["method"] in _UNSAFE and scope["path"] not in _COOKIELESS) or kind == "websocket":
            headers = _headers(scope)
            bearer = headers.get(b"authorization", b"")[:7].lower() == b"bearer "
            if b"cookie" in headers and not bearer and not self._allowed(scope, headers):
                await self._refuse(scope, receive, send, headers)
                return
        await self.app(scope, receive, send)

    def _allowed(self, scope: Scope, headers: dict[bytes, bytes]) -> bool:
        sent = headers.get(b"origin") or headers.get(b"referer")
        if not sent:
            return False
        parts = urlsplit(sent.decode("latin-1").strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return False  # "null" (sandboxed frames, privacy-stripped) proves nothing
        origin = f"{parts.scheme}://{parts.netloc}".lower()
        host = headers.get(b"host", b"").decode("latin-1").strip().lower()
        scheme = {"ws": "http", "wss": "https"}.get(scope.get("scheme", "http"), scope.get("scheme", "http"))
        own = {f"{scheme}://{host}"} | ({f"https://{host}"} if self.https_too else set())
        return (bool(host) and origin in own) or origin in self.extra

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, headers: dict[bytes, bytes]) -> None:
        from services.gateway.identity import refusals

        sent = (headers.get(b"origin") or headers.get(b"referer") or b"(none)").decode("latin-1")[:200]
        backends = _backends(scope)
        if backends is not None:
            client = scope.get("client") or ("", 0)
            await refusals.refused(
                backends,
                action="request.cross_origin",
                origin_ip=client[0],
                reason=f"cookie-authenticated {scope.get('method', 'WebSocket')} from origin {sent}",
                sample=sent,
                actor="(request)",
                role="",
                target=scope["path"],
            )
        detail = "cross-origin request refused: this page may not act on the console with your session"
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1008, "reason": "cross-origin"})  # the server answers 403
            return
        await _answer(send, 403, detail)


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return {name.lower(): value for name, value in scope.get("headers") or []}


def _backends(scope: Scope) -> Backends | None:
    app = scope.get("app")
    return getattr(getattr(app, "state", None), "backends", None)


def install(app: FastAPI, settings: Settings) -> None:
    app.add_middleware(BodyLimit, default_bytes=settings.max_body_bytes, upload_bytes=settings.max_upload_bytes)
    app.add_middleware(OriginCheck, settings=settings)  # added last: runs first, before any body is read
    app.add_exception_handler(RequestValidationError, invalid_request)  # type: ignore[arg-type]
