"""The viewing-room kiosk's API: citizens watch the redacted footage of themselves, on site only.

The kiosk page (GET /kiosk, served by the console) holds no staff session. A clerk opens a kiosk
session for the request (POST /api/v1/citizen-requests/{id}/kiosk-sessions) and types the one-time
code it shows on the kiosk; pairing sets the session token in an HttpOnly, SameSite=Strict cookie
scoped to /api/v1/kiosk. From then on:

- the clip is served only here, only to that cookie, only by POST (so no address bar, link,
  <video src> or download manager can fetch it), as fragmented MP4 for the page's Media Source,
  with no file name and `no-store`; staff sessions, bearer tokens and expired or revoked kiosk
  sessions get 401;
- the session expires (CSU_KIOSK_SESSION_MINUTES) and ends when the request is closed;
- every pairing and every play is in the audit trail (actor "kiosk:<session>").
"""

import math
import weakref

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.requests import HTTPConnection

from services.common.pb.csu.v1 import requisition_pb2
from services.common.timefmt import iso
from services.gateway.backends import Backends, BackendsDep, rpc_errors
from services.gateway.casework.client import REQUISITION_TIMEOUT_S
from services.gateway.identity.attempts import AttemptLimiter
from services.gateway.identity.security import record
from services.gateway.streams import Relay

router = APIRouter(prefix="/api/v1/kiosk", tags=["kiosk"])
COOKIE = "csu_kiosk"
COOKIE_PATH = "/api/v1/kiosk"
CLIP_TIMEOUT_S = 600.0
# Only the kiosk page's own fetch sets this header; it is not something a navigation can send.
PAGE_HEADER = "x-csu-kiosk"
CODE_LENGTH = 10
_limiters: "weakref.WeakKeyDictionary[Backends, AttemptLimiter]" = weakref.WeakKeyDictionary()


def _limiter(b: Backends) -> AttemptLimiter:
    limiter = _limiters.get(b)
    if limiter is None:
        limiter = _limiters[b] = AttemptLimiter(b.settings.kiosk_pair_max_failures, b.settings.kiosk_pair_window_s)
    return limiter


def _ip(connection: HTTPConnection) -> str:
    return connection.client.host if connection.client else ""


async def _kiosk_audit(b: Backends, connection: HTTPConnection, action: str, target: str, **fields: object) -> None:
    await record(
        b,
        actor=fields.pop("actor", "kiosk"),
        role="kiosk",
        origin_ip=_ip(connection),
        action=action,
        target=target,
        **fields,
    )


async def _session(request: Request, b: Backends) -> tuple[str, requisition_pb2.KioskSession]:
    """The kiosk session of the cookie, or 401 (audited)."""
    token = request.cookies.get(COOKIE, "")
    if not token:
        raise HTTPException(401, "this is served to the viewing-room kiosk only: no kiosk session")
    try:
        async with rpc_errors("requisition"):
            session = await b.requisition.GetKioskSession(
                requisition_pb2.KioskClipRequest(token=token, ip=_ip(request)), timeout=REQUISITION_TIMEOUT_S
            )
    except HTTPException as exc:
        if exc.status_code == 401:
            await _kiosk_audit(
                b, request, "kiosk.refused", request.url.path, outcome="refused", details={"reason": str(exc.detail)}
            )
        raise
    return token, session


