"""Registering partners and checking what they present: certificate, then signed user assertion.

A user assertion is a short-lived JWT signed by the partner's registered key (EdDSA or ES256):
    iss  the partner's id (must be the partner the TLS certificate belongs to)
    aud  the gateway's federation audience
    sub  the officer's identifier at the partner;  name  their display name
    iat, exp   lifetime at most federation_max_assertion_s
    hab_ref, hab_exp   the officer's habilitation (reference, expiry as epoch seconds)
"""

import hashlib
import ssl
from dataclasses import dataclass
from datetime import timedelta

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from sqlalchemy import Engine, update
from sqlmodel import col, select

from services.common.clock import Clock, from_us, to_us
from services.common.db import session
from services.gateway.errors import Refusal
from services.gateway.identity.federation.models import Partner

FEDERATED_ACTIONS = frozenset({"live", "ptz", "export"})
ALGORITHMS = ["EdDSA", "ES256"]
# The warning before a convention ends: a month to sign its renewal.
CONVENTION_WARNING = timedelta(days=30)
NO_CONVENTION, CONVENTION_VALID, CONVENTION_EXPIRING, CONVENTION_EXPIRED = "none", "valid", "expiring", "expired"


class FederationError(Refusal):
    """A refusal of this domain (errors.Refusal: status and message)."""


@dataclass(frozen=True)
class Assertion:
    partner: Partner
    subject: str
    name: str
    habilitation_ref: str
    habilitation_expires_us: int | None


def fingerprint(cert_pem: str) -> str:
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(cert_pem)).hexdigest()


