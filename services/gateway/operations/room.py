"""The viewing room's door: who entered and left, so the room knows who is inside now.

The field report: a controlled door, two agents on duty day and night, and every other entrant
declared to the prefecture beforehand (the register, operations/visitors.py). Agents record their
own entry at the start of their shift and their exit at its end; an agent on duty checks visitors in
and out against their declaration, which must have been validated by the prefecture and be for now.

A row is one stay in the room: open (exited_us NULL) while the person is inside. Visitors' rows
point at their declaration (the identity stays there, erased with it), agents' name their account.
A closed stay keeps these names for its retention period (`room_presence`, operations/retention.py),
then only its kind and times.
Nobody is inside twice at once: partial unique indexes hold it, whichever replica writes.
"""

from datetime import timedelta

from sqlalchemy import BigInteger, Column, Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.sql.expression import SelectOfScalar

from services.common.clock import Clock, to_us
from services.common.db import session
from services.common.timefmt import iso
from services.gateway.errors import Refusal
from services.gateway.operations import visitors
from services.gateway.operations.models import VisitorDeclaration

AGENT, VISITOR = "agent", "visitor"
# A visitor may be let in a little before the declared start (early at the door), not after the end.
EARLY_ARRIVAL = timedelta(hours=1)


class RoomPresence(SQLModel, table=True):
    __tablename__ = "gateway_room_presence"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16)  # "agent" or "visitor"
    username: str = Field(default="", max_length=64)  # agents: their account
    declaration_id: int | None = None  # visitors: their declaration in the register
    entered_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    entered_by: str = Field(max_length=160)
    exited_us: int | None = Field(default=None, sa_column=Column(BigInteger))
    exited_by: str = Field(default="", max_length=160)


class RoomError(Refusal):
    """A refusal of this domain (errors.Refusal: status and message)."""


def inside(engine: Engine) -> list[tuple[RoomPresence, VisitorDeclaration | None]]:
    """Who is in the room now, first in first; visitors with their declaration."""
    with session(engine) as s:
        rows = list(
            s.exec(
                select(RoomPresence).where(col(RoomPresence.exited_us) == None).order_by(col(RoomPresence.entered_us))  # noqa: E711
            )
        )
        return [(r, s.get(VisitorDeclaration, r.declaration_id) if r.declaration_id else None) for r in rows]


def on_duty(engine: Engine, username: str) -> RoomPresence | None:
    with session(engine) as s:
        return s.exec(
            select(RoomPresence)
            .where(RoomPresence.kind == AGENT, RoomPresence.username == username)
            .where(RoomPresence.exited_us == None)  # noqa: E711
        ).first()


def _insert(engine: Engine, row: RoomPresence, already: str) -> RoomPresence:
    with session(engine) as s:
        s.add(row)
        try:
            s.commit()
        except IntegrityError as exc:
            raise RoomError(409, already) from exc
        s.refresh(row)
        return row


def start_shift(engine: Engine, clock: Clock, username: str) -> RoomPresence:
    row = RoomPresence(kind=AGENT, username=username, entered_us=to_us(clock.now()), entered_by=username)
    return _insert(engine, row, shift_refusal(engine, username, starting=True) or f"{username} is already in the room")


def visitor_refusal(declaration: VisitorDeclaration, now_us: int) -> str | None:
    """Why the declared person may not be let in now, or None. The one place this rule lives."""
    ref = visitors.reference(declaration)
    if declaration.status == "pending":
        return f"declaration {ref} has no answer from the prefecture yet: {declaration.name} cannot be let in"
    if declaration.status != "validated":
        return f"declaration {ref} is {declaration.status}: {declaration.name} cannot be let in"
    if now_us < declaration.expected_start_us - EARLY_ARRIVAL.total_seconds() * 1e6:
        return f"declaration {ref} is for a visit from {iso(declaration.expected_start_us)}: too early"
    if now_us >= declaration.expected_end_us:
        return f"declaration {ref} was for a visit until {iso(declaration.expected_end_us)}: declare the visit again"
    return None


def admit(engine: Engine, clock: Clock, declaration_id: int, agent: str) -> VisitorDeclaration:
    """The visitor's declaration if the agent may let them in now; RoomError (nothing written) if not."""
    if on_duty(engine, agent) is None:
        raise RoomError(409, "only an agent on duty checks visitors in: start your shift in the room first")
    try:
        declaration = visitors.get(engine, declaration_id)
    except visitors.VisitorError as exc:
        raise RoomError(exc.status, exc.message) from exc
    refusal = visitor_refusal(declaration, to_us(clock.now()))
    if refusal is not None:
        raise RoomError(409, refusal)
    return declaration


def check_in(engine: Engine, clock: Clock, declaration: VisitorDeclaration, agent: str) -> RoomPresence:
    """Record the entry of a visitor `admit` let in."""
    row = RoomPresence(kind=VISITOR, declaration_id=declaration.id, entered_us=to_us(clock.now()), entered_by=agent)
    return _insert(engine, row, f"{declaration.name} ({visitors.reference(declaration)}) is already in the room")


def presence(engine: Engine, presence_id: int) -> RoomPresence:
    with session(engine) as s:
        row = s.get(RoomPresence, presence_id)
    if row is None:
        raise RoomError(404, f"unknown presence {presence_id}")
    return row


def _leave(engine: Engine, clock: Clock, query: SelectOfScalar[RoomPresence], by: str, missing: str) -> RoomPresence:
    with session(engine) as s:
        row = s.exec(query.with_for_update()).first()
        if row is None:
            raise RoomError(409, missing)
        row.exited_us, row.exited_by = to_us(clock.now()), by
        s.add(row)
        s.commit()
        s.refresh(row)
        return row


def end_shift(engine: Engine, clock: Clock, username: str) -> RoomPresence:
    query = (
        select(RoomPresence)
        .where(RoomPresence.kind == AGENT, RoomPresence.username == username)
        .where(RoomPresence.exited_us == None)  # noqa: E711
    )
    return _leave(engine, clock, query, username, f"{username} is not in the room: no shift to end")


def leaving(engine: Engine, presence_id: int) -> RoomPresence:
    """The visitor's stay that may end now; RoomError if there is none."""
    row = presence(engine, presence_id)
    if row.kind != VISITOR:
        raise RoomError(409, f"presence {presence_id} is an agent's: agents end their own shift")
    if row.exited_us is not None:
        raise RoomError(409, f"presence {presence_id} has already left the room")
    return row


def check_out(engine: Engine, clock: Clock, presence_id: int, agent: str) -> RoomPresence:
    query = select(RoomPresence).where(RoomPresence.id == presence_id).where(RoomPresence.exited_us == None)  # noqa: E711
    return _leave(engine, clock, query, agent, f"presence {presence_id} has already left the room")


def shift_refusal(engine: Engine, username: str, starting: bool) -> str | None:
    """Why the agent cannot start (or end) a shift now, or None."""
    inside_now = on_duty(engine, username) is not None
    if starting and inside_now:
        return f"{username} is already in the room (shift started): end it first"
    if not starting and not inside_now:
        return f"{username} is not in the room: no shift to end"
    return None


def declaration_of(engine: Engine, row: RoomPresence) -> VisitorDeclaration | None:
    if row.declaration_id is None:
        return None
    with session(engine) as s:
        return s.get(VisitorDeclaration, row.declaration_id)
