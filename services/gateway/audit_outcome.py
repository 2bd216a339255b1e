"""Audited actions carry their real outcome: ok, refused (with the reason) or failed.

Routes call `security.audit(...)` before acting, when the outcome is not yet known: a four-eyes
rule, say, is decided by the masking service inside the very call that acts. Recording "ok" at
that point put refusals in the trail as done (issue 23 item 6). So, during an HTTP request, the
audit helper does not write the entry yet; it writes an *intent* durably to a JetStream KV bucket
(fail closed: if that is impossible the action is refused with 503, as before), and this ASGI
middleware writes the one trail entry once the handler has decided, from the response's status:

- 2xx/3xx: `ok`;
- 4xx: `refused`, with the answer's detail as the reason (the action did not happen);
- 5xx or an exception: `failed`, with the detail or the exception's type.

The entry is written before the response starts. If that write fails after a success, the client
gets a 503 saying so, and the intent stays in the bucket: `sweep` turns intents older than
INTENT_GRACE_S into entries with outcome `unknown`, so an action that may have happened is never
missing from the trail. The entry reuses the intent's event id: the writer records an event id
once, so a sweep racing a late write cannot make two entries.

Entries with an outcome decided by the caller (refusals written by `authorize`, login failures)
and entries written outside an HTTP request (WebSockets, background tasks) are written at once.
"""

import asyncio
import json
import time
import uuid
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import nats.js.errors
from fastapi import HTTPException
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.kv import KeyValue
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common import audit as audit_events
from services.common.log import get_logger

log = get_logger(__name__)

# An intent older than this has lost its request (the gateway stopped mid-way): no request lasts
# this long before its response starts (every backend call has a deadline well under it).
INTENT_GRACE_S = 600.0
SWEEP_EVERY_S = 60.0
# A refusal's reason is the answer's detail; bounded so a hostile request cannot bloat the trail.
MAX_REASON = 500
UNAVAILABLE = "the audit trail is unavailable: the action was not performed"


def bucket_name(prefix: str) -> str:
    return f"{prefix}_audit_intents"


async def open_intents(js: JetStreamContext, prefix: str) -> KeyValue:
    name = bucket_name(prefix)
    try:
        return await js.key_value(name)
    except nats.js.errors.BucketNotFoundError:
        try:
            return await js.create_key_value(KeyValueConfig(bucket=name, history=1, storage=StorageType.FILE))
        except nats.js.errors.BadRequestError:
            return await js.key_value(name)  # another replica created it first


@dataclass
class _Request:
    # (event id, the entry's fields) of every deferred audit of this request.
    pending: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


_current: ContextVar[_Request | None] = ContextVar("audit_request", default=None)


async def _publish(b: Any, event_id: str, fields: dict[str, Any]) -> None:
    if b.js is None:
        raise HTTPException(503, UNAVAILABLE)
    try:
        await audit_events.record(b.js, b.settings.nats_prefix, b.clock, event_id=event_id, **fields)
    except audit_events.AuditUnavailable as exc:
        raise HTTPException(503, UNAVAILABLE) from exc


async def record(b: Any, fields: dict[str, Any]) -> None:
    """Write the entry now, or (an action whose outcome the request will decide) its intent."""
    request = _current.get()
    if request is None or fields.get("outcome", "ok") != "ok":
        await _publish(b, uuid.uuid4().hex, fields)
        return
    intents: KeyValue | None = getattr(b, "intents", None)
    if intents is None:
        raise HTTPException(503, UNAVAILABLE)
    event_id = uuid.uuid4().hex
    try:
        await intents.put(event_id, json.dumps({"at": time.time(), "fields": fields}, default=str).encode())
    except Exception as exc:
        raise HTTPException(503, UNAVAILABLE) from exc
    request.pending.append((event_id, fields))


