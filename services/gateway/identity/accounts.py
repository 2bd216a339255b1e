"""Accounts: passwords (Argon2id), the attempt counter and lock, TOTP, habilitations, and the
first admin.

Only this module reads or writes gateway_users. Each function takes the engine and returns plain
values or raises AccountError with a message fit for the user. The login procedure that puts the
attempt counter, the password and the TOTP code together is services/gateway/identity/login.py.
"""

import hmac
import re
import secrets
import unicodedata
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Engine, case, func
from sqlalchemy import update as sql_update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from services.common.clock import Clock, to_us
from services.common.db import session
from services.common.secretbox import SecretBox
from services.common.settings import check_camera_groups
from services.gateway.errors import Refusal
from services.gateway.identity import passwords
from services.gateway.identity.models import User
from services.gateway.identity.roles import ROLES

_HASHER = PasswordHasher()  # Argon2id with the library's current recommended parameters
# Checked when no account's hash is: unknown or locked accounts cost the same time as a wrong
# password, so the answer's timing does not tell them apart either.
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))
MIN_PASSWORD_LENGTH = passwords.MIN_LENGTH
TOTP_ISSUER = "CSU"
LOCAL = "local"
OIDC = "oidc"
_USERNAME_CHARS = re.compile(r"[^a-z0-9._-]+")


class AccountError(Refusal):
    """A refusal a user can act on; status is the HTTP status to answer with."""


@dataclass(frozen=True)
class Habilitation:
    granted_by: str
    camera_groups: list[str]
    expires_us: int | None
    prefecture_ref: str | None
    prefecture_validated_us: int | None
    playback_days: int | None = None
    ptz_priority: int | None = None


def check_habilitation(role: str | None, camera_groups: Iterable[str] | None) -> None:
    """AccountError (422) for an unknown role or an invalid camera group name (None: not given)."""
    if role is not None and role not in ROLES:
        raise AccountError(422, f"unknown role {role!r}; roles: {', '.join(sorted(ROLES))}")
    try:
        check_camera_groups(camera_groups or [])
    except ValueError as exc:
        raise AccountError(422, str(exc)) from None


def check_password_strength(password: str, username: str, display_name: str = "") -> None:
    """422 when the password is too easy to guess (services/gateway/identity/passwords.py)."""
    problem = passwords.weakness(password, [username, display_name])
    if problem is not None:
        raise AccountError(422, problem)


def count(engine: Engine) -> int:
    with session(engine) as s:
        return s.exec(select(func.count()).select_from(User)).one()


def create_user(
    engine: Engine,
    clock: Clock,
    *,
    username: str,
    display_name: str,
    role: str,
    password: str,
    habilitation: Habilitation,
) -> User:
    check_habilitation(role, habilitation.camera_groups)
    check_password_strength(password, username, display_name)
    now = to_us(clock.now())
    user = User(
        id=uuid.uuid4().hex,
        username=username,
        display_name=display_name,
        role=role,
        password_hash=_HASHER.hash(password),
        created_us=now,
        granted_by=habilitation.granted_by,
        granted_us=now,
        camera_groups=list(habilitation.camera_groups),
        expires_us=habilitation.expires_us,
        prefecture_ref=habilitation.prefecture_ref,
        prefecture_validated_us=habilitation.prefecture_validated_us,
        playback_days=habilitation.playback_days,
        ptz_priority=habilitation.ptz_priority,
    )
    with session(engine) as s:
        if s.exec(select(User).where(User.username == username)).first() is not None:
            raise AccountError(409, f"an account named {username!r} already exists")
        s.add(user)
        s.commit()
    return user


def get(engine: Engine, user_id: str) -> User | None:
    with session(engine) as s:
        return s.get(User, user_id)


def by_username(engine: Engine, username: str) -> User | None:
    with session(engine) as s:
        return s.exec(select(User).where(User.username == username)).first()


def all_users(engine: Engine) -> list[User]:
    with session(engine) as s:
        return list(s.exec(select(User).order_by(User.username)))


def update(engine: Engine, user_id: str, **changes: object) -> User:
    with session(engine) as s:
        user = s.get(User, user_id)
        if user is None:
            raise AccountError(404, "unknown account")
        for name, value in changes.items():
            setattr(user, name, value)
        s.add(user)
        s.commit()
        s.refresh(user)
        return user


# -- login attempts ---------------------------------------------------------------------------
# One conditional UPDATE checks and counts at once, BEFORE the Argon2 hash is checked: parallel
# attempts each take a place under the limit or are refused without a hash being checked, so 30
# parallel guesses get login_max_failures evaluations, on SQLite and PostgreSQL alike (both apply
# an UPDATE to a row one transaction at a time and RETURNING reports what it wrote).


