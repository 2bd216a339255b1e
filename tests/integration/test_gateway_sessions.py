"""Gateway sessions on the real database: expiry, revocation, and the OIDC ID tokens they keep.

An ID token is personal data held only as the provider's logout hint: a session forgets it when it
is revoked (logout) and, for sessions that ended without a logout, at the next login of anyone.
"""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from services.common import db
from services.common.clock import ManualClock
from services.common.settings import Settings
from services.gateway.identity import sessions
from services.gateway.identity.models import Session

IDLE_MINUTES, MAX_HOURS = 30, 12


@pytest.fixture
def engine(database_url: str, tmp_path: Path) -> Engine:
    settings = Settings(database_url=database_url, data_dir=tmp_path)  # type: ignore[call-arg]
    engine = db.make_engine(settings)
    db.migrate("gateway", engine)
    return engine


def _issue(engine: Engine, clock: ManualClock, user: str, sealed: str | None) -> str:
    return sessions.issue(engine, clock, user, "127.0.0.1", IDLE_MINUTES, MAX_HOURS, sealed).token


def _sealed(engine: Engine, token: str) -> str | None:
    with db.session(engine) as s:
        row = s.get(Session, sessions.session_id(token))
        assert row is not None
        return row.oidc_id_token_sealed


def test_ended_sessions_forget_their_id_token_at_the_next_login(engine: Engine) -> None:
    clock = ManualClock(datetime(2026, 11, 26, 8, tzinfo=UTC))
    kept_busy = _issue(engine, clock, "u-busy", "sealed-busy")
    idle = _issue(engine, clock, "u-idle", "sealed-idle")
    outlived = _issue(engine, clock, "u-long", "sealed-long")

    # 20 minutes on: nothing has ended yet, and a login changes nothing for the others.
    clock.advance(timedelta(minutes=20))
    assert sessions.resolve(engine, clock, kept_busy, IDLE_MINUTES) is not None
    assert sessions.resolve(engine, clock, outlived, IDLE_MINUTES) is not None
    _issue(engine, clock, "u-other", None)
    assert [_sealed(engine, t) for t in (kept_busy, idle, outlived)] == ["sealed-busy", "sealed-idle", "sealed-long"]

    # 11 more minutes: the idle session has been unused for 31 minutes, so it has ended.
    clock.advance(timedelta(minutes=11))
    assert sessions.resolve(engine, clock, idle, IDLE_MINUTES) is None
    assert sessions.resolve(engine, clock, kept_busy, IDLE_MINUTES) is not None
    assert _sealed(engine, idle) == "sealed-idle"  # nobody has logged in since
    _issue(engine, clock, "u-other", None)
    assert _sealed(engine, idle) is None
    assert _sealed(engine, kept_busy) == "sealed-busy"

    # Used every 20 minutes, the busy session still ends at its maximum age.
    while clock.now() < datetime(2026, 11, 26, 8 + MAX_HOURS, tzinfo=UTC) - timedelta(minutes=20):
        clock.advance(timedelta(minutes=20))
        assert sessions.resolve(engine, clock, kept_busy, IDLE_MINUTES) is not None
    clock.advance(timedelta(minutes=20))
    assert sessions.resolve(engine, clock, kept_busy, IDLE_MINUTES) is None
    fresh = _issue(engine, clock, "u-busy", "sealed-fresh")
    assert _sealed(engine, kept_busy) is None
    assert _sealed(engine, fresh) == "sealed-fresh"


def test_logout_hands_over_the_id_token_once(engine: Engine) -> None:
    clock = ManualClock(datetime(2026, 11, 26, 8, tzinfo=UTC))
    token = _issue(engine, clock, "u-1", "sealed-1")
    assert sessions.revoke(engine, clock, token) == "sealed-1"
    assert _sealed(engine, token) is None
    assert sessions.resolve(engine, clock, token, IDLE_MINUTES) is None
    assert sessions.revoke(engine, clock, token) is None  # a second logout has no hint to give

    others = [_issue(engine, clock, "u-2", f"sealed-2{n}") for n in range(2)]
    assert sessions.revoke_user(engine, clock, "u-2") == 2
    assert [_sealed(engine, t) for t in others] == [None, None]
