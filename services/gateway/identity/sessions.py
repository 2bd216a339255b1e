"""Sessions: opaque bearer tokens, short-lived, revocable at once.

The token is 32 random bytes; only its SHA-256 is stored. A session expires after
session_idle_minutes without use and, in any case, session_max_hours after login. Every request
checks the row, so revoking a session (or an account, or a partner) takes effect on the next
request.
"""

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Engine, not_, or_, update
from sqlmodel import col, select

from services.common.clock import Clock, to_us
from services.common.db import session
from services.common.timefmt import HOUR_US
from services.gateway.identity.models import Session


@dataclass(frozen=True)
class Issued:
    token: str
    expires_us: int


def session_id(token: str) -> str:
    """The row id of a token: its SHA-256, so the table never holds a usable token."""
    return hashlib.sha256(token.encode()).hexdigest()


def _ended(now: int, idle_minutes: int) -> ColumnElement[bool]:
    """The one rule for a session that is over without a logout: past its maximum age, or unused
    for longer than the idle limit. resolve refuses such sessions; issue forgets their ID tokens."""
    return or_(col(Session.expires_us) <= now, col(Session.last_used_us) < now - idle_minutes * 60_000_000)


def issue(
    engine: Engine,
    clock: Clock,
    user_id: str,
    ip: str,
    idle_minutes: int,
    max_hours: float,
    oidc_id_token_sealed: str | None = None,
) -> Issued:
    token = secrets.token_urlsafe(32)
    now = to_us(clock.now())
    row = Session(
        id=session_id(token),
        user_id=user_id,
        created_us=now,
        last_used_us=now,
        expires_us=now + int(max_hours * HOUR_US),
        ip=ip,
        oidc_id_token_sealed=oidc_id_token_sealed,
    )
    with session(engine) as s:
        s.add(row)
        # The ID tokens of sessions that ended without a logout (past their end, or idle too long)
        # are of no use any more and hold personal data: forgotten at the next login, anyone's, as
        # revoke forgets its own.
        s.exec(
            update(Session)
            .where(col(Session.oidc_id_token_sealed).is_not(None), _ended(now, idle_minutes))
            .values(oidc_id_token_sealed=None)
        )
        s.commit()
    return Issued(token, min(row.expires_us, now + idle_minutes * 60_000_000))


def resolve(engine: Engine, clock: Clock, token: str, idle_minutes: int) -> Session | None:
    """The live session of a token (and mark it used), or None."""
    now = to_us(clock.now())
    with session(engine) as s:
        not_revoked = col(Session.revoked_us).is_(None)
        live = (Session.id == session_id(token), not_revoked, not_(_ended(now, idle_minutes)))
        row = s.exec(select(Session).where(*live)).first()
        if row is None:
            return None
        row.last_used_us = now
        s.add(row)
        s.commit()
        return row


def revoke(engine: Engine, clock: Clock, token: str) -> str | None:
    """Revoke the session; returns its sealed OIDC ID token (None for a password login), which the
    session no longer keeps: it is the provider's logout hint, needed once."""
    with session(engine) as s:
        row = s.get(Session, session_id(token))
        if row is None:
            return None
        sealed = row.oidc_id_token_sealed
        row.revoked_us, row.oidc_id_token_sealed = to_us(clock.now()), None
        s.add(row)
        s.commit()
        return sealed


def revoke_user(engine: Engine, clock: Clock, user_id: str) -> int:
    """Revoke every session of an account; returns how many were live."""
    return revoke_others(engine, clock, user_id, None)


def revoke_others(engine: Engine, clock: Clock, user_id: str, keep_token: str | None) -> int:
    """Revoke every session of an account but the one of keep_token; returns how many were live."""
    now = to_us(clock.now())
    kept = session_id(keep_token) if keep_token else ""
    with session(engine) as s:
        open_rows = select(Session).where(
            Session.user_id == user_id,
            col(Session.revoked_us).is_(None),
            Session.id != kept,
        )
        live = list(s.exec(open_rows))
        for row in live:
            row.revoked_us, row.oidc_id_token_sealed = now, None
            s.add(row)
        s.commit()
        return len(live)
