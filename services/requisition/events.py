"""Durable notices of what the service did: state changes (<prefix>.events.requisition.state),
audit records of its own actions (purges at a deadline), and alarms (citizen deadlines).

State changes are recorded in the database first (requisition_transitions): the event is a notice
for other consumers, published after the commit, best effort. Audit records of automatic purges
are published before the purge; if the trail is unreachable the purge still happens on time (the
legal deadline wins) and is recorded in the signed register, and the failure is logged.
"""

from typing import Any

from services.common import audit, bus
from services.common.clock import to_us
from services.common.log import get_logger
from services.common.pb.csu.v1 import requisition_pb2
from services.common.pb.csu.v1.events_pb2 import Alarm
from services.requisition import transitions
from services.requisition.context import Context
from services.requisition.models import Transition

log = get_logger(__name__)
SOURCE = "requisition"


async def state_changed(ctx: Context, kind: str, subject_id: str, number: str, t: Transition) -> None:
    if ctx.js is None:
        return
    event = requisition_pb2.RequisitionStateChanged(
        kind=kind,
        id=subject_id,
        number=number,
        transition=transitions.message(t),
    )
    try:
        await bus.publish_event(ctx.js, ctx.prefix, "requisition.state", event.SerializeToString())
    except Exception as exc:  # noqa: BLE001 - the transition is committed; the event is a notice
        log.warning("state event not published", id=subject_id, error=str(exc) or type(exc).__name__)


async def system_audit(ctx: Context, action: str, target: str, details: dict[str, Any]) -> bool:
    """Audit an automatic action (actor "system"); False when the trail could not be reached."""
    if ctx.js is None:
        log.warning("audit trail not connected; automatic action recorded in the register only", action=action)
        return False
    try:
        await audit.record(
            ctx.js, ctx.prefix, ctx.clock, actor="system", role="", action=action, target=target, details=details
        )
        return True
    except audit.AuditUnavailable as exc:
        log.warning("automatic action not audited (trail unavailable)", action=action, error=str(exc))
        return False


async def alarm(ctx: Context, kind: str, message: str) -> None:
    log.warning("alarm", kind=kind, message=message)
    if ctx.js is None:
        return
    raised = Alarm(kind=kind, source=SOURCE, message=message, raised_us=to_us(ctx.clock.now()))
    try:
        await bus.publish_event(ctx.js, ctx.prefix, "alarm.raised", raised.SerializeToString())
    except Exception as exc:  # noqa: BLE001 - the log line above is the fallback record
        log.warning("alarm not published", kind=kind, error=str(exc) or type(exc).__name__)
