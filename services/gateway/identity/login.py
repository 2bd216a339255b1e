"""The one procedure that checks a local account's password and TOTP code.

Logging in, changing one's own password and a manager's re-authentication before signing all go
through `check`, so they share the same limits, the same lock and the same TOTP rule:

1. the client address's budget (CSU_LOGIN_ADDRESS_MAX_FAILURES per CSU_LOGIN_ADDRESS_WINDOW_S, in
   the database so every gateway replica shares it): past it, 429 with Retry-After;
2. the account's budget: the attempt is counted BEFORE its Argon2 hash is checked, by one
   conditional UPDATE (accounts.reserve_attempt), so parallel guesses cannot all be evaluated;
   the attempt that reaches CSU_LOGIN_MAX_FAILURES locks the account for CSU_LOCKOUT_MINUTES;
3. the password (Argon2id); 4. the TOTP code, whose time step is used up atomically: the same
   code, or an older one, never opens anything again (accounts.use_totp);
5. only a fully successful login resets the account's counter. A step that ends without a failure
   (right password, TOTP still to come) gives its attempt back: it was no failure. A wrong TOTP
   code after the right password is a failure like a wrong password (same counter, same lock).

What the caller is told does not depend on why an account refused: unknown, deactivated, locked
or wrong password all answer 401 "wrong username or password" after the same Argon2 work. The
lock is told by other means: the audit trail records each evaluated failure and an `auth.lock`
entry when an account locks (admins and auditors see it, and the failed-logins alarm counts the
refusals), and the user's next successful login says how many attempts failed since the last one
(`failed_attempts`, shown by the console).
"""

import asyncio
from dataclasses import dataclass
from typing import Literal

from fastapi import HTTPException
from sqlalchemy import Engine

from services.common.clock import Clock, from_us, to_us
from services.common.secretbox import SecretBox
from services.common.settings import Settings
from services.gateway.backends import Backends
from services.gateway.identity import accounts, attempts, passwords, refusals
from services.gateway.identity.models import User
from services.gateway.identity.roles import TOTP_ROLES
from services.gateway.identity.security import Principal, record

WRONG = "wrong username or password"
Mode = Literal["login", "reauth", "password"]
Status = Literal["ok", "totp_required", "totp_enrolment", "password_change_required"]


@dataclass(frozen=True)
class Policy:
    require_totp: bool
    max_failures: int
    lockout_minutes: int
    address_max_failures: int
    address_window_s: float

    @classmethod
    def of(cls, s: Settings) -> "Policy":
        return cls(
            require_totp=s.require_totp,
            max_failures=s.login_max_failures,
            lockout_minutes=s.lockout_minutes,
            address_max_failures=s.login_address_max_failures,
            address_window_s=s.login_address_window_s,
        )


@dataclass(frozen=True)
class Attempt:
    username: str
    password: str
    address: str
    totp: str | None = None
    new_password: str | None = None


@dataclass(frozen=True)
class Outcome:
    status: Status
    user: User
    # Attempts on the account that failed since its last successful login (told to the user).
    failed_attempts: int = 0
    otpauth_uri: str | None = None
    # A new password that passed the checks, for the caller to set once the change is audited.
    new_password: str | None = None


class Refused(accounts.AccountError):
    """A refused attempt: status and message for the caller, reason for the audit trail.

    evaluated: an account's password or code was checked (recorded one by one; otherwise the
    refusal is aggregated per address, services/gateway/identity/refusals.py). locked_now: this failure
    locked the account.
    """

    def __init__(
        self,
        status: int,
        message: str,
        reason: str,
        *,
        user: User | None = None,
        evaluated: bool = False,
        locked_now: bool = False,
        retry_after_s: int | None = None,
    ) -> None:
        super().__init__(status, message)
        self.reason = reason
        self.user = user
        self.evaluated = evaluated
        self.locked_now = locked_now
        self.retry_after_s = retry_after_s

    def http(self, prefix: str = "") -> HTTPException:
        headers = {"Retry-After": str(self.retry_after_s)} if self.retry_after_s is not None else None
        return HTTPException(self.status, prefix + self.message, headers=headers)


