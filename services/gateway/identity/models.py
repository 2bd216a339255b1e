"""The gateway's tables: accounts with their habilitation, sessions, and the audit trail.

Times are integer microseconds since the epoch, UTC, like everywhere in the platform.

An account is nominative and carries its habilitation (who granted it and when, the camera groups
it covers, its expiry, and the prefecture's validation): without a valid, validated habilitation
an account sees no video whatever its role.

The audit trail is append-only and hash-chained: entry_hash = SHA-256(prev_hash || canonical
entry). Changing, removing or inserting an entry breaks every later hash; signed checkpoints pin
the chain head with the deployment's key so even a rewrite of the whole chain shows.
Design: docs/design/schema.md
"""

from sqlalchemy import JSON, BigInteger, Column, Index
from sqlmodel import Field, SQLModel


class User(SQLModel, table=True):
    __tablename__ = "gateway_users"
    __table_args__ = (Index("ux_gateway_users_oidc", "oidc_issuer", "oidc_subject", unique=True),)

    id: str = Field(primary_key=True, max_length=32)
    username: str = Field(max_length=64, unique=True)
    display_name: str = Field(max_length=128)
    role: str = Field(max_length=32)
    password_hash: str = Field(max_length=256)
    totp_secret_sealed: str | None = Field(default=None, max_length=512)
    totp_confirmed: bool = False
    # Login attempts (services/gateway/identity/login.py): failed_logins counts each attempt BEFORE its
    # password is checked (given back when it was not a failure), locked_until_us is set when it
    # reaches the limit; both are reset only by a fully successful login. failures_since_login
    # also counts attempts refused while locked: the user is told the number at their next login.
    failed_logins: int = 0
    locked_until_us: int | None = Field(default=None, sa_column=Column(BigInteger))
    failures_since_login: int = 0
    # The last TOTP time step (30 s since the epoch) a login used: that code and older ones are
    # refused, so a code seen over a shoulder or in a proxy log opens nothing.
    totp_last_step: int | None = Field(default=None, sa_column=Column(BigInteger))
    # Set by an admin's password reset: the password is single-use, the next login must change it.
    must_change_password: bool = False
    active: bool = True
    created_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    # Habilitation.
    granted_by: str = Field(max_length=64)
    granted_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    camera_groups: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    expires_us: int | None = Field(default=None, sa_column=Column(BigInteger))
    prefecture_ref: str | None = Field(default=None, max_length=128)
    prefecture_validated_us: int | None = Field(default=None, sa_column=Column(BigInteger))
    playback_days: int | None = None
    ptz_priority: int | None = None
    # "local": password and TOTP kept here. "oidc": logs in at the city's identity provider (which
    # does the MFA), has no password here, and is linked to the provider's account by (issuer,
    # subject) — never by name, which the provider may let users change.
    kind: str = Field(default="local", max_length=16)
    oidc_issuer: str | None = Field(default=None, max_length=255)
    oidc_subject: str | None = Field(default=None, max_length=255)


class Session(SQLModel, table=True):
    __tablename__ = "gateway_sessions"

    # SHA-256 of the bearer token: a stolen database does not yield usable tokens.
    id: str = Field(primary_key=True, max_length=64)
    user_id: str = Field(max_length=32, index=True)
    created_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    last_used_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    expires_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    revoked_us: int | None = Field(default=None, sa_column=Column(BigInteger))
    ip: str = Field(default="", max_length=64)
    # Sessions opened through the OIDC provider: its ID token, sealed (SecretBox), the hint that
    # lets logout end the provider's session too. Never sent back to the browser.
    oidc_id_token_sealed: str | None = Field(default=None, max_length=16384)


class AuditEntry(SQLModel, table=True):
    __tablename__ = "gateway_audit"
    __table_args__ = (
        Index("ix_gateway_audit_time", "time_us"),
        Index("ix_gateway_audit_actor", "actor", "time_us"),
        Index("ix_gateway_audit_target", "target", "time_us"),
    )

    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    event_id: str = Field(max_length=32, unique=True)
    time_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    actor: str = Field(max_length=160)
    role: str = Field(max_length=32)
    origin_ip: str = Field(max_length=64)
    partner: str = Field(max_length=64)
    action: str = Field(max_length=64)
    target: str = Field(max_length=256)
    justification: str = Field(max_length=1024)
    recipient: str = Field(max_length=256)
    outcome: str = Field(max_length=16)
    details_json: str
    prev_hash: str = Field(max_length=64)
    entry_hash: str = Field(max_length=64)


class AuditHead(SQLModel, table=True):
    """One row: the chain's last entry. Writers lock it, so two gateways never fork the chain."""

    __tablename__ = "gateway_audit_head"

    id: int = Field(default=1, primary_key=True)
    seq: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    entry_hash: str = Field(default="0" * 64, max_length=64)


class AuditCheckpoint(SQLModel, table=True):
    __tablename__ = "gateway_audit_checkpoints"

    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    entry_hash: str = Field(max_length=64)
    signed_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    signature: str = Field(max_length=128)
    public_key: str
    # The cadence it was signed under (services/common/anchoring.py); 0, 0: signed "seq:hash" only.
    every_entries: int = 0
    every_s: int = 0


class LoginThrottle(SQLModel, table=True):
    """Refused logins per client address in the current window (services/gateway/identity/attempts.py).

    In the database, not in a replica's memory: every gateway replica counts against the same
    budget, and one conditional upsert counts and checks at once.
    """

    __tablename__ = "gateway_login_throttle"

    address: str = Field(primary_key=True, max_length=64)
    window_start_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    failures: int = 0
