"""Erasing the personal fields of citizens' requests and requisition cases at the end of their
retention. The period, its legal basis and the sweep belong to the gateway
(services/gateway/operations/retention.py): it calls EraseExpired with the instant before which a
record's retention is over; this module only knows which fields are personal and from when a
record's retention runs.

- a citizen's request: from its closing, or — never closed — from its answer deadline. One nobody
  closed is closed here as "expired" (its identity document deleted, its holds released, by the
  same cleanup as a closing) before being erased; the deadline loop warned about it beforehand.
- a requisition case: from its last change once it reached a final state (delivered, closed,
  refused, cancelled, expired). Its documents (the signed requisition, the receipt) go too.

What stays: the number, states and transitions, dates, hashes and the signed register — the record
that something happened, without whom it concerned.
"""

from sqlalchemy import func
from sqlmodel import col, select

from services.common.clock import to_us
from services.common.db import session
from services.common.log import get_logger
from services.common.pb.csu.v1 import requisition_pb2
from services.common.refusals import Invalid
from services.requisition import citizens, purge, transitions
from services.requisition.context import Context
from services.requisition.models import CitizenRequest, Document, Requisition

log = get_logger(__name__)
CITIZEN_REQUESTS, REQUISITIONS = "citizen_requests", "requisitions"
KINDS = (CITIZEN_REQUESTS, REQUISITIONS)
SYSTEM = requisition_pb2.Actor(username="system", role="system")
ERASED = ""  # what a personal text field holds once erased


def _citizen_start():
    return func.coalesce(CitizenRequest.closed_us, CitizenRequest.deadline_us)


def _requisition_due(before_us: int):
    return select(Requisition).where(
        col(Requisition.erased_us).is_(None),
        col(Requisition.state).in_(purge.PURGED_STATES),
        Requisition.updated_us < before_us,
    )


def _oldest(ctx: Context, kind: str) -> int:
    with session(ctx.engine) as s:
        if kind == CITIZEN_REQUESTS:
            query = select(func.min(_citizen_start())).where(col(CitizenRequest.erased_us).is_(None))
        else:
            query = select(func.min(Requisition.updated_us)).where(
                col(Requisition.erased_us).is_(None),
                col(Requisition.state).in_(purge.PURGED_STATES),
            )
        return int(s.exec(query).one() or 0)


async def erase_expired(ctx: Context, kind: str, before_us: int, dry_run: bool) -> tuple[int, int]:
    """(records erased — or due, with dry_run —, start of the oldest record still kept or 0)."""
    if kind not in KINDS:
        raise Invalid(f"unknown kind {kind!r}; kinds: {', '.join(KINDS)}")
    if kind == CITIZEN_REQUESTS:
        count = await _erase_citizen_requests(ctx, before_us, dry_run)
    else:
        count = _erase_requisitions(ctx, before_us, dry_run)
    return count, _oldest(ctx, kind)


async def _erase_citizen_requests(ctx: Context, before_us: int, dry_run: bool) -> int:
    with session(ctx.engine) as s:
        ids = list(
            s.exec(
                select(CitizenRequest.id).where(
                    col(CitizenRequest.erased_us).is_(None),
                    _citizen_start() < before_us,
                )
            )
        )
    if dry_run:
        return len(ids)
    for request_id in ids:
        now = to_us(ctx.clock.now())
        with session(ctx.engine) as s:
            row = citizens.load(s, request_id, lock=True)
            if row.erased_us is not None:
                continue
            if row.state != citizens.CLOSED:
                # Nobody answered: the request expires (alarms were raised before and at its deadline).
                row.outcome, row.outcome_by, row.closed_us = "expired", "system", now
                transitions.record(s, citizens.KIND, row, citizens.CLOSED, SYSTEM, now, "expired: retention ended")
            for name in ("full_name", "birth_date", "id_document_kind", "id_document_number_sealed"):
                setattr(row, name, ERASED)
            row.id_document_number_hint = ERASED
            row.contact, row.place, row.description = ERASED, ERASED, ERASED
            row.search_note, row.outcome_reason = ERASED, ERASED
            row.erased_us = now
            s.add(row)
            s.commit()
        # Documents and holds: the closing's own cleanup; what fails now the deadline loop retries.
        await citizens.cleanup(ctx, request_id)
    if ids:
        log.info("citizen requests erased at retention", count=len(ids))
    return len(ids)


def _erase_requisitions(ctx: Context, before_us: int, dry_run: bool) -> int:
    with session(ctx.engine) as s:
        rows = list(s.exec(_requisition_due(before_us)))
        if dry_run:
            return len(rows)
        ids = [r.id for r in rows]
        docs = list(
            s.exec(
                select(Document).where(
                    Document.owner_kind == "requisition",
                    col(Document.owner_id).in_(ids),
                    col(Document.deleted_us).is_(None),
                )
            )
        )
    # Objects first: a record marked erased while its signed requisition is still stored would lie.
    # A document the store could not delete keeps its case for the next sweep.
    kept: set[str] = set()
    for doc in docs:
        try:
            ctx.documents.delete(doc.object_key)
        except Exception as exc:  # noqa: BLE001 - the store is away: the next sweep tries again
            log.warning("requisition document not deleted yet", request=doc.owner_id, error=str(exc))
            kept.add(doc.owner_id)
    now = to_us(ctx.clock.now())
    erased = 0
    with session(ctx.engine) as s:
        for doc in docs:
            if doc.owner_id not in kept:
                stored = s.get(Document, doc.id)
                if stored is not None:
                    stored.deleted_us = now
                    s.add(stored)
        for row in s.exec(_requisition_due(before_us).with_for_update()):
            if row.id in kept:
                continue
            row.officer, row.officer_contact, row.case_reference, row.reason = ERASED, ERASED, ERASED, ERASED
            row.req_authority, row.approval_comment, row.feedback_comment = ERASED, ERASED, ERASED
            row.recipient_name, row.recipient_id = ERASED, ERASED
            row.erased_us = now
            s.add(row)
            erased += 1
        s.commit()
    if erased:
        log.info("requisition cases erased at retention", count=erased)
    return erased
