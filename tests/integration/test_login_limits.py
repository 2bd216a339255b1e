"""The login procedure's limits on the real database (SQLite, or PostgreSQL with DATABASE_URL):
attempts counted before the Argon2 hash under parallel load, TOTP failures on the same lock, a
correct password alone resetting nothing, TOTP time steps used once, and the per-address budget.

Parallel attempts are real threads on their own database connections, started together by a
barrier, as the gateway's worker threads run them."""

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyotp
import pytest
from sqlalchemy import Engine

from services.common import db
from services.common.clock import ManualClock
from services.common.secretbox import SecretBox
from services.common.settings import Settings
from services.gateway.identity import accounts, attempts, login
from services.gateway.identity.login import Attempt, Policy, Refused
from tests.support.together import at_once

PASSWORD = "a-long-Passw0rd-for-tests"
POLICY = Policy(require_totp=True, max_failures=5, lockout_minutes=15, address_max_failures=1000, address_window_s=600)


@pytest.fixture
def engine(database_url: str, tmp_path: Path) -> Engine:
    settings = Settings(database_url=database_url, data_dir=tmp_path)  # type: ignore[call-arg]
    engine = db.make_engine(settings)
    db.migrate("gateway", engine)
    return engine


@pytest.fixture
def box(tmp_path: Path) -> SecretBox:
    SecretBox.generate(tmp_path / "secrets.key")
    return SecretBox.from_file(tmp_path / "secrets.key")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 12, 2, 9, 0, 10, tzinfo=UTC))


def _user(engine: Engine, clock: ManualClock, name: str = "olivier", role: str = "operator") -> str:
    habilitation = accounts.Habilitation("test", ["*"], None, None, None)
    return accounts.create_user(
        engine, clock, username=name, display_name=name.title(), role=role, password=PASSWORD, habilitation=habilitation
    ).id


def _enrolled(engine: Engine, box: SecretBox, clock: ManualClock, name: str = "olivier") -> pyotp.TOTP:
    """An account with a confirmed authenticator; returns it (codes at the clock's time)."""
    _user(engine, clock, name)
    user = accounts.by_username(engine, name)
    assert user is not None
    secret = parse_secret(accounts.start_totp_enrolment(engine, box, user))
    accounts.update(engine, user.id, totp_confirmed=True)
    return pyotp.TOTP(secret)


def parse_secret(uri: str) -> str:
    return uri.split("secret=")[1].split("&")[0]


def _run(
    engine: Engine,
    box: SecretBox,
    clock: ManualClock,
    attempt: Attempt,
    mode: login.Mode = "login",
    policy: Policy = POLICY,
) -> str:
    """The outcome's status, or the refusal's audit reason."""
    try:
        return login.check(engine, box, clock, policy, attempt, mode).status
    except Refused as exc:
        return exc.reason


def _row(engine: Engine, name: str = "olivier") -> accounts.User:
    user = accounts.by_username(engine, name)
    assert user is not None
    return user


def test_thirty_parallel_wrong_passwords_get_five_evaluations(engine: Engine, box: SecretBox, clock: ManualClock):
    _user(engine, clock)
    # Each from its own address: only the account's limit is in play.
    outcomes = Counter(at_once(30, lambda i: _run(engine, box, clock, Attempt("olivier", f"guess-{i}", f"10.0.0.{i}"))))
    assert outcomes == {"wrong password": 5, "account locked after repeated failed logins": 25}, outcomes
    row = _row(engine)
    assert row.failed_logins == 5 and row.locked_until_us is not None
    # Locked: even the right password is refused, with the answer an unknown account gets.
    with pytest.raises(Refused) as locked:
        login.check(engine, box, clock, POLICY, Attempt("olivier", PASSWORD, "10.0.1.1"), "login")
    with pytest.raises(Refused) as unknown:
        login.check(engine, box, clock, POLICY, Attempt("nobody", PASSWORD, "10.0.1.2"), "login")
    assert (locked.value.status, locked.value.message) == (unknown.value.status, unknown.value.message)
    assert (locked.value.status, locked.value.message) == (401, "wrong username or password")
    # The user is told at their next login: every refused attempt counted (the lock's too).
    clock.advance(timedelta(minutes=15, seconds=1))
    done = login.check(
        engine, box, clock, replace(POLICY, require_totp=False), Attempt("olivier", PASSWORD, "x"), "login"
    )
    assert done.status == "ok" and done.failed_attempts == 31


