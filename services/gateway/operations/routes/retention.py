"""Retention periods of personal data (services/gateway/operations/retention.py): read by whoever
reads the compliance report ("audit"), changed by the data protection officer ("retention") within
each kind's hard cap. A change is audited with the period before and after."""

import asyncio

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict

from services.gateway.backends import BackendsDep
from services.gateway.identity.security import Principal, audit, require
from services.gateway.operations import retention

router = APIRouter(prefix="/api/v1/retention", tags=["compliance"])


class PeriodIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Checked against the kind's hard cap in operations.retention.set_period (422 above it).
    days: int


@router.get("")
async def list_periods(b: BackendsDep, _: Principal = Depends(require("audit"))) -> list[dict]:
    """Each kind of personal datum: period in force, default, hard cap, legal basis, who set it."""
    return list((await asyncio.to_thread(retention.periods, b)).values())


@router.put("/{kind}")
async def set_period(
    kind: str, body: PeriodIn, b: BackendsDep, principal: Principal = Depends(require("retention"))
) -> dict:
    """The DPO's period for `kind`; above its hard cap it is refused (422) and nothing changes."""
    retention.check_period(kind, body.days)  # refused before anything is recorded or changed
    before = (await asyncio.to_thread(retention.periods, b))[kind]
    await audit(principal, retention.SET_ACTION, kind, details={"days": body.days, "previous_days": before["days"]})
    return await asyncio.to_thread(retention.set_period, b, kind, body.days, principal.username)
