"""Partners: organisations (the police nationale's services) allowed in through the federation port.

The city decides what a partner may see and do (camera groups, actions, PTZ priority); a partner's
users never exceed it whatever their own assertion says. A partner is identified twice: by its TLS
client certificate (issued by the federation CA; its SHA-256 fingerprint is recorded here) and by
the key that signs its user assertions, and both must agree. Revoking a partner refuses its next
request, including the next message of an open live view.

A partner works under a convention with the city (the convention de coordination signed with the
police nationale): its reference, its scope (the camera groups and actions above) and its expiry.
Access stops at the expiry (services/gateway/identity/security.py refuses the partner's requests), an alarm
warns a month before (federation/conventions.py), and every action of the partner's users names
the convention in the audit trail. Renewing records the new convention and its scope.
"""

from sqlalchemy import JSON, BigInteger, Column
from sqlmodel import Field, SQLModel


class Partner(SQLModel, table=True):
    __tablename__ = "gateway_partners"

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=128)
    cert_sha256: str = Field(max_length=64, unique=True)
    cert_subject: str = Field(max_length=256)
    cert_expires_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    assertion_key_pem: str
    camera_groups: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    actions: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    ptz_priority: int = 60
    active: bool = True
    created_by: str = Field(max_length=64)
    created_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    revoked_us: int | None = Field(default=None, sa_column=Column(BigInteger))
    # The convention. Partners registered before conventions were recorded have none: refused
    # until an administrator records it (no convention, no access).
    convention_ref: str = Field(default="", max_length=128)
    convention_expires_us: int | None = Field(default=None, sa_column=Column(BigInteger))
    # The last convention alarm raised ("", "expiring", "expired"), so each is raised once per
    # convention whichever gateway replica sees it first; reset by a renewal.
    convention_notice: str = Field(default="", max_length=16)
