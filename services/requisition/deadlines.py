"""The clock-driven side of the service, one `tick` every CSU_REQUISITION_DEADLINE_CHECK_S:

- requisitions past their deadline without the signed requisition go to `expired`, and their
  buffer copy is purged (objects, rows, a signed register entry, an audit record);
- any request whose copies must go (expired, refused, cancelled, delivered) and still has them
  is purged — the retry path of every purge;
- delivered requests get their receipt if it could not be written at once;
- citizens' requests: deadline warnings (N days ahead, then overdue) as alarms; closed requests
  that still keep an identity document or a hold are cleaned up.

Time comes from the Clock: tests move a ManualClock past a deadline and call `tick`.
"""

import asyncio

from sqlmodel import col, select

from services.common.clock import to_us
from services.common.db import session
from services.common.log import get_logger
from services.requisition import citizens, delivery, events, purge, requisitions
from services.requisition.context import Context
from services.requisition.models import Requisition

log = get_logger(__name__)


async def tick(ctx: Context) -> dict[str, int]:
    now = to_us(ctx.clock.now())
    done = {"expired": 0, "purged": 0, "receipts": 0, "citizen_alarms": 0, "citizen_cleanups": 0}
    for request_id in await asyncio.to_thread(requisitions.due_for_expiry, ctx, now):
        moved = await asyncio.to_thread(requisitions.expire, ctx, request_id, now)
        if moved is None:
            continue
        row, transition = moved
        done["expired"] += 1
        await events.state_changed(ctx, "requisition", row.id, row.number, transition)
    for request_id in await asyncio.to_thread(purge.due, ctx):
        # Audited before the copies go; the register entry is written with the purge itself.
        await events.system_audit(ctx, "requisition.purge", f"requisition:{request_id}", {"request_id": request_id})
        try:
            details = await asyncio.to_thread(purge.purge, ctx, request_id, "system")
        except Exception as exc:  # noqa: BLE001 - the store may be away: next tick retries
            log.warning("purge failed; retried next round", request=request_id, error=str(exc) or type(exc).__name__)
            continue
        if details is not None:
            done["purged"] += 1
    for request_id in await asyncio.to_thread(_missing_receipts, ctx):
        try:
            await asyncio.to_thread(delivery.write_receipt, ctx, request_id)
            done["receipts"] += 1
        except Exception as exc:  # noqa: BLE001 - next tick retries
            log.warning("receipt not written; retried next round", request=request_id, error=str(exc))
    for kind, message in await asyncio.to_thread(citizens.deadline_warnings, ctx):
        await events.alarm(ctx, kind, message)
        done["citizen_alarms"] += 1
    for request_id in await asyncio.to_thread(citizens.due_cleanup, ctx):
        if await citizens.cleanup(ctx, request_id):
            done["citizen_cleanups"] += 1
    return done


def _missing_receipts(ctx: Context) -> list[str]:
    with session(ctx.engine) as s:
        query = select(Requisition.id).where(
            col(Requisition.delivered_us).is_not(None),
            Requisition.receipt_document_id == "",
        )
        return list(s.exec(query))


async def run(ctx: Context, interval_s: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await tick(ctx)
        except Exception as exc:  # noqa: BLE001 - the database or store is away: next round
            log.warning("deadline round failed", error=str(exc) or type(exc).__name__)
        try:
            await asyncio.wait_for(stop.wait(), interval_s)
        except TimeoutError:
            pass