def check(engine: Engine, box: SecretBox, clock: Clock, policy: Policy, attempt: Attempt, mode: Mode) -> Outcome:
    """Run one attempt through the limits, the password and the second factor (blocking: Argon2)."""
    try:
        ticket = attempts.reserve(
            engine, to_us(clock.now()), attempt.address, policy.address_max_failures, policy.address_window_s
        )
    except attempts.Throttled as exc:
        raise Refused(
            429,
            f"too many failed logins from your address: try again in {exc.retry_after_s} s",
            "too many failed logins from this address",
            retry_after_s=exc.retry_after_s,
        ) from None
    user = accounts.by_username(engine, attempt.username)
    if user is None or not user.active or user.kind != accounts.LOCAL:
        accounts.password_matches(None, attempt.password)  # the same work as a wrong password
        reason = "unknown account" if user is None else ("deactivated account" if not user.active else "oidc account")
        raise Refused(401, WRONG, reason, user=user)
    reservation = accounts.reserve_attempt(engine, clock, user.id, policy.max_failures, policy.lockout_minutes)
    account_id = user.id
    if reservation is None:
        accounts.password_matches(None, attempt.password)
        raise Refused(401, WRONG, "account locked after repeated failed logins", user=user)

    def failed(message: str, reason: str) -> Refused:
        # The attempt stays counted: it was a failure.
        return Refused(401, message, reason, user=user, evaluated=True, locked_now=reservation.locks)

    def no_failure() -> None:
        accounts.give_back_attempt(engine, account_id, policy.max_failures)
        attempts.give_back(engine, ticket)

    if not accounts.password_matches(user, attempt.password):
        raise failed(WRONG, "wrong password")
    new_password = attempt.new_password if mode == "password" or user.must_change_password else None
    if mode == "login" and user.must_change_password and new_password is None:
        no_failure()
        return Outcome("password_change_required", user)
    if new_password is not None:
        problem = new_password_problem(user, attempt.password, new_password)
        if problem is not None:
            no_failure()
            raise Refused(422, problem, "the new password was refused", user=user)

    if mode == "login":
        needs_totp = policy.require_totp and user.role in TOTP_ROLES
    elif mode == "reauth":
        needs_totp = policy.require_totp or user.totp_confirmed
    else:
        needs_totp = False  # a signed-in user changing their password: the session had its second factor
    if needs_totp:
        if attempt.totp is None or not user.totp_confirmed:
            if mode == "reauth":
                no_failure()
                raise Refused(401, "your current TOTP code is needed", "missing TOTP code", user=user)
            if not user.totp_confirmed and attempt.totp is None:
                uri = accounts.start_totp_enrolment(engine, box, user)
                no_failure()
                return Outcome("totp_enrolment", user, otpauth_uri=uri)
            if attempt.totp is None:
                no_failure()
                return Outcome("totp_required", user)
        used = accounts.use_totp(engine, box, user, attempt.totp, clock)
        if used == "wrong":
            raise failed("wrong TOTP code", "wrong TOTP code")
        if used == "replayed":
            raise failed("this TOTP code has already been used: wait for the next one", "TOTP code already used")
        if not user.totp_confirmed:
            accounts.update(engine, user.id, totp_confirmed=True)

    user = accounts.login_succeeded(engine, user, attempt.password)
    attempts.give_back(engine, ticket)
    failures = max(0, reservation.failures_since_login - 1)
    return Outcome("ok", user, failed_attempts=failures, new_password=new_password)


def new_password_problem(user: User, current: str, new: str) -> str | None:
    if new == current:
        return "the new password must differ from the current one"
    return passwords.weakness(new, [user.username, user.display_name])


# -- from the routes ------------------------------------------------------------------------------


async def login(b: Backends, attempt: Attempt) -> Outcome:
    """A console or API login; refusals are audited (`auth.login`) and raised as Refused."""
    try:
        return await asyncio.to_thread(check, b.engine, b.box, b.clock, Policy.of(b.settings), attempt, "login")
    except Refused as exc:
        await _audit_refusal(b, exc, attempt, "auth.login")
        raise


async def reauthenticate(b: Backends, principal: Principal, password: str, totp: str | None) -> User:
    """The signed-in user proves again who they are (a manager before signing): the same limits,
    lock and TOTP rule as a login. Refused is raised for the caller to audit under its own action."""
    attempt = Attempt(principal.username, password, principal.ip, totp or None)
    try:
        outcome = await asyncio.to_thread(check, b.engine, b.box, b.clock, Policy.of(b.settings), attempt, "reauth")
    except Refused as exc:
        await _audit_lock(b, exc, attempt)
        raise
    return outcome.user


async def check_current_password(b: Backends, principal: Principal, current: str, new: str) -> Outcome:
    """A signed-in user about to change their own password: the current one is checked like a
    login, the new one like any password; the caller audits, then sets outcome.new_password."""
    attempt = Attempt(principal.username, current, principal.ip, new_password=new)
    try:
        return await asyncio.to_thread(check, b.engine, b.box, b.clock, Policy.of(b.settings), attempt, "password")
    except Refused as exc:
        await _audit_lock(b, exc, attempt)
        raise


async def _audit_refusal(b: Backends, exc: Refused, attempt: Attempt, action: str) -> None:
    if not exc.evaluated:
        # No account's secret was checked: anyone can cause these, so they are aggregated.
        await refusals.refused(
            b,
            action=action,
            origin_ip=attempt.address,
            reason=exc.reason,
            sample=attempt.username,
            actor=attempt.username,
            role="",
            target=f"user:{attempt.username}",
        )
        return
    try:
        await record(
            b,
            actor=attempt.username,
            role=exc.user.role if exc.user else "",
            origin_ip=attempt.address,
            action=action,
            target=f"user:{attempt.username}",
            outcome="refused",
            details={"reason": exc.reason},
        )
    except HTTPException:
        pass  # the refusal stands whether or not it could be recorded
    await _audit_lock(b, exc, attempt)


async def _audit_lock(b: Backends, exc: Refused, attempt: Attempt) -> None:
    """The failure that locked an account: one entry, for admins and auditors."""
    if not exc.locked_now:
        return
    until = to_us(b.clock.now()) + b.settings.lockout_minutes * 60_000_000
    try:
        await record(
            b,
            actor="system",
            role="",
            origin_ip=attempt.address,
            action="auth.lock",
            target=f"user:{attempt.username}",
            details={
                "reason": f"{b.settings.login_max_failures} failed logins since the last successful one",
                "last_failure": exc.reason,
                "locked_until": from_us(until).isoformat(),
            },
        )
    except HTTPException:
        pass