def test_thirty_parallel_attempts_from_one_address_get_its_budget(engine: Engine, box: SecretBox, clock: ManualClock):
    policy = replace(POLICY, address_max_failures=10)

    def attempt(i: int) -> str:
        try:
            return login.check(
                engine, box, clock, policy, Attempt(f"ghost-{i}", "guessing", "203.0.113.9"), "login"
            ).status
        except Refused as exc:
            return f"{exc.status} {exc.reason}"

    outcomes = Counter(at_once(30, attempt))
    assert outcomes == {"401 unknown account": 10, "429 too many failed logins from this address": 20}, outcomes
    with pytest.raises(Refused) as throttled:
        login.check(engine, box, clock, policy, Attempt("ghost", "guessing", "203.0.113.9"), "login")
    assert throttled.value.retry_after_s == 600
    # Another address has a budget of its own; an IPv6 subscriber's whole /64 shares one.
    assert _run(engine, box, clock, Attempt("ghost", "guessing", "203.0.113.10"), policy=policy) == "unknown account"
    for n in range(10):
        ipv6 = Attempt("ghost", "guessing", f"2001:db8:1:2::{n:x}")
        assert _run(engine, box, clock, ipv6, policy=policy) == "unknown account"
    same_64 = Attempt("ghost", "guessing", "2001:db8:1:2:ffff::1")
    assert _run(engine, box, clock, same_64, policy=policy) == "too many failed logins from this address"
    # The window ends: the address may try again.
    clock.advance(timedelta(seconds=601))
    assert _run(engine, box, clock, Attempt("ghost", "guessing", "203.0.113.9"), policy=policy) == "unknown account"
    assert attempts.purge(engine, int(clock.now().timestamp() * 1e6), 600) >= 2


def test_wrong_totp_codes_lock_and_a_right_password_alone_resets_nothing(
    engine: Engine, box: SecretBox, clock: ManualClock
) -> None:
    totp = _enrolled(engine, box, clock)
    right, address = Attempt("olivier", PASSWORD, "10.1.0.1"), "10.1.0.1"
    assert _run(engine, box, clock, right) == "totp_required"
    assert _row(engine).failed_logins == 0  # the first step was no failure: given back
    wrong = f"{(int(totp.at(clock.now())) + 1) % 1_000_000:06d}"
    for _ in range(4):
        assert _run(engine, box, clock, Attempt("olivier", PASSWORD, address, wrong)) == "wrong TOTP code"
    assert _row(engine).failed_logins == 4
    assert _run(engine, box, clock, right) == "totp_required"
    assert _row(engine).failed_logins == 4  # the right password alone did not reset the counter
    outcome = login.check(
        engine, box, clock, POLICY, Attempt("olivier", PASSWORD, address, totp.at(clock.now())), "login"
    )
    assert outcome.status == "ok" and outcome.failed_attempts == 4
    assert _row(engine).failed_logins == 0  # only a fully successful login does

    # 30 wrong codes after the right password, in parallel: 5 evaluated, the account locked, and
    # the right code refused after them.
    clock.advance(timedelta(seconds=60))
    outcomes = Counter(
        at_once(30, lambda i: _run(engine, box, clock, Attempt("olivier", PASSWORD, f"10.2.0.{i}", wrong)))
    )
    assert outcomes == {"wrong TOTP code": 5, "account locked after repeated failed logins": 25}, outcomes
    refused = _run(engine, box, clock, Attempt("olivier", PASSWORD, "10.2.1.1", totp.at(clock.now())))
    assert refused == "account locked after repeated failed logins"


