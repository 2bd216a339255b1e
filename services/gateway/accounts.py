"""Accounts: passwords (Argon2id), lockout, TOTP, habilitations, and the first admin.

Only this module reads or writes gateway_users. Each function takes the engine and returns plain
values or raises AccountError with a message fit for the user.
"""

import re
import secrets
import unicodedata
import uuid
from dataclasses import dataclass

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Engine, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from services.common.clock import Clock, to_us
from services.common.db import session
from services.common.secretbox import SecretBox
from services.gateway.models import User
from services.gateway.roles import ROLES

_HASHER = PasswordHasher()  # Argon2id with the library's current recommended parameters
MIN_PASSWORD_LENGTH = 12
TOTP_ISSUER = "CSU"
LOCAL = "local"
OIDC = "oidc"
_USERNAME_CHARS = re.compile(r"[^a-z0-9._-]+")


class AccountError(Exception):
    """A refusal a user can act on; status is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Habilitation:
    granted_by: str
    camera_groups: list[str]
    expires_us: int | None
    prefecture_ref: str | None
    prefecture_validated_us: int | None
    playback_days: int | None = None
    ptz_priority: int | None = None


def check_password_strength(password: str, username: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(422, f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    if username.lower() in password.lower():
        raise AccountError(422, "the password must not contain the username")
    if len(set(password)) < 6:
        raise AccountError(422, "the password is too repetitive")


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
    if role not in ROLES:
        raise AccountError(422, f"unknown role {role!r}; roles: {', '.join(sorted(ROLES))}")
    check_password_strength(password, username)
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


def verify_password(
    engine: Engine, clock: Clock, username: str, password: str, max_failures: int, lockout_minutes: int
) -> User:
    """The account if the password is right; counts failures and locks the account after too many."""
    now = to_us(clock.now())
    with session(engine) as s:
        user = s.exec(select(User).where(User.username == username)).first()
        if user is None or not user.active or user.kind != LOCAL:
            # Same answer as a wrong password: do not reveal which accounts exist (nor which log in
            # at the identity provider: those have no password here).
            _HASHER.hash(password)
            raise AccountError(401, "wrong username or password")
        if user.locked_until_us and user.locked_until_us > now:
            raise AccountError(423, "this account is locked after repeated failed logins; try again later")
        try:
            _HASHER.verify(user.password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            user.failed_logins += 1
            if user.failed_logins >= max_failures:
                user.locked_until_us = now + lockout_minutes * 60_000_000
                user.failed_logins = 0
            s.add(user)
            s.commit()
            raise AccountError(401, "wrong username or password") from None
        if _HASHER.check_needs_rehash(user.password_hash):
            user.password_hash = _HASHER.hash(password)
        user.failed_logins = 0
        user.locked_until_us = None
        s.add(user)
        s.commit()
        s.refresh(user)
        return user


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
            taken = set(s.exec(select(User.username).where(User.username.in_(candidates))))
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
    update(engine, user.id, totp_secret_sealed=box.seal(secret), totp_confirmed=False)
    return pyotp.TOTP(secret).provisioning_uri(name=user.username, issuer_name=TOTP_ISSUER)


def check_totp(box: SecretBox, user: User, code: str, clock: Clock) -> bool:
    if not user.totp_secret_sealed or not (code.isascii() and code.isdigit()):
        return False
    totp = pyotp.TOTP(box.open(user.totp_secret_sealed))
    return totp.verify(code, for_time=clock.now(), valid_window=1)


def new_password() -> str:
    return secrets.token_urlsafe(15)


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