def _certificate(cert_pem: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(cert_pem.encode())
    except ValueError as exc:
        raise FederationError(422, "client_certificate is not a PEM X.509 certificate") from exc


def _check_key(key_pem: str) -> None:
    try:
        key = serialization.load_pem_public_key(key_pem.encode())
    except ValueError as exc:
        raise FederationError(422, "assertion_public_key is not a PEM public key") from exc
    if not isinstance(key, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey):
        raise FederationError(422, "assertion_public_key must be an Ed25519 or P-256 key (EdDSA or ES256)")


def register(
    engine: Engine,
    clock: Clock,
    *,
    partner_id: str,
    name: str,
    cert_pem: str,
    key_pem: str,
    camera_groups: list[str],
    actions: list[str],
    ptz_priority: int,
    created_by: str,
    convention_ref: str,
    convention_expires_us: int,
) -> Partner:
    _check_scope(actions)
    _check_convention(clock, convention_expires_us)
    cert = _certificate(cert_pem)
    _check_key(key_pem)
    partner = Partner(
        id=partner_id,
        name=name,
        cert_sha256=fingerprint(cert_pem),
        cert_subject=cert.subject.rfc4514_string()[:256],
        cert_expires_us=to_us(cert.not_valid_after_utc),
        assertion_key_pem=key_pem,
        camera_groups=camera_groups,
        actions=sorted(set(actions)),
        ptz_priority=ptz_priority,
        created_by=created_by,
        created_us=to_us(clock.now()),
        convention_ref=convention_ref,
        convention_expires_us=convention_expires_us,
    )
    with session(engine) as s:
        if s.get(Partner, partner_id) is not None:
            raise FederationError(409, f"a partner {partner_id!r} already exists")
        if s.exec(select(Partner).where(Partner.cert_sha256 == partner.cert_sha256)).first() is not None:
            raise FederationError(409, "this certificate is already registered for another partner")
        s.add(partner)
        s.commit()
    return partner


def _check_scope(actions: list[str]) -> None:
    unknown = set(actions) - FEDERATED_ACTIONS
    if unknown:
        raise FederationError(422, f"partners may only be granted {sorted(FEDERATED_ACTIONS)}, not {sorted(unknown)}")


def _check_convention(clock: Clock, expires_us: int) -> None:
    if expires_us <= to_us(clock.now()):
        raise FederationError(422, "convention_expires is already past: record a convention in force")


def convention_status(partner: Partner, now_us: int) -> str:
    if not partner.convention_ref or partner.convention_expires_us is None:
        return NO_CONVENTION
    if partner.convention_expires_us <= now_us:
        return CONVENTION_EXPIRED
    if partner.convention_expires_us - now_us <= CONVENTION_WARNING.total_seconds() * 1e6:
        return CONVENTION_EXPIRING
    return CONVENTION_VALID


def convention_refusal(partner: Partner, now_us: int) -> str | None:
    """Why the partner's convention grants no access now, or None while it is in force."""
    status = convention_status(partner, now_us)
    if status == NO_CONVENTION:
        return f"partner {partner.id} has no convention recorded with the city: no access"
    if status == CONVENTION_EXPIRED:
        day = f"{from_us(partner.convention_expires_us or 0):%Y-%m-%d %H:%M} UTC"
        return f"the convention {partner.convention_ref} of partner {partner.id} expired on {day}: no access"
    return None


def renew_convention(
    engine: Engine,
    clock: Clock,
    partner_id: str,
    *,
    convention_ref: str,
    convention_expires_us: int,
    camera_groups: list[str],
    actions: list[str],
) -> Partner:
    """A new (or renewed) convention replaces the reference, the expiry and the scope."""
    _check_scope(actions)
    _check_convention(clock, convention_expires_us)
    with session(engine) as s:
        partner = s.get(Partner, partner_id, with_for_update=True)
        if partner is None:
            raise FederationError(404, f"unknown partner {partner_id!r}")
        partner.convention_ref = convention_ref
        partner.convention_expires_us = convention_expires_us
        partner.camera_groups = camera_groups
        partner.actions = sorted(set(actions))
        partner.convention_notice = ""  # the new convention gets its own warning
        s.add(partner)
        s.commit()
        s.refresh(partner)
        return partner


def claim_notice(engine: Engine, partner: Partner, before: str, after: str) -> bool:
    """Move the partner's last convention notice from `before` to `after` for its current
    convention; False if another replica (or a renewal) changed it first."""
    with session(engine) as s:
        result = s.exec(
            update(Partner)
            .where(col(Partner.id) == partner.id)
            .where(col(Partner.convention_notice) == before)
            .where(col(Partner.convention_expires_us) == partner.convention_expires_us)
            .values(convention_notice=after)
        )
        s.commit()
        return bool(result.rowcount)


def all_partners(engine: Engine) -> list[Partner]:
    with session(engine) as s:
        return list(s.exec(select(Partner).order_by(Partner.id)))


def revoke(engine: Engine, clock: Clock, partner_id: str) -> Partner:
    with session(engine) as s:
        partner = s.get(Partner, partner_id)
        if partner is None:
            raise FederationError(404, f"unknown partner {partner_id!r}")
        partner.active = False
        partner.revoked_us = to_us(clock.now())
        s.add(partner)
        s.commit()
        s.refresh(partner)
        return partner


def by_certificate(engine: Engine, cert_pem: str) -> Partner | None:
    with session(engine) as s:
        return s.exec(select(Partner).where(Partner.cert_sha256 == fingerprint(cert_pem))).first()


def verify_assertion(partner: Partner, token: str, audience: str, max_lifetime_s: int, clock: Clock) -> Assertion:
    try:
        claims = jwt.decode(
            token,
            partner.assertion_key_pem,
            algorithms=ALGORITHMS,
            audience=audience,
            issuer=partner.id,
            options={"require": ["exp", "iat", "sub", "iss", "aud"], "verify_iat": False},
            leeway=30,
        )
    except jwt.ExpiredSignatureError as exc:
        raise FederationError(401, "the user assertion has expired") from exc
    except jwt.InvalidIssuerError as exc:
        raise FederationError(401, "the user assertion was issued for another partner than this certificate") from exc
    except jwt.InvalidTokenError as exc:
        raise FederationError(401, f"invalid user assertion: {exc}") from exc
    now = clock.now().timestamp()
    if claims["exp"] - claims["iat"] > max_lifetime_s:
        raise FederationError(401, f"user assertions may live at most {max_lifetime_s} s")
    if claims["iat"] > now + 30:
        raise FederationError(401, "the user assertion is issued in the future")
    subject = str(claims["sub"])
    if not subject or len(subject) > 96 or not subject.isprintable():
        raise FederationError(401, "invalid subject in the user assertion")
    hab_exp = claims.get("hab_exp")
    return Assertion(
        partner=partner,
        subject=subject,
        name=str(claims.get("name") or subject)[:128],
        habilitation_ref=str(claims.get("hab_ref") or "")[:128],
        habilitation_expires_us=int(hab_exp * 1_000_000) if isinstance(hab_exp, int | float) else None,
    )
