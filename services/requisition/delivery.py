"""Approved -> delivered: building the export package, handing it over, the receipt, the purge.

A package is built (and may be rebuilt, e.g. with a password) while the request is approved. It
is handed over either on a USB medium by CSU staff (who record the recipient's identity as
checked), or downloaded through the federation door by the requesting partner's user (their
identity is the federated one). Either way the recipient proves what they hold by its SHA-256:
the handover is recorded only for the package that was built, in a signed register entry. Then the
receipt (PDF) is written and the buffer and the package are purged.
"""

import hashlib
from collections.abc import Iterator

from sqlmodel import select

from services.common.clock import to_us
from services.common.db import session
from services.common.pb.csu.v1 import requisition_pb2
from services.common.refusals import Conflict, Denied, Invalid, NotFound
from services.requisition import documents, fields, packaging, purge, receipt, register, transitions, workflow
from services.requisition.context import Context
from services.requisition.models import Document, RegisterEntry, Requisition, Transition
from services.requisition.progress import Progress
from services.requisition.requisitions import KIND, load, move, parts_of, ranges_of

MEDIA = ("usb", "download")


def build_package(ctx: Context, request: requisition_pb2.BuildPackageRequest) -> Requisition:
    actor = request.actor
    if actor.partner:
        raise Denied("the CSU builds export packages")
    now = to_us(ctx.clock.now())
    with session(ctx.engine) as s:
        row = load(s, request.id, actor)
        if row.state != workflow.APPROVED:
            raise Conflict(f"request {row.number} is {row.state}: a package is built once the request is approved")
        ranges = ranges_of(s, row.id)
        parts = parts_of(s, row.id)
        history = transitions.of(s, KIND, row.id)
    progress = Progress(ctx.engine, row.id, "package_progress")
    progress.report(0.0, force=True)
    try:
        built = packaging.build(
            ctx, row, ranges, parts, history, now, actor.username, request.password, progress.report
        )
    finally:
        progress.write(None)
    with session(ctx.engine) as s:
        row = load(s, request.id, actor, lock=True)
        if row.state != workflow.APPROVED:
            ctx.exports.delete(built.key)
            raise Conflict(f"request {row.number} became {row.state} while its package was built")
        previous = row.package_key
        row.package_id, row.package_key, row.package_filename = built.package_id, built.key, built.filename
        row.package_sha256, row.package_size, row.package_encrypted = built.sha256, built.size, built.encrypted
        row.package_created_us, row.package_created_by = now, actor.username
        row.manifest_sha256, row.package_files = built.manifest_sha256, built.files
        row.updated_us = now
        s.add(row)
        s.commit()
    if previous and previous != built.key:
        ctx.exports.delete(previous)
    return row


def package_chunks(ctx: Context, request_id: str, actor: requisition_pb2.Actor) -> tuple[Requisition, Iterator[bytes]]:
    with session(ctx.engine) as s:
        row = load(s, request_id, actor)
    if row.purged_us is not None or row.state in (workflow.DELIVERED, workflow.CLOSED):
        raise NotFound(f"the package of request {row.number} was purged after delivery")
    if row.state != workflow.APPROVED or not row.package_key:
        raise Conflict(f"request {row.number} has no export package (it is {row.state})")
    return row, ctx.exports.iter_chunks(row.package_key)


def deliver(ctx: Context, request: requisition_pb2.DeliveryRequest) -> tuple[Requisition, Transition]:
    actor = request.actor
    now = to_us(ctx.clock.now())
    medium = fields.choice("medium", request.medium, MEDIA)
    claimed = request.package_sha256.strip().lower()
    with session(ctx.engine) as s:
        row = load(s, request.id, actor, lock=True)
        workflow.check(row.number, row.state, workflow.DELIVERED)
        if not row.package_key:
            raise Conflict(f"request {row.number} has no export package yet: build it first")
        if medium == "download":
            if not actor.partner or actor.partner != row.partner:
                raise Denied("a download is confirmed by the requesting partner's user, through the federation door")
            name, service, identity, partner = (
                actor.display_name or actor.username,
                row.requesting_service,
                actor.username,
                actor.partner,
            )
        else:
            if actor.partner:
                raise Denied("a handover on a USB medium is recorded by CSU staff")
            name = fields.line("recipient_name", request.recipient_name, 200)
            service = fields.line("recipient_service", request.recipient_service, 200)
            identity = fields.line("recipient_id", request.recipient_id, 200)
            partner = ""
        if claimed != row.package_sha256:
            raise Invalid(
                f"the SHA-256 given ({claimed or 'none'}) is not the package's: the recipient does not hold the "
                "package that was built"
            )
        transition = move(s, row, workflow.DELIVERED, actor, now, f"{medium} to {name} ({service})")
        entry = register.append(
            s,
            ctx.signer,
            cadence=ctx.cadence,
            time_us=now,
            kind="handover",
            request_id=row.id,
            request_number=row.number,
            actor=actor.username,
            payload={
                "recipient_name": name,
                "recipient_service": service,
                "recipient_id": identity,
                "recipient_partner": partner,
                "medium": medium,
                "package_filename": row.package_filename,
                "package_sha256": row.package_sha256,
                "manifest_sha256": row.manifest_sha256,
                "encrypted": row.package_encrypted,
                "files": row.package_files,
            },
        )
        row.delivered_us, row.delivery_medium = now, medium
        row.recipient_name, row.recipient_service, row.recipient_id = name, service, identity
        row.recipient_partner, row.delivery_recorded_by, row.delivery_seq = partner, actor.username, entry.seq
        s.add(row)
        s.commit()
        return row, transition


def write_receipt(ctx: Context, request_id: str) -> None:
    """The receipt PDF of a delivered request (idempotent; the deadline loop retries)."""
    with session(ctx.engine) as s:
        row = s.get(Requisition, request_id)
        if row is None or row.delivered_us is None or row.receipt_document_id:
            return
        entry = s.get(RegisterEntry, row.delivery_seq) if row.delivery_seq else None
    pdf = receipt.render(row, ctx.key_fingerprint, entry.seq if entry else 0, entry.entry_hash if entry else "")
    checked = documents.Checked(pdf, f"recepisse-{row.number}.pdf", documents.PDF, hashlib.sha256(pdf).hexdigest())
    doc = documents.store(
        ctx.documents,
        ctx.box,
        checked,
        owner_kind=KIND,
        owner_id=row.id,
        kind="receipt",
        created_us=to_us(ctx.clock.now()),
        created_by="system",
    )
    with session(ctx.engine) as s:
        row = s.exec(select(Requisition).where(Requisition.id == request_id).with_for_update()).one()
        if row.receipt_document_id:
            ctx.documents.delete(doc.object_key)
            return
        s.add(doc)
        row.receipt_document_id = doc.id
        s.add(row)
        s.commit()


def finish(ctx: Context, request_id: str, actor: str) -> None:
    """After delivery: the receipt, then the purge of the buffer and the package."""
    write_receipt(ctx, request_id)
    purge.purge(ctx, request_id, actor)


def receipt_of(ctx: Context, request_id: str, actor: requisition_pb2.Actor) -> tuple[Document, bytes]:
    with session(ctx.engine) as s:
        row = load(s, request_id, actor)
        doc = s.get(Document, row.receipt_document_id) if row.receipt_document_id else None
    if doc is None:
        raise NotFound(f"request {row.number} has no receipt (it is {row.state})")
    return doc, documents.read(ctx.documents, ctx.box, doc)
