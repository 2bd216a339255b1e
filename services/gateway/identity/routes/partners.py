"""Federation partners (admin): who may come in through the mutual-TLS port, and with what rights."""

import asyncio

from fastapi import APIRouter, Depends
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from services.common.clock import to_us
from services.common.log import get_logger
from services.common.timefmt import iso
from services.gateway.backends import Backends, BackendsDep
from services.gateway.identity.federation import conventions, partners
from services.gateway.identity.federation.models import Partner
from services.gateway.identity.security import Principal, audit, require
from services.gateway.video.timerange import checked_us

router = APIRouter(prefix="/api/v1/partners", tags=["federation"])
log = get_logger(__name__)
CONVENTION_REF = r"^[A-Za-z0-9][A-Za-z0-9 ._/-]{0,127}$"


class PartnerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,63}$")
    name: str = Field(min_length=1, max_length=128)
    client_certificate: str = Field(min_length=1, max_length=20_000, description="PEM, issued by the federation CA")
    assertion_public_key: str = Field(min_length=1, max_length=5_000, description="PEM, Ed25519 or P-256")
    camera_groups: list[str] = Field(max_length=100)
    actions: list[str] = Field(max_length=3, description='subset of "live", "ptz", "export"')
    ptz_priority: int = Field(60, ge=0, le=100)
    convention_ref: str = Field(pattern=CONVENTION_REF, description="the convention's reference")
    convention_expires: AwareDatetime = Field(description="the end of the convention: access stops then")


class ConventionIn(BaseModel):
    """A new or renewed convention: its reference, expiry and scope replace the current ones."""

    model_config = ConfigDict(extra="forbid")
    convention_ref: str = Field(pattern=CONVENTION_REF)
    convention_expires: AwareDatetime
    camera_groups: list[str] = Field(max_length=100)
    actions: list[str] = Field(max_length=3, description='subset of "live", "ptz", "export"')


class PartnerOut(BaseModel):
    id: str
    name: str
    cert_sha256: str
    cert_subject: str
    cert_expires: str
    camera_groups: list[str]
    actions: list[str]
    ptz_priority: int
    active: bool
    revoked: str | None
    convention_ref: str
    convention_expires: str | None
    convention_status: str = Field(description='"valid", "expiring" (within a month), "expired" or "none"')


def out(p: Partner, now_us: int) -> PartnerOut:
    return PartnerOut(
        id=p.id,
        name=p.name,
        cert_sha256=p.cert_sha256,
        cert_subject=p.cert_subject,
        cert_expires=iso(p.cert_expires_us) or "",
        camera_groups=list(p.camera_groups),
        actions=list(p.actions),
        ptz_priority=p.ptz_priority,
        active=p.active,
        revoked=iso(p.revoked_us),
        convention_ref=p.convention_ref,
        convention_expires=iso(p.convention_expires_us),
        convention_status=partners.convention_status(p, now_us),
    )


async def _warn(b: Backends) -> None:
    """Raise a convention alarm due now at once (else the periodic check raises it)."""
    try:
        await conventions.check(b)
    except Exception as exc:  # noqa: BLE001 - NATS away: the periodic check raises it later
        log.warning("partner conventions not checked", error=str(exc) or type(exc).__name__)


@router.get("", response_model=list[PartnerOut])
async def list_partners(b: BackendsDep, principal: Principal = Depends(require("users"))) -> list[PartnerOut]:
    now_us = to_us(b.clock.now())
    return [out(p, now_us) for p in await asyncio.to_thread(partners.all_partners, b.engine)]


@router.post("", response_model=PartnerOut, status_code=201)
async def register(body: PartnerIn, b: BackendsDep, principal: Principal = Depends(require("users"))) -> PartnerOut:
    expires_us = checked_us("convention_expires", body.convention_expires)
    await audit(
        principal,
        "partners.register",
        f"partner:{body.id}",
        details={
            "camera_groups": body.camera_groups,
            "actions": body.actions,
            "ptz_priority": body.ptz_priority,
            "convention": body.convention_ref,
            "convention_expires": iso(expires_us),
        },
    )
    partner = await asyncio.to_thread(
        partners.register,
        b.engine,
        b.clock,
        partner_id=body.id,
        name=body.name,
        cert_pem=body.client_certificate,
        key_pem=body.assertion_public_key,
        camera_groups=body.camera_groups,
        actions=body.actions,
        ptz_priority=body.ptz_priority,
        created_by=principal.username,
        convention_ref=body.convention_ref,
        convention_expires_us=expires_us,
    )
    await _warn(b)
    return out(partner, to_us(b.clock.now()))


@router.put("/{partner_id}/convention", response_model=PartnerOut)
async def convention(
    partner_id: str,
    body: ConventionIn,
    b: BackendsDep,
    principal: Principal = Depends(require("users")),
) -> PartnerOut:
    """Record the partner's new or renewed convention (reference, expiry, scope)."""
    expires_us = checked_us("convention_expires", body.convention_expires)
    await audit(
        principal,
        "partners.convention",
        f"partner:{partner_id}",
        details={
            "convention": body.convention_ref,
            "convention_expires": iso(expires_us),
            "camera_groups": body.camera_groups,
            "actions": body.actions,
        },
    )
    partner = await asyncio.to_thread(
        partners.renew_convention,
        b.engine,
        b.clock,
        partner_id,
        convention_ref=body.convention_ref,
        convention_expires_us=expires_us,
        camera_groups=body.camera_groups,
        actions=body.actions,
    )
    await _warn(b)
    return out(partner, to_us(b.clock.now()))


@router.post("/{partner_id}/revoke", response_model=PartnerOut)
async def revoke(partner_id: str, b: BackendsDep, principal: Principal = Depends(require("users"))) -> PartnerOut:
    """Cuts every session of the partner at once: its next request and open live views are refused."""
    await audit(principal, "partners.revoke", f"partner:{partner_id}")
    return out(await asyncio.to_thread(partners.revoke, b.engine, b.clock, partner_id), to_us(b.clock.now()))