@router.post("/pair")
async def pair(request: Request, b: BackendsDep) -> JSONResponse:
    """Trade the clerk's one-time code for the kiosk session (an HttpOnly cookie).

    Too many refused codes from one address: 429 until the window lets it try again."""
    limiter, address = _limiter(b), _ip(request)
    wait = limiter.retry_after(address)
    if wait > 0:
        await _kiosk_audit(
            b, request, "kiosk.pair.refused", request.url.path, outcome="refused", details={"reason": "rate limited"}
        )
        raise HTTPException(
            429,
            f"too many wrong kiosk codes from this address: try again in {math.ceil(wait)} s",
            headers={"Retry-After": str(math.ceil(wait))},
        )
    try:
        body = await request.json()
        code = str(body.get("code", ""))[:32] if isinstance(body, dict) else ""
    except ValueError:
        code = ""
    if len([c for c in code if c.isalnum()]) != CODE_LENGTH:
        await _kiosk_audit(
            b, request, "kiosk.pair.refused", request.url.path, outcome="refused", details={"reason": "malformed code"}
        )
        limiter.failed(address)
        raise HTTPException(401, "unknown or expired kiosk code")
    try:
        async with rpc_errors("requisition"):
            paired = await b.requisition.PairKiosk(
                requisition_pb2.PairKioskRequest(code=code, ip=_ip(request)), timeout=REQUISITION_TIMEOUT_S
            )
    except HTTPException as exc:
        if exc.status_code in (400, 401):
            await _kiosk_audit(
                b,
                request,
                "kiosk.pair.refused",
                request.url.path,
                outcome="refused",
                details={"reason": str(exc.detail)},
            )
            limiter.failed(address)
            raise HTTPException(401, "unknown or expired kiosk code") from exc
        raise
    await _kiosk_audit(
        b,
        request,
        "kiosk.pair",
        f"citizen_request:{paired.request_number}",
        actor=f"kiosk:{paired.session_id}",
        details={"expires": iso(paired.expires_us)},
    )
    response = JSONResponse(
        {"request_number": paired.request_number, "expires": iso(paired.expires_us), "clips": paired.clips},
        headers={"Cache-Control": "no-store"},
    )
    max_age = max(1, (paired.expires_us // 1_000_000) - int(b.clock.now().timestamp()))
    response.set_cookie(
        COOKIE,
        paired.token,
        httponly=True,
        samesite="strict",
        secure=b.settings.cookie_secure,
        max_age=max_age,
        path=COOKIE_PATH,
    )
    return response


@router.get("/session")
async def session_info(request: Request, b: BackendsDep) -> JSONResponse:
    """What the page shows and burns into the picture: the request number, and when the session ends."""
    _, session = await _session(request, b)
    return JSONResponse(
        {"request_number": session.request_number, "expires": iso(session.expires_us)},
        headers={"Cache-Control": "no-store"},
    )


@router.post("/end")
async def end(request: Request) -> JSONResponse:
    """The kiosk forgets its session (the page calls it when viewing ends)."""
    if not request.cookies.get(COOKIE):
        raise HTTPException(401, "no kiosk session")
    response = JSONResponse({"ended": True}, headers={"Cache-Control": "no-store"})
    response.delete_cookie(COOKIE, path=COOKIE_PATH)
    return response


@router.post("/clips/{clip}")
async def clip(clip: str, request: Request, b: BackendsDep) -> StreamingResponse:
    """The redacted clip, as fragmented MP4 for the kiosk page's Media Source (codec in X-Codec)."""
    token, session = await _session(request, b)
    if request.headers.get(PAGE_HEADER) != "1":
        raise HTTPException(403, "the clip is played by the kiosk page only")
    if not (clip.isascii() and clip.isdigit()) or len(clip) > 2:  # isdigit() alone takes "²", which int() refuses
        raise HTTPException(404, f"no clip {clip!r}")
    await _kiosk_audit(
        b,
        request,
        "kiosk.play",
        f"citizen_request:{session.request_number}",
        actor=f"kiosk:{session.session_id}",
        details={"clip": int(clip)},
    )
    # The requisition service fetches and remuxes the clip before its first byte, sending progress
    # meanwhile: the bound on silence applies from the start.
    relay = Relay(
        b.requisition.ReadKioskClip(
            requisition_pb2.KioskClipRequest(token=token, clip=int(clip), ip=_ip(request)), timeout=CLIP_TIMEOUT_S
        ),
        "requisition",
        b.settings.stream_stall_s,
    )
    first = await relay.first(rpc_errors("requisition"), "the requisition service sent no clip")

    return StreamingResponse(
        relay.body(),
        # Not video/mp4: nothing may treat this response as a playable or savable file.
        media_type="application/octet-stream",
        headers={
            "X-Codec": first.codec,
            "Content-Length": str(first.info.size),
            "Cache-Control": "no-store, private",
            "X-Content-Type-Options": "nosniff",
        },
    )