@dataclass(frozen=True)
class Reservation:
    count: int  # failed_logins with this attempt counted
    locks: bool  # this attempt reached the limit: the account stays locked unless it succeeds
    failures_since_login: int  # attempts that failed since the last successful login, this one included


def reserve_attempt(
    engine: Engine, clock: Clock, user_id: str, max_failures: int, lockout_minutes: int
) -> Reservation | None:
    """Count one login attempt on the account; None when it is locked (nothing counted then but
    failures_since_login). The attempt that reaches max_failures sets the lock itself, so a crash
    before its outcome leaves the account locked for lockout_minutes, never open."""
    now = to_us(clock.now())
    lock_over = col(User.locked_until_us).is_not(None)
    # After a lock has run out, counting starts over.
    counted = case((lock_over, 1), else_=User.failed_logins + 1)
    statement = (
        sql_update(User)
        .where(
            col(User.id) == user_id,
            col(User.locked_until_us).is_(None) | (col(User.locked_until_us) <= now),
        )
        .values(
            failed_logins=counted,
            locked_until_us=case((counted >= max_failures, now + lockout_minutes * 60_000_000), else_=None),
            failures_since_login=User.failures_since_login + 1,
        )
        .returning(col(User.failed_logins), col(User.failures_since_login))
    )
    with engine.begin() as conn:
        row = conn.execute(statement).first()
        if row is None:
            conn.execute(
                sql_update(User)
                .where(col(User.id) == user_id)
                .values(failures_since_login=User.failures_since_login + 1)
            )
            return None
    return Reservation(count=row[0], locks=row[0] >= max_failures, failures_since_login=row[1])


def give_back_attempt(engine: Engine, user_id: str, max_failures: int) -> None:
    """The attempt was no failure (right password, second factor still to come): it no longer
    counts, and a lock it alone had set is lifted. Earlier failures still count."""
    fewer = col(User.failed_logins) - 1
    with engine.begin() as conn:
        conn.execute(
            sql_update(User)
            .where(col(User.id) == user_id, col(User.failed_logins) > 0)
            .values(
                failed_logins=fewer,
                locked_until_us=case((fewer < max_failures, None), else_=User.locked_until_us),
                failures_since_login=case((col(User.failures_since_login) > 0, User.failures_since_login - 1), else_=0),
            )
        )


def password_matches(user: User | None, password: str) -> bool:
    """Argon2id check of the account's password; with None, the same work against a dummy hash."""
    try:
        return _HASHER.verify(user.password_hash if user is not None else _DUMMY_HASH, password) and user is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def login_succeeded(engine: Engine, user: User, password: str) -> User:
    """A fully successful login (or re-authentication): the counter and the lock are reset, and the
    hash renewed when Argon2's recommended parameters have moved on."""
    changes: dict[str, object] = {"failed_logins": 0, "locked_until_us": None, "failures_since_login": 0}
    if _HASHER.check_needs_rehash(user.password_hash):
        changes["password_hash"] = _HASHER.hash(password)
    with engine.begin() as conn:
        conn.execute(sql_update(User).where(col(User.id) == user.id).values(**changes))
    return get(engine, user.id) or user


def set_password(engine: Engine, user_id: str, password: str, must_change: bool) -> User:
    """A new password (the user's own change, or an admin's reset when must_change): the lock and
    counter start afresh."""
    return update(
        engine,
        user_id,
        password_hash=_HASHER.hash(password),
        must_change_password=must_change,
        failed_logins=0,
        locked_until_us=None,
    )


@dataclass(frozen=True)
class OidcIdentity:
    """Who the identity provider says logged in (from a validated ID token)."""

    issuer: str
    subject: str
    username_hint: str
    display_name: str


def _username_candidates(hint: str) -> list[str]:
    ascii_hint = unicodedata.normalize("NFKD", hint).encode("ascii", "ignore").decode().lower()  # élodie -> elodie
    base = _USERNAME_CHARS.sub("-", ascii_hint).strip("-._")[:56] or "oidc-user"
    if len(base) < 2:
        base = f"oidc-{base}"
    # A local account of the same name is someone else (or the same person's local account): the
    # provider's user never takes it over, they get a name of their own.
    return [base, f"{base}-oidc", *(f"{base}-oidc{n}" for n in range(2, 100))]