def test_a_totp_code_opens_one_session_even_in_parallel(engine: Engine, box: SecretBox, clock: ManualClock) -> None:
    totp = _enrolled(engine, box, clock)
    code = totp.at(clock.now())
    outcomes = Counter(
        at_once(3, lambda i: _run(engine, box, clock, Attempt("olivier", PASSWORD, f"10.3.0.{i}", code)))
    )
    assert outcomes == {"ok": 1, "TOTP code already used": 2}, outcomes
    # The previous step's code (still within the drift allowed) is refused too; the next is not.
    earlier = totp.at(clock.now() - timedelta(seconds=30))
    assert _run(engine, box, clock, Attempt("olivier", PASSWORD, "10.3.1.1", earlier)) == "TOTP code already used"
    clock.advance(timedelta(seconds=30))
    assert _run(engine, box, clock, Attempt("olivier", PASSWORD, "10.3.1.1", totp.at(clock.now()))) == "ok"
    # A manager's re-authentication uses the same steps: the code of that login is spent.
    assert _run(engine, box, clock, Attempt("olivier", PASSWORD, "10.3.1.1", totp.at(clock.now())), "reauth") == (
        "TOTP code already used"
    )


def test_reauthentication_counts_against_the_same_lock(engine: Engine, box: SecretBox, clock: ManualClock) -> None:
    totp = _enrolled(engine, box, clock, "marc")
    for n in range(5):
        assert _run(engine, box, clock, Attempt("marc", f"not-it-{n}", "10.4.0.1", "123456"), "reauth") == (
            "wrong password"
        )
    assert _run(engine, box, clock, Attempt("marc", PASSWORD, "10.4.0.2", totp.at(clock.now()))) == (
        "account locked after repeated failed logins"
    )


def test_a_lock_set_by_an_attempt_that_was_no_failure_is_lifted(
    engine: Engine, box: SecretBox, clock: ManualClock
) -> None:
    totp = _enrolled(engine, box, clock)
    for n in range(4):
        assert _run(engine, box, clock, Attempt("olivier", f"not-it-{n}", "10.5.0.1")) == "wrong password"
    # The fifth attempt reaches the limit (and locks while its hash is checked), but the password
    # is right: given back, lock lifted; the four failures still count.
    assert _run(engine, box, clock, Attempt("olivier", PASSWORD, "10.5.0.1")) == "totp_required"
    row = _row(engine)
    assert row.failed_logins == 4 and row.locked_until_us is None
    ok = login.check(
        engine, box, clock, POLICY, Attempt("olivier", PASSWORD, "10.5.0.1", totp.at(clock.now())), "login"
    )
    assert ok.status == "ok" and ok.failed_attempts == 4


def test_the_lock_runs_out_and_counting_starts_over(engine: Engine, box: SecretBox, clock: ManualClock) -> None:
    _user(engine, clock)
    for n in range(5):
        _run(engine, box, clock, Attempt("olivier", f"not-it-{n}", "10.6.0.1"))
    assert _run(engine, box, clock, Attempt("olivier", "not-it", "10.6.0.1")).startswith("account locked")
    clock.advance(timedelta(minutes=15))
    assert _run(engine, box, clock, Attempt("olivier", "still-not-it", "10.6.0.1")) == "wrong password"
    assert _row(engine).failed_logins == 1 and _row(engine).locked_until_us is None


def test_an_admin_reset_password_is_single_use(engine: Engine, box: SecretBox, clock: ManualClock) -> None:
    policy = replace(POLICY, require_totp=False)
    user_id = _user(engine, clock)
    one_time = accounts.generate_password("olivier", "Olivier")
    accounts.set_password(engine, user_id, one_time, must_change=True)
    assert login.check(engine, box, clock, policy, Attempt("olivier", one_time, "a"), "login").status == (
        "password_change_required"
    )
    for weak in ("123456789012", "password1234", "azertyuiop12", one_time):
        with pytest.raises(Refused) as refused:
            login.check(engine, box, clock, policy, Attempt("olivier", one_time, "a", new_password=weak), "login")
        assert refused.value.status == 422
    done = login.check(
        engine, box, clock, policy, Attempt("olivier", one_time, "a", new_password="Un-mot-de-passe-42!"), "login"
    )
    assert done.status == "ok" and done.new_password == "Un-mot-de-passe-42!"