async def _finish(b: Any, request: _Request, outcome: str, reason: str | None, status: int | None) -> bool:
    """Write the entries with their outcome; False if one could not be written."""
    written = True
    for event_id, fields in request.pending:
        details = dict(fields.get("details") or {})
        if reason is not None:
            details["reason"] = reason[:MAX_REASON]
        if status is not None:
            details["status"] = status
        try:
            await _publish(b, event_id, {**fields, "outcome": outcome, "details": details})
        except HTTPException:
            written = False  # the intent stays: the sweep records it
            continue
        try:
            await b.intents.delete(event_id)
        except Exception as exc:  # noqa: BLE001 - the sweep's entry would be a duplicate id, ignored
            log.warning("audit intent not cleared", event_id=event_id, error=str(exc) or type(exc).__name__)
    request.pending.clear()
    return written


def _detail(body: bytes) -> str:
    try:
        detail = json.loads(body).get("detail")
    except (ValueError, AttributeError):
        return body[:MAX_REASON].decode("utf-8", "replace")
    return detail if isinstance(detail, str) else json.dumps(detail, default=str)[:MAX_REASON]


class AuditOutcome:
    """ASGI middleware: the audited actions of a request get the outcome its response shows."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = _Request()
        token = _current.set(request)
        b = scope["app"].state.backends
        held: list[Message] = []
        state = {"replaced": False, "status": 0}

        async def send_decided(message: Message) -> None:
            if state["replaced"]:
                return  # the answer became a 503; the handler's body is dropped
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                if not request.pending:
                    await send(message)
                elif message["status"] < 400:
                    if await _finish(b, request, "ok", None, None):
                        await send(message)
                    else:
                        state["replaced"] = True
                        await _answer_503(send)
                else:
                    held.append(message)  # the reason is in the body: wait for it
                return
            if held:
                held.append(message)
                if not message.get("more_body", False):
                    body = b"".join(m.get("body", b"") for m in held[1:])
                    status = state["status"]
                    await _finish(b, request, "refused" if status < 500 else "failed", _detail(body), status)
                    for m in held:
                        await send(m)
                    held.clear()
                return
            await send(message)

        try:
            await self.app(scope, receive, send_decided)
        except BaseException as exc:
            if request.pending:
                await asyncio.shield(_finish(b, request, "failed", type(exc).__name__, None))
            raise
        finally:
            _current.reset(token)
        if request.pending:  # the handler sent no response at all (client gone)
            await _finish(b, request, "failed", "no response was sent", None)


async def _answer_503(send: Send) -> None:
    body = json.dumps(
        {
            "detail": "the action was performed but the audit trail could not record its outcome; "
            "it will be recorded as of unknown outcome"
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def sweep(b: Any, stop: asyncio.Event) -> None:
    """Record intents whose request never wrote an outcome (the gateway stopped mid-way)."""
    while not stop.is_set():
        try:
            await sweep_once(b, INTENT_GRACE_S)
        except Exception as exc:  # noqa: BLE001 - retried at the next round
            log.warning("audit intent sweep failed", error=str(exc) or type(exc).__name__)
        try:
            await asyncio.wait_for(stop.wait(), SWEEP_EVERY_S)
        except TimeoutError:
            pass


async def sweep_once(b: Any, grace_s: float) -> int:
    intents: KeyValue = b.intents
    try:
        keys = await intents.keys()
    except nats.js.errors.NoKeysError:
        return 0
    swept = 0
    for key in keys:
        try:
            entry = await intents.get(key)
        except nats.js.errors.KeyNotFoundError:
            continue  # its request finished meanwhile
        if not entry.value:
            continue
        intent = json.loads(entry.value)
        if time.time() - intent["at"] < grace_s:
            continue
        fields = intent["fields"]
        details = dict(fields.get("details") or {})
        details["reason"] = "the gateway stopped before the outcome was known"
        await _publish(b, key, {**fields, "outcome": "unknown", "details": details})
        await intents.delete(key)
        swept += 1
    return swept