def upsert_oidc_user(
    engine: Engine, clock: Clock, identity: OidcIdentity, role: str, camera_groups: list[str], granted_by: str
) -> tuple[User, bool]:
    """The account linked to this provider identity, created at its first login; returns (user, created).

    Role and camera groups follow the provider's groups at every login (the provider is where the
    city manages them). The prefecture's validation and the expiry are recorded here by an admin,
    as for local accounts: a new account has none, so it sees no video until then.
    """
    if role not in ROLES:
        raise AccountError(500, f"the OIDC role map names an unknown role {role!r}")
    now = to_us(clock.now())
    for _attempt in range(2):  # a concurrent first login of the same user may win the insert
        with session(engine) as s:
            user = s.exec(
                select(User).where(User.oidc_issuer == identity.issuer, User.oidc_subject == identity.subject)
            ).first()
            if user is not None:
                user.display_name = identity.display_name[:128] or user.display_name
                if user.role != role or sorted(user.camera_groups) != sorted(camera_groups):
                    # A changed habilitation is granted anew, here by the provider's group membership.
                    user.role, user.camera_groups = role, list(camera_groups)
                    user.granted_by, user.granted_us = granted_by[:64], now
                s.add(user)
                s.commit()
                s.refresh(user)
                return user, False
            candidates = _username_candidates(identity.username_hint)
            taken = set(s.exec(select(col(User.username)).where(col(User.username).in_(candidates))))
            username = next((c for c in candidates if c not in taken), None)
            if username is None:
                raise AccountError(409, f"no free account name for {identity.username_hint!r}: ask an admin")
            user = User(
                id=uuid.uuid4().hex,
                username=username,
                display_name=identity.display_name[:128] or username,
                role=role,
                password_hash="",  # no password here: the provider authenticates
                created_us=now,
                granted_by=granted_by[:64],
                granted_us=now,
                camera_groups=list(camera_groups),
                kind=OIDC,
                oidc_issuer=identity.issuer,
                oidc_subject=identity.subject,
            )
            s.add(user)
            try:
                s.commit()
            except IntegrityError:
                s.rollback()
                continue
            s.refresh(user)
            return user, True
    raise AccountError(409, "this account is being created by another login at the same time: try again")


def start_totp_enrolment(engine: Engine, box: SecretBox, user: User) -> str:
    """A new TOTP secret for the account (not active until confirmed); returns its otpauth:// URI."""
    secret = pyotp.random_base32()
    update(engine, user.id, totp_secret_sealed=box.seal(secret), totp_confirmed=False, totp_last_step=None)
    return pyotp.TOTP(secret).provisioning_uri(name=user.username, issuer_name=TOTP_ISSUER)


TotpCheck = Literal["ok", "wrong", "replayed"]


def use_totp(engine: Engine, box: SecretBox, user: User, code: str, clock: Clock) -> TotpCheck:
    """Check a TOTP code and use up its time step: "replayed" for the step of a code already used
    (or an earlier one). The current step and one on either side are accepted (clock drift); the
    step is taken by a conditional UPDATE, so of parallel logins with one code exactly one wins."""
    if not user.totp_secret_sealed or not (code.isascii() and code.isdigit() and len(code) == 6):
        return "wrong"
    totp = pyotp.TOTP(box.open(user.totp_secret_sealed))
    now_step = totp.timecode(clock.now())
    steps = (now_step, now_step - 1, now_step + 1)
    step = next((s for s in steps if hmac.compare_digest(totp.generate_otp(s), code)), None)
    if step is None:
        return "wrong"
    with engine.begin() as conn:
        taken = conn.execute(
            sql_update(User)
            .where(
                col(User.id) == user.id,
                col(User.totp_last_step).is_(None) | (col(User.totp_last_step) < step),
            )
            .values(totp_last_step=step)
        ).rowcount
    return "ok" if taken == 1 else "replayed"


def new_password() -> str:
    return secrets.token_urlsafe(15)


def generate_password(username: str, display_name: str = "") -> str:
    """A random password (120 bits) that passes the strength rule (a random one may, rarely,
    contain a short username, which the rule refuses)."""
    while True:
        password = new_password()
        if passwords.weakness(password, [username, display_name]) is None:
            return password


def ensure_first_admin(engine: Engine, clock: Clock, password: str | None) -> str | None:
    """Create the first admin when there is no account; returns the password if it was generated."""
    if count(engine) > 0:
        return None
    generated = None
    if not password:
        password = generated = new_password()
    create_user(
        engine,
        clock,
        username="admin",
        display_name="Administrateur",
        role="admin",
        password=password,
        habilitation=Habilitation(
            granted_by="bootstrap",
            camera_groups=["*"],
            expires_us=None,
            prefecture_ref=None,
            prefecture_validated_us=None,
        ),
    )
    return generated
