"""Publishing audit events: durable on JetStream before the audited action goes ahead.

Any service may audit; the gateway's audit writer is the one consumer that turns the events into
the hash-chained trail. `record` returns only once JetStream has stored the event, and raises when
it cannot: the caller must then refuse the action (fail closed).
Design: docs/design/audit.md
"""

import json
import uuid
from typing import Any

from nats.js import JetStreamContext

from services.common import bus
from services.common.clock import Clock, to_us
from services.common.pb.csu.v1.audit_pb2 import AuditEvent

KIND = "audit"
# The archive's summary of retention's erasures, named here because the gateway checks the trail
# against the deletion proofs (compliance report).
RECORDING_ERASE = "recording.erase"


class AuditUnavailable(RuntimeError):
    """The audit trail could not be written; the audited action must not happen."""


async def record(
    js: JetStreamContext,
    prefix: str,
    clock: Clock,
    *,
    actor: str,
    role: str,
    action: str,
    target: str,
    outcome: str = "ok",
    origin_ip: str = "",
    partner: str = "",
    justification: str = "",
    recipient: str = "",
    details: dict[str, Any] | None = None,
    event_id: str | None = None,
) -> AuditEvent:
    event = AuditEvent(
        # A caller may choose the id (the gateway's intents, audit_outcome.py): the writer records
        # an event id once, so writing the same event twice makes one entry.
        id=event_id or uuid.uuid4().hex,
        time_us=to_us(clock.now()),
        actor=actor,
        role=role,
        origin_ip=origin_ip,
        partner=partner,
        action=action,
        target=target,
        justification=justification,
        recipient=recipient,
        outcome=outcome,
        details_json=json.dumps(details or {}, sort_keys=True, default=str),
    )
    try:
        await bus.publish_event(js, prefix, KIND, event.SerializeToString())
    except Exception as exc:
        raise AuditUnavailable(f"audit trail unavailable: {exc or type(exc).__name__}") from exc
    return event
