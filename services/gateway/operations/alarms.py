"""The alarm list: what operators must act on, from every service, acknowledged by a person.

Services publish protobuf `Alarm`s on `<prefix>.events.alarm.raised` (camera offline, storage
spool filling, authorisation expiring or expired, mask errors...). One durable JetStream consumer
("gateway-alarms"), shared by the gateway replicas, stores each in `gateway_alarms` and acks it only
once stored: an alarm raised while every gateway is down is listed when one comes back.

Repeats of an alarm that is still open (same kind, source and camera) are counted on it rather than
listed again; once acknowledged, the next occurrence opens a new alarm. A redelivered event (JetStream
sequence already counted) is recognised and not counted twice.

The gateway raises one kind itself: a burst of refused logins (CSU_FAILED_LOGIN_BURST_COUNT within
CSU_FAILED_LOGIN_BURST_MINUTES, read from the audit trail), published like any other alarm.
"""

import asyncio
import json
from datetime import timedelta

from nats.aio.msg import Msg
from sqlalchemy import Engine, func
from sqlmodel import col, select

from services.common import bus
from services.common.clock import Clock, to_us
from services.common.db import session
from services.common.log import get_logger
from services.common.pb.csu.v1.events_pb2 import Alarm as AlarmEvent
from services.common.timefmt import iso
from services.gateway.backends import Backends
from services.gateway.errors import Refusal
from services.gateway.identity.models import AuditEntry
from services.gateway.identity.security import ALL_GROUPS, Principal
from services.gateway.operations import notifications
from services.gateway.operations.access import groups_by_camera, sees_camera
from services.gateway.operations.models import Alarm

log = get_logger(__name__)
DURABLE = "gateway-alarms"
KIND = "alarm.raised"
BURST_KIND = "auth.failed_logins_burst"
BURST_CHECK_S = 15.0
READERS = ("camera_health",)


class AlarmError(Refusal):
    """A refusal of this domain (errors.Refusal: status and message)."""


def _clean(value: str, length: int) -> str:
    # Publishers are other services, but a NUL would still break PostgreSQL: drop control characters.
    return "".join(ch for ch in value if ch >= " " or ch in "\n\t")[:length]


def store(engine: Engine, event: AlarmEvent, seq: int, now_us: int) -> Alarm | None:
    """Record the event; the alarm it opened or counted on, or None for a redelivered event."""
    kind, source = _clean(event.kind, 64) or "unknown", _clean(event.source, 32) or "unknown"
    camera_id, message = _clean(event.camera_id, 64), _clean(event.message, 1000) or kind
    raised_us = event.raised_us or now_us
    key = (Alarm.kind == kind, Alarm.source == source, Alarm.camera_id == camera_id)
    with session(engine) as s:
        seen = s.exec(select(Alarm.id).where(*key).where(Alarm.first_seq <= seq).where(Alarm.last_seq >= seq)).first()
        if seen is not None:
            return None
        row = s.exec(select(Alarm).where(*key).where(col(Alarm.state) == "open").order_by(col(Alarm.id).desc())).first()
        if row is None:
            row = Alarm(
                kind=kind,
                source=source,
                camera_id=camera_id,
                message=message,
                first_raised_us=raised_us,
                last_raised_us=raised_us,
                first_seq=seq,
                last_seq=seq,
            )
        else:
            row.count += 1
            row.first_seq = min(row.first_seq, seq)
            row.last_seq = max(row.last_seq, seq)
            if raised_us >= row.last_raised_us:
                row.last_raised_us, row.message = raised_us, message
        s.add(row)
        s.commit()
        s.refresh(row)
        return row


def unknown(alarm_id: int) -> AlarmError:
    """The one answer for an alarm that does not exist and for one about a camera the caller may not see."""
    return AlarmError(404, f"unknown alarm {alarm_id}")


def get(engine: Engine, alarm_id: int) -> Alarm:
    with session(engine) as s:
        row = s.get(Alarm, alarm_id)
    if row is None:
        raise unknown(alarm_id)
    return row


def search(
    engine: Engine,
    *,
    state: str | None = None,
    kind: str | None = None,
    camera_id: str | None = None,
    after_id: int = 0,
    limit: int = 500,
) -> list[Alarm]:
    """Newest first (by last occurrence)."""
    query = select(Alarm)
    if after_id:
        query = query.where(col(Alarm.id) < after_id)
    if state:
        query = query.where(Alarm.state == state)
    if kind:
        query = query.where((Alarm.kind == kind) | Alarm.kind.startswith(kind + "."))
    if camera_id:
        query = query.where(Alarm.camera_id == camera_id)
    with session(engine) as s:
        return list(s.exec(query.order_by(col(Alarm.id).desc()).limit(limit)))


