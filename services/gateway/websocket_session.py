"""The one shape of the gateway's server-push WebSockets (the live view, console notifications).

    refused(...)      accept, then close with 4000 + the HTTP status and the reason: closing before
                      accepting can only say "403", and a page must tell "log in again" (4401) from
                      "not allowed" (4403) from "unknown camera" (4404);
    supervise(...)    run the session until the client leaves, `send` ends, the caller's right ends
                      (re-checked every REVALIDATE_S: a revoked session or partner, an expired
                      habilitation ends an open socket too) or a stop condition fires (a client too
                      slow to read: 1013); it answers how to close.

The client sends nothing on these sockets: reading is only how its departure is noticed.
"""

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, WebSocket, WebSocketDisconnect

# A right withdrawn while a socket is open ends it within this delay (15 s: one revocation check
# per open socket, far below the cost of the frames or messages it carries).
REVALIDATE_S = 15.0
MAX_REASON_BYTES = 123  # a WebSocket close frame's reason, UTF-8 (RFC 6455: 125 bytes less the code)


@dataclass(frozen=True)
class Stop:
    """A condition that ends the session with this close code and reason once `event` is set."""

    event: asyncio.Event
    code: int
    reason: str


def close_for(exc: HTTPException) -> tuple[int, str]:
    """4000 + the status, and the detail cut to what a close frame carries (in bytes: a French
    reason with accents cut at 120 characters could overflow it and fail the close)."""
    reason = str(exc.detail).encode()[:MAX_REASON_BYTES].decode(errors="ignore")
    return 4000 + exc.status_code, reason


async def refused(websocket: WebSocket, exc: HTTPException) -> None:
    await websocket.accept()
    await websocket.close(*close_for(exc))


async def supervise(
    websocket: WebSocket,
    send: Callable[[], Coroutine[Any, Any, None]],
    recheck: Callable[[], Coroutine[Any, Any, object]],
    stops: tuple[Stop, ...] = (),
    revalidate_s: float = REVALIDATE_S,
) -> tuple[int, str] | None:
    """Run an accepted session; the (code, reason) to close it with, or None (the client left)."""
    ended: list[tuple[int, str]] = []

    async def receive() -> None:
        while True:
            await websocket.receive_text()

    async def still_allowed() -> None:
        while True:
            await asyncio.sleep(revalidate_s)
            try:
                await recheck()
            except HTTPException as exc:
                ended.append(close_for(exc))
                return

    async def stopped(stop: Stop) -> None:
        await stop.event.wait()
        ended.append((stop.code, stop.reason))

    work: list[Coroutine[Any, Any, None]] = [send(), receive(), still_allowed(), *(stopped(s) for s in stops)]
    tasks = [asyncio.create_task(c) for c in work]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    except WebSocketDisconnect:
        pass
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return ended[0] if ended else None


async def close(websocket: WebSocket, how: tuple[int, str] | None) -> None:
    """Close with `how` (supervise's answer); nothing when the client already left."""
    if how is None:
        return
    try:
        await websocket.close(*how)
    except RuntimeError:
        pass  # already closed by the other side
