"""Moving a requisition or a citizen's request to another state, with who, when and why on record.

The state tables and their checks are each workflow's own (workflow.py, citizens.py); recording
the move is the same for both: one row in requisition_transitions per change.
"""

from sqlmodel import Session, col, select

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
    from_state, row.state = row.state, target
    return _add(s, kind, row, from_state, actor, now_us, reason)


def opened(
    s: Session,
    kind: str,
    row: Requisition | CitizenRequest,
    actor: requisition_pb2.Actor,
    now_us: int,
    reason: str,
) -> Transition:
    """Add the first transition of a new `row`, from no state to the one it was created in (the caller commits)."""
    return _add(s, kind, row, "", actor, now_us, reason)


def _add(
    s: Session,
    kind: str,
    row: Requisition | CitizenRequest,
    from_state: str,
    actor: requisition_pb2.Actor,
    now_us: int,
    reason: str,
) -> Transition:
    transition = Transition(
        subject_kind=kind,
        subject_id=row.id,
        from_state=from_state,
        to_state=row.state,
        actor=actor.username,
        role=actor.role,
        at_us=now_us,
        reason=reason,
    )
    s.add(row)
    s.add(transition)
    return transition


def of(s: Session, kind: str, subject_id: str) -> list[Transition]:
    """A requisition's or a citizen request's transitions, oldest first."""
    query = (
        select(Transition)
        .where(Transition.subject_kind == kind, Transition.subject_id == subject_id)
        .order_by(col(Transition.at_us), col(Transition.id))
    )
    return list(s.exec(query))


def message(t: Transition) -> requisition_pb2.Transition:
    return requisition_pb2.Transition(
        from_state=t.from_state, to_state=t.to_state, actor=t.actor, role=t.role, at_us=t.at_us, reason=t.reason
    )
