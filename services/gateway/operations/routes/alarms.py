"""The alarm list for operators, supervisors and maintenance ("camera_health"): listing and
acknowledging. An alarm about a camera is shown to those habilitated for the camera's groups; an
alarm about no camera (storage, logins, authorisations) to every holder of "camera_health".
"""

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import BaseModel, ConfigDict

from services.common.timefmt import iso
from services.gateway.backends import Backends, BackendsDep
from services.gateway.identity.security import Principal, audit, refuse
from services.gateway.operations import alarms, notifications
from services.gateway.operations.access import require_any
from services.gateway.operations.fields import MAX_ID, text
from services.gateway.operations.models import Alarm

router = APIRouter(prefix="/api/v1/alarms", tags=["alarms"])
AlarmId = Annotated[int, Path(ge=1, le=MAX_ID)]
ACTIONS = alarms.READERS


class AlarmOut(BaseModel):
    id: int
    kind: str
    source: str
    camera_id: str
    message: str
    first_raised: str
    last_raised: str
    count: int
    state: str
    acked_by: str
    acked: str | None
    ack_comment: str


class AckIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    comment: text(1000, 0) = ""  # type: ignore[valid-type]


def out(row: Alarm) -> AlarmOut:
    assert row.id is not None
    return AlarmOut(
        id=row.id,
        kind=row.kind,
        source=row.source,
        camera_id=row.camera_id,
        message=row.message,
        first_raised=iso(row.first_raised_us) or "",
        last_raised=iso(row.last_raised_us) or "",
        count=row.count,
        state=row.state,
        acked_by=row.acked_by,
        acked=iso(row.acked_us),
        ack_comment=row.ack_comment,
    )


@router.get("", response_model=list[AlarmOut])
async def list_alarms(
    b: BackendsDep,
    state: Literal["open", "acknowledged", "all"] = Query("open"),
    kind: str | None = Query(None, max_length=64, description='a kind or its prefix, e.g. "archive"'),
    camera_id: str | None = Query(None, pattern=r"^[A-Za-z0-9_-]{1,64}$"),
    before: int = Query(0, ge=0, le=MAX_ID, description="continue with alarms older than this id"),
    limit: int = Query(200, ge=1, le=1000),
    principal: Principal = Depends(require_any(*ACTIONS)),
) -> list[AlarmOut]:
    """Newest first."""
    rows = await asyncio.to_thread(
        alarms.search,
        b.engine,
        state=None if state == "all" else state,
        kind=kind,
        camera_id=camera_id,
        after_id=before,
        limit=limit,
    )
    return [out(r) for r in await alarms.visible(principal, rows)]


async def _alarm(principal: Principal, b: Backends, alarm_id: int) -> Alarm:
    row = await asyncio.to_thread(alarms.get, b.engine, alarm_id)
    if not await alarms.visible(principal, [row]):
        # Answered as an unknown alarm, like a camera outside one's groups (security.check_camera).
        unknown = alarms.unknown(alarm_id)
        reason = "your habilitation does not cover this alarm's camera"
        await refuse(
            principal,
            "camera_health",
            f"alarm:{alarm_id}",
            reason,
            answer=HTTPException(unknown.status, unknown.message),
        )
    return row


@router.get("/{alarm_id}", response_model=AlarmOut)
async def one(alarm_id: AlarmId, b: BackendsDep, principal: Principal = Depends(require_any(*ACTIONS))) -> AlarmOut:
    return out(await _alarm(principal, b, alarm_id))


@router.post("/{alarm_id}/ack", response_model=AlarmOut)
async def acknowledge(
    alarm_id: AlarmId,
    b: BackendsDep,
    body: AckIn | None = None,
    principal: Principal = Depends(require_any(*ACTIONS)),
) -> AlarmOut:
    """Acknowledge an alarm (someone is on it); a repeat after this opens a new alarm."""
    row = await _alarm(principal, b, alarm_id)
    if row.state != "open":
        raise HTTPException(409, f"alarm {alarm_id} was already acknowledged by {row.acked_by}")
    comment = body.comment if body else ""
    await audit(
        principal,
        "alarm.acknowledge",
        f"alarm:{alarm_id}",
        details={"kind": row.kind, "camera_id": row.camera_id, "comment": comment},
    )
    row = await asyncio.to_thread(alarms.acknowledge, b.engine, b.clock, alarm_id, principal.username, comment)
    await notifications.publish(
        b, "alarm.acknowledged", row.camera_id, await alarms.groups_of(b, row.camera_id), alarms.notification(row)
    )
    return out(row)
