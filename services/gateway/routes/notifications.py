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

import asyncio

from fastapi import APIRouter, HTTPException, WebSocket, WebSocketDisconnect

from services.common.log import get_logger
from services.gateway.backends import BackendsDep
from services.gateway.operations import notifications
from services.gateway.operations.access import role_refusal
from services.gateway.security import Principal, authenticate, refuse

router = APIRouter(tags=["console notifications"])
log = get_logger(__name__)
REVALIDATE_S = 15.0


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
        await websocket.accept()
        await websocket.close(code=4000 + exc.status_code, reason=str(exc.detail)[:120])
        return
    await websocket.accept()
    hub = notifications.hub(b)
    if not hub.started:
        await websocket.close(code=1013, reason="notifications unavailable: message bus not connected")
        return
    with hub.listen(principal) as listener:
        await websocket.send_json({"type": "hello", "user": principal.username})
        ended: dict[str, tuple[int, str]] = {}

        async def send() -> None:
            while True:
                await websocket.send_json(await listener.queue.get())

        async def receive() -> None:
            while True:
                await websocket.receive_text()  # the console sends nothing; this notices it leave

        async def still_allowed() -> None:
            while True:
                await asyncio.sleep(REVALIDATE_S)
                try:
                    listener.principal = await _principal(websocket)
                except HTTPException as exc:
                    ended["reason"] = (4000 + exc.status_code, str(exc.detail)[:120])
                    return

        async def overflow() -> None:
            await listener.overflowed.wait()
            ended["reason"] = (1013, "console too slow: reconnect and list alarms and calls")

        tasks = [asyncio.create_task(t()) for t in (send, receive, still_allowed, overflow)]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        except WebSocketDisconnect:
            pass
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if "reason" in ended:
            code, reason = ended["reason"]
            try:
                await websocket.close(code=code, reason=reason)
            except RuntimeError:
                pass  # already closed by the other side