def acknowledge(engine: Engine, clock: Clock, alarm_id: int, actor: str, comment: str) -> Alarm:
    with session(engine) as s:
        row = s.get(Alarm, alarm_id, with_for_update=True)
        if row is None:
            raise unknown(alarm_id)
        if row.state != "open":
            raise AlarmError(409, f"alarm {alarm_id} was already acknowledged by {row.acked_by}")
        row.state, row.acked_by, row.acked_us, row.ack_comment = "acknowledged", actor, to_us(clock.now()), comment
        s.add(row)
        s.commit()
        s.refresh(row)
        return row


async def visible(principal: Principal, rows: list[Alarm]) -> list[Alarm]:
    """The alarms shown to the principal: about no camera, or about a camera they are habilitated for."""
    groups = None
    if ALL_GROUPS not in principal.camera_groups and any(r.camera_id for r in rows):
        groups = await groups_by_camera(principal)
    return [r for r in rows if sees_camera(principal, READERS, r.camera_id, groups)]


def notification(row: Alarm) -> dict[str, object]:
    return {
        "alarm_id": row.id,
        "kind": row.kind,
        "source": row.source,
        "message": row.message,
        "count": row.count,
        "state": row.state,
        "last_raised": iso(row.last_raised_us),
        "acked_by": row.acked_by,
    }


async def groups_of(b: Backends, camera_id: str) -> list[str]:
    if not camera_id:
        return []
    try:
        return list((await b.camera(camera_id)).groups)
    except Exception:  # noqa: BLE001 - unknown or unreachable: only all-camera consoles get the pop-up
        return []


# -- the consumer ----------------------------------------------------------------------------


async def consume(b: Backends, stop: asyncio.Event) -> None:
    """Store every alarm event, then ack it; until stopped."""
    assert b.js is not None

    async def handle(message: Msg) -> None:
        try:
            event = AlarmEvent.FromString(message.data)
        except Exception:  # noqa: BLE001 - a malformed event must not block the ones behind it
            log.warning("malformed alarm event dropped", subject=message.subject)
            return
        seq = message.metadata.sequence.stream
        # Raises while the database is away: the event stays unacked and comes back.
        row = await asyncio.to_thread(store, b.engine, event, seq, to_us(b.clock.now()))
        if row is not None:
            log.info("alarm", kind=row.kind, camera=row.camera_id, count=row.count)
            await notifications.publish(
                b, "alarm.raised", row.camera_id, await groups_of(b, row.camera_id), notification(row)
            )

    await bus.consume_events(b.js, b.settings.nats_prefix, KIND, DURABLE, handle, stop)


# -- refused logins ----------------------------------------------------------------------------


def refused_logins(engine: Engine, since_us: int) -> tuple[int, list[str]]:
    """How many logins were refused since then, and from which addresses. An aggregated entry
    (services/gateway/identity/refusals.py) stands for the count of refusals it summarises."""
    refused = (AuditEntry.action == "auth.login") & (AuditEntry.outcome == "refused") & (AuditEntry.time_us >= since_us)
    with session(engine) as s:
        count = s.exec(select(func.count()).select_from(AuditEntry).where(refused)).one()
        summaries = s.exec(select(AuditEntry.details_json).where(refused, AuditEntry.actor == "(summary)"))
        count += sum(int(json.loads(d).get("count", 1)) - 1 for d in summaries)
        origins = list(s.exec(select(AuditEntry.origin_ip).where(refused).distinct().limit(6)))
    return int(count), [o for o in origins if o]


async def watch_refused_logins(b: Backends, stop: asyncio.Event) -> None:
    """Raise a "failed logins burst" alarm when too many logins are refused in the window."""
    assert b.js is not None
    window = timedelta(minutes=b.settings.failed_login_burst_minutes)
    threshold = b.settings.failed_login_burst_count
    last_raised = None
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), BURST_CHECK_S)
            return
        except TimeoutError:
            pass
        now = b.clock.now()
        if last_raised is not None and now - last_raised < window:
            continue  # one alarm per window: the open alarm counts repeats
        try:
            count, origins = await asyncio.to_thread(refused_logins, b.engine, to_us(now - window))
        except Exception as exc:  # noqa: BLE001 - database away: next round
            log.warning("refused logins not counted", error=str(exc) or type(exc).__name__)
            continue
        if count < threshold:
            continue
        shown = ", ".join(origins[:5]) + (" ..." if len(origins) > 5 else "")
        event = AlarmEvent(
            kind=BURST_KIND,
            source="gateway",
            message=f"{count} refused logins in the last {b.settings.failed_login_burst_minutes} min"
            + (f" from {shown}" if shown else "")
            + ": see the audit trail (action auth.login, outcome refused)",
            raised_us=to_us(now),
        )
        try:
            await bus.publish_event(b.js, b.settings.nats_prefix, KIND, event.SerializeToString())
            last_raised = now
            log.warning("failed logins burst", count=count)
        except Exception as exc:  # noqa: BLE001 - NATS away: next round
            log.warning("failed logins burst alarm not published", error=str(exc) or type(exc).__name__)
