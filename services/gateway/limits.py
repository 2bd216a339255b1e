"""Request hygiene at the door: bodies larger than allowed are refused before they are read whole,
text carrying NUL characters is refused (no store takes them: PostgreSQL refuses them in text, and
they have no business in a name or a reason), and refused or malformed requests leave a trace in
the audit trail (probing is what auditors look for), without recording what was sent.
"""

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.log import get_logger
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
    from services.gateway.security import record

    app = scope.get("app")
    backends: Backends | None = getattr(getattr(app, "state", None), "backends", None)
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


def install(app: FastAPI, default_bytes: int, upload_bytes: int) -> None:
    app.add_middleware(BodyLimit, default_bytes=default_bytes, upload_bytes=upload_bytes)
    app.add_exception_handler(RequestValidationError, invalid_request)  # type: ignore[arg-type]
