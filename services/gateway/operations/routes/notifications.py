"""Console notifications over a WebSocket: intercom calls (the console brings the bollard's camera
up) and alarms, as JSON messages, each only to consoles allowed to see it.

    GET /api/v1/notifications  (WebSocket; the session cookie or an Authorization: Bearer header)
    <- {"type": "hello", "user": ...}                       once subscribed
    <- {"type": "bollard.call", "camera_id", "call_id", "bollard_id", "bollard_name", "location", "live_url", "time"}
    <- {"type": "alarm.raised" | "alarm.acknowledged", "camera_id", "alarm_id", "kind", "message", "count", ...}

Open to holders of "live" or "camera_health". Refusals close the socket with 4000 + the HTTP status
(4401: log in again, 4403: not allowed); a console too slow to read is closed with 1013 and lists
what it missed when it reconnects. The session is re-checked while the socket is open.
"""

from fastapi import APIRouter, HTTPException, WebSocket

from services.common.log import get_logger
from services.gateway import websocket_session
from services.gateway.backends import BackendsDep
from services.gateway.identity.security import Principal, authenticate, refuse
from services.gateway.operations import notifications
from services.gateway.operations.access import role_refusal
from services.gateway.websocket_session import Stop

router = APIRouter(tags=["console notifications"])
log = get_logger(__name__)


async def _principal(websocket: WebSocket) -> Principal:
    principal = await authenticate(websocket)
    reason = role_refusal(principal, notifications.CONSOLE_ACTIONS)
    if reason is not None:
        await refuse(principal, "notifications", websocket.url.path, reason)
    return principal


@router.websocket("/api/v1/notifications")
async def console(websocket: WebSocket, b: BackendsDep) -> None:
    try:
        principal = await _principal(websocket)
    except HTTPException as exc:
        await websocket_session.refused(websocket, exc)
        return
    await websocket.accept()
    hub = notifications.hub(b)
    if not hub.started:
        await websocket.close(code=1013, reason="notifications unavailable: message bus not connected")
        return
    with hub.listen(principal) as listener:
        await websocket.send_json({"type": "hello", "user": principal.username})

        async def send() -> None:
            while True:
                await websocket.send_json(await listener.queue.get())

        async def recheck() -> None:
            listener.principal = await _principal(websocket)

        too_slow = Stop(listener.overflowed, 1013, "console too slow: reconnect and list alarms and calls")
        how = await websocket_session.supervise(websocket, send, recheck, (too_slow,))
        await websocket_session.close(websocket, how)
