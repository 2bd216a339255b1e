"""The commissioning gate (services/common/commissioning.py) as the gateway answers it: a camera goes
into service only with an approved mask set or a signed no-private-area statement. Used by the
mask routes, the camera registry and its CSV import."""

from fastapi import HTTPException

from services.common import commissioning as commissioning_gate
from services.gateway.backends import Backends


async def ensure_commissionable(b: Backends, camera_id: str, target_state: str = "in_service") -> None:
    """The commissioning gate (services.common.commissioning) as HTTP: 409 with the reason, 503 when
    ingest or masking cannot say (fail closed)."""
    try:
        reason = await commissioning_gate.refusal(b.ingest, b.masking, b.signer.keyring(), camera_id, target_state)
    except commissioning_gate.GateUnavailable as exc:
        raise HTTPException(503, str(exc)) from exc
    if reason:
        raise HTTPException(409, reason)
