"""Moving a requisition or a citizen's request to another state, with who, when and why on record.

The state tables and their checks are each workflow's own (workflow.py, citizens.py); recording
the move is the same for both: one row in requisition_transitions per change.
"""

from sqlmodel import Session, select

from services.common.pb.csu.v1 import requisition_pb2
from services.requisition.models import CitizenRequest, Requisition, Transition


def record(
    s: Session,
    kind: str,
    row: Requisition | CitizenRequest,
    target: str,
    actor: requisition_pb2.Actor,
    now_us: int,
    reason: str,
) -> Transition:
    """Set `row`'s state to `target` and add the transition to the session (the caller commits)."""
    transition = Transition(
        subject_kind=kind,
        subject_id=row.id,
        from_state=row.state,
        to_state=target,
        actor=actor.username,
        role=actor.role,
        at_us=now_us,
        reason=reason,
    )
    row.state = target
    s.add(transition)
    s.add(row)
    return transition


def of(s: Session, kind: str, subject_id: str) -> list[Transition]:
    """A requisition's or a citizen request's transitions, oldest first."""
    query = (
        select(Transition)
        .where(Transition.subject_kind == kind, Transition.subject_id == subject_id)
        .order_by(Transition.at_us, Transition.id)
    )
    return list(s.exec(query))


def message(t: Transition) -> requisition_pb2.Transition:
    return requisition_pb2.Transition(
        from_state=t.from_state, to_state=t.to_state, actor=t.actor, role=t.role, at_us=t.at_us, reason=t.reason
    )
