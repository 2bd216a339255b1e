"""Purging a request's copies of footage: the buffer (extraction bucket) and the built package.

When: at the buffer's deadline without a requisition (expired), on refusal or cancellation, and
after delivery (deletion is then the recipient's responsibility). Objects go first, then — in one
transaction — the extract rows and a signed register entry listing what was deleted (the segments'
and clips' SHA-256s: the proof). If the process dies between the two, the deadline loop finds the
request still unpurged and runs the purge again (deleting absent objects is harmless): a purge
always ends with its register entry.
"""

from sqlalchemy import delete
from sqlmodel import col, select

from services.common.clock import to_us
from services.common.db import session
from services.common.log import get_logger
from services.requisition import register, workflow
from services.requisition.context import Context
from services.requisition.extraction import delete_prefix, prefix
from services.requisition.models import ExtractPart, ExtractSegment, Requisition

log = get_logger(__name__)
# States whose copies must go (the reason recorded is the state).
PURGED_STATES = (workflow.EXPIRED, workflow.REFUSED, workflow.CANCELLED, workflow.DELIVERED, workflow.CLOSED)


def due(ctx: Context) -> list[str]:
    with session(ctx.engine) as s:
        query = select(Requisition.id).where(
            col(Requisition.state).in_(PURGED_STATES),
            col(Requisition.purged_us).is_(None),
        )
        return list(s.exec(query))


def purge(ctx: Context, request_id: str, actor: str) -> dict | None:
    """Delete the request's footage copies; returns what the register entry says, None if nothing to do."""
    with session(ctx.engine) as s:
        row = s.get(Requisition, request_id)
        if row is None or row.purged_us is not None or row.state not in PURGED_STATES:
            return None
        package_key = row.package_key
    objects, size = delete_prefix(ctx.extractions, prefix(request_id))
    if package_key:
        ctx.exports.delete(package_key)
    now = to_us(ctx.clock.now())
    with session(ctx.engine) as s:
        row = s.exec(select(Requisition).where(Requisition.id == request_id).with_for_update()).one()
        if row.purged_us is not None:
            return None
        segments = list(s.exec(select(ExtractSegment).where(ExtractSegment.request_id == request_id)))
        parts = list(s.exec(select(ExtractPart).where(ExtractPart.request_id == request_id)))
        details = {
            "reason": row.state,
            "objects": objects + (1 if package_key else 0),
            "bytes": size,
            "segments": [g.sha256 for g in sorted(segments, key=lambda g: g.start_us)],
            "clips": [p.clip_sha256 for p in parts if p.clip_sha256],
            "package_sha256": row.package_sha256 if package_key else "",
        }
        s.exec(delete(ExtractSegment).where(col(ExtractSegment.request_id) == request_id))
        s.exec(delete(ExtractPart).where(col(ExtractPart.request_id) == request_id))
        if row.extracted_us is not None or package_key or objects:
            register.append(
                s,
                ctx.signer,
                cadence=ctx.cadence,
                time_us=now,
                kind="purge",
                request_id=row.id,
                request_number=row.number,
                actor=actor,
                payload=details,
            )
        row.purged_us, row.purge_reason = now, row.state
        row.package_key = ""
        row.buffer_deadline_us = None
        s.add(row)
        s.commit()
    log.info("buffer purged", request=request_id, reason=details["reason"], objects=details["objects"])
    return details
