"""The requisition workflow's states and transitions.

    requested -> extracted -> requisition_received -> approved -> delivered -> closed
    plus expired (the buffer's deadline passed first), refused (by a manager) and cancelled.

Every transition is recorded with who, when and why (requisition_transitions); a transition the
table below does not allow is refused with a message saying what the request's state allows.
"""

from typing import Final

from services.common.refusals import Conflict

REQUESTED = "requested"
EXTRACTED = "extracted"
RECEIVED = "requisition_received"
APPROVED = "approved"
DELIVERED = "delivered"
CLOSED = "closed"
EXPIRED = "expired"
REFUSED = "refused"
CANCELLED = "cancelled"

ALLOWED: Final[dict[str, frozenset[str]]] = {
    REQUESTED: frozenset({EXTRACTED, EXPIRED, REFUSED, CANCELLED}),
    EXTRACTED: frozenset({RECEIVED, EXPIRED, REFUSED, CANCELLED}),
    RECEIVED: frozenset({APPROVED, REFUSED, CANCELLED}),
    APPROVED: frozenset({DELIVERED, REFUSED, CANCELLED}),
    DELIVERED: frozenset({CLOSED}),
    CLOSED: frozenset(),
    EXPIRED: frozenset(),
    REFUSED: frozenset(),
    CANCELLED: frozenset(),
}
STATES: Final = frozenset(ALLOWED)
TERMINAL: Final = frozenset(s for s, nexts in ALLOWED.items() if not nexts)
# While here, the extract is kept for the judicial procedure (no retention deadline).
LEGAL_HOLD: Final = frozenset({RECEIVED, APPROVED})
# The order of the main path, for lead times.
MAIN_PATH: Final = (REQUESTED, EXTRACTED, RECEIVED, APPROVED, DELIVERED, CLOSED)

# What the user was trying to do, for the refusal message.
_VERB = {
    EXTRACTED: "extract the footage",
    RECEIVED: "record the signed requisition",
    APPROVED: "approve",
    DELIVERED: "deliver",
    CLOSED: "close",
    EXPIRED: "expire",
    REFUSED: "refuse",
    CANCELLED: "cancel",
}


def check(number: str, current: str, target: str) -> None:
    """Raise Conflict (HTTP 409) unless current -> target is allowed."""
    if target in ALLOWED.get(current, frozenset()):
        return
    allowed = sorted(ALLOWED.get(current, frozenset()))
    after = f"; from {current} it may go to: {', '.join(allowed)}" if allowed else f"; {current} is final"
    raise Conflict(f"request {number} is {current}: cannot {_VERB.get(target, target)}{after}")
