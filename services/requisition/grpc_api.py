"""RequisitionService over gRPC: the gateway's way in. Each method runs the workflow function and
turns its refusals (services/common/refusals.py) into gRPC statuses with the message; uploads arrive as client
streams (meta first, then data), files leave as server streams (info first, then data)."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import grpc

from services.common import refusals
from services.common.clock import to_us
from services.common.hashchain import Verdict
from services.common.log import get_logger
from services.common.objectstore import ObjectNotFound, StoreUnavailable
from services.common.pb.csu.v1 import requisition_pb2, requisition_pb2_grpc
from services.common.refusals import Invalid, Refusal, TooLarge
from services.common.secretbox import SecretBoxError
from services.requisition import (
    citizens,
    delivery,
    events,
    extraction,
    kiosk,
    purge,
    register,
    register_render,
    requisitions,
    retention,
    stats,
)
from services.requisition.context import Context
from services.requisition.models import Requisition, Transition

log = get_logger(__name__)
CHUNK = 512 * 1024


async def _guard[T](context: grpc.aio.ServicerContext, work: Callable[[], Awaitable[T]]) -> T:
    try:
        return await work()
    except Refusal as exc:
        await refusals.abort(context, exc)
    except (StoreUnavailable, SecretBoxError) as exc:
        log.warning("store unavailable", error=str(exc))
        await context.abort(grpc.StatusCode.UNAVAILABLE, "the object store is unavailable; try again shortly")
    except ObjectNotFound as exc:
        await context.abort(grpc.StatusCode.NOT_FOUND, f"missing from the store: {exc}")
    raise AssertionError("unreachable")  # abort raises


async def _collect(requests: AsyncIterator[Any], max_bytes: int) -> tuple[Any, bytes]:
    meta = None
    data = bytearray()
    async for message in requests:
        if meta is None:
            if not message.HasField("meta"):
                raise Invalid("an upload starts with its description (meta)")
            meta = message.meta
        data += message.data
        if len(data) > max_bytes:
            raise TooLarge(f"the document is larger than the {max_bytes // (1024 * 1024)} MB allowed")
    if meta is None:
        raise Invalid("empty upload")
    return meta, bytes(data)


def _file_chunks(info: requisition_pb2.FileInfo, data: bytes) -> Iterator[requisition_pb2.FileChunk]:
    yield requisition_pb2.FileChunk(info=info)
    for i in range(0, len(data), CHUNK):
        yield requisition_pb2.FileChunk(data=data[i : i + CHUNK])


class RequisitionApi(requisition_pb2_grpc.RequisitionServiceServicer):
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def _describe(self, row: Requisition, actor: requisition_pb2.Actor) -> requisition_pb2.Requisition:
        return await asyncio.to_thread(requisitions.describe, self.ctx, row.id, actor)

    async def _changed(self, row: Requisition, transition: Transition) -> None:
        await events.state_changed(self.ctx, "requisition", row.id, row.number, transition)

    # -- requisitions -----------------------------------------------------------------------------

    async def CreateRequisition(self, request, context):
        async def work() -> requisition_pb2.Requisition:
            row, transition = await asyncio.to_thread(requisitions.create, self.ctx, request)
            await self._changed(row, transition)
            return await self._describe(row, request.actor)

        return await _guard(context, work)

    async def GetRequisition(self, request, context):
        return await _guard(
            context, lambda: asyncio.to_thread(requisitions.describe, self.ctx, request.id, request.actor)
        )

    async def ListRequisitions(self, request, context):
        async def work() -> requisition_pb2.ListRequisitionsResponse:
            rows = await asyncio.to_thread(requisitions.listing, self.ctx, request)
            return requisition_pb2.ListRequisitionsResponse(requisitions=rows)

        return await _guard(context, work)

    async def Extract(self, request, context):
        async def work() -> requisition_pb2.Requisition:
            row, transition = await extraction.extract(self.ctx, request.id, request.actor)
            await self._changed(row, transition)
            return await self._describe(row, request.actor)

        return await _guard(context, work)

    async def ReceiveRequisition(self, request_iterator, context):
        async def work() -> requisition_pb2.Requisition:
            meta, data = await _collect(request_iterator, self.ctx.settings.max_upload_bytes)
            row, transition = await asyncio.to_thread(requisitions.receive, self.ctx, meta, data)
            await self._changed(row, transition)
            return await self._describe(row, meta.actor)

        return await _guard(context, work)

    async def ReadDocument(self, request, context):
        doc, data = await _guard(
            context,
            lambda: asyncio.to_thread(
                requisitions.read_document, self.ctx, request.requisition_id, request.document_id, request.actor
            ),
        )
        info = requisition_pb2.FileInfo(
            filename=doc.filename, content_type=doc.content_type, size=doc.size, sha256=doc.sha256
        )
        for chunk in _file_chunks(info, data):
            yield chunk

    async def Approve(self, request, context):
        async def work() -> requisition_pb2.Requisition:
            row, transition = await asyncio.to_thread(requisitions.approve, self.ctx, request)
            await self._changed(row, transition)
            return await self._describe(row, request.actor)

        return await _guard(context, work)

    async def _end(self, request, context, target: str):
        async def work() -> requisition_pb2.Requisition:
            row, transition = await asyncio.to_thread(requisitions.end, self.ctx, request, target)
            await self._changed(row, transition)
            if target != "closed":
                try:
                    await asyncio.to_thread(purge.purge, self.ctx, row.id, request.actor.username)
                except (StoreUnavailable, OSError) as exc:
                    log.warning("purge deferred to the deadline loop", request=row.number, error=str(exc))
            return await self._describe(row, request.actor)

        return await _guard(context, work)

    async def Refuse(self, request, context):
        return await self._end(request, context, "refused")

    async def Cancel(self, request, context):
        return await self._end(request, context, "cancelled")

    async def Close(self, request, context):
        return await self._end(request, context, "closed")

    async def BuildPackage(self, request, context):
        async def work() -> requisition_pb2.Requisition:
            row = await asyncio.to_thread(delivery.build_package, self.ctx, request)
            return await self._describe(row, request.actor)

        return await _guard(context, work)

    async def ReadPackage(self, request, context):
        row, chunks = await _guard(
            context, lambda: asyncio.to_thread(delivery.package_chunks, self.ctx, request.id, request.actor)
        )
        yield requisition_pb2.FileChunk(
            info=requisition_pb2.FileInfo(
                filename=row.package_filename,
                content_type="application/zip",
                size=row.package_size,
                sha256=row.package_sha256,
            )
        )
        done = object()
        while True:
            try:
                data = await asyncio.to_thread(next, chunks, done)
            except (StoreUnavailable, ObjectNotFound) as exc:
                await context.abort(grpc.StatusCode.UNAVAILABLE, f"the package cannot be read: {exc}")
            if data is done:
                return
            yield requisition_pb2.FileChunk(data=data)

    async def RecordDelivery(self, request, context):
        async def work() -> requisition_pb2.Requisition:
            row, transition = await asyncio.to_thread(delivery.deliver, self.ctx, request)
            await self._changed(row, transition)
            try:
                await asyncio.to_thread(delivery.finish, self.ctx, row.id, request.actor.username)
            except (StoreUnavailable, OSError) as exc:
                log.warning("receipt or purge deferred to the deadline loop", request=row.number, error=str(exc))
            return await self._describe(row, request.actor)

        return await _guard(context, work)

    async def ReadReceipt(self, request, context):
        doc, data = await _guard(
            context, lambda: asyncio.to_thread(delivery.receipt_of, self.ctx, request.id, request.actor)
        )
        info = requisition_pb2.FileInfo(
            filename=doc.filename, content_type=doc.content_type, size=doc.size, sha256=doc.sha256
        )
        for chunk in _file_chunks(info, data):
            yield chunk

    async def RecordFeedback(self, request, context):
        async def work() -> requisition_pb2.Requisition:
            row = await asyncio.to_thread(requisitions.feedback, self.ctx, request)
            return await self._describe(row, request.actor)

        return await _guard(context, work)

    # -- the register ----------------------------------------------------------------------------

    async def ListRegister(self, request, context):
        rows = await asyncio.to_thread(
            register.entries,
            self.ctx.engine,
            after_seq=request.after_seq,
            limit=min(max(int(request.limit or 500), 1), 2000),
            start_us=request.start_us,
            end_us=request.end_us,
            request_id=request.request_id,
        )
        return requisition_pb2.ListRegisterResponse(entries=[entry_message(e) for e in rows])

    async def VerifyRegister(self, request, context):
        try:
            verdict = await asyncio.to_thread(self._verify_register)
        except StoreUnavailable as exc:
            await context.abort(
                grpc.StatusCode.UNAVAILABLE, f"the heads published outside the database cannot be read: {exc}"
            )
        return requisition_pb2.RegisterVerdict(
            ok=verdict.ok,
            entries=verdict.entries,
            first_bad_seq=verdict.first_bad_seq or 0,
            problem=verdict.problem or "",
            public_key_fingerprint=self.ctx.key_fingerprint,
        )

    async def RenderRegister(self, request, context):
        if request.format not in ("pdf", "csv", "json"):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "format must be pdf, csv or json")
        data, content_type = await asyncio.to_thread(self._render, request)
        info = requisition_pb2.FileInfo(
            filename=f"cahier-des-extractions.{request.format}", content_type=content_type, size=len(data)
        )
        for chunk in _file_chunks(info, data):
            yield chunk

    def _render(self, request: requisition_pb2.RenderRegisterRequest) -> tuple[bytes, str]:
        rows: list[register.RegisterEntry] = []
        after = 0
        while True:
            page = register.entries(
                self.ctx.engine, after_seq=after, limit=2000, start_us=request.start_us, end_us=request.end_us
            )
            rows += page
            if len(page) < 2000:
                break
            after = page[-1].seq
        if request.format == "csv":
            return register_render.to_csv(rows), "text/csv; charset=utf-8"
        if request.format == "json":
            return register_render.to_json(rows), "application/json"
        try:
            verdict = self._verify_register()
            text = (
                "chaîne intacte"
                if verdict.ok
                else f"CHAÎNE ROMPUE à l'entrée {verdict.first_bad_seq} ({verdict.problem})"
            )
        except StoreUnavailable as exc:
            text = f"chaîne non vérifiée : les têtes publiées hors de la base sont illisibles ({exc})"
        pdf = register_render.to_pdf(
            rows, text, request.actor.username, to_us(self.ctx.clock.now()), self.ctx.key_fingerprint
        )
        return pdf, "application/pdf"

    def _verify_register(self) -> Verdict:
        """The register, its checkpoints and the heads published outside the database."""
        return register.verify_anchored(self.ctx.engine, self.ctx.signer.keyring(), self.ctx.anchors, self.ctx.cadence)

    async def GetPublicKey(self, request, context):
        return requisition_pb2.PublicKey(pem=self.ctx.signer.public_pem(), fingerprint=self.ctx.key_fingerprint)

    async def GetStatistics(self, request, context):
        return await asyncio.to_thread(stats.compute, self.ctx, request)

    # -- citizens' access -------------------------------------------------------------------------

    async def CreateCitizenRequest(self, request_iterator, context):
        async def work() -> requisition_pb2.CitizenRequest:
            meta, data = await _collect(request_iterator, self.ctx.settings.max_upload_bytes)
            row, opened = await citizens.create(self.ctx, meta, data)
            await events.state_changed(self.ctx, "citizen_request", row.id, row.number, opened)
            return await citizens.describe(self.ctx, row.id, operator_view=False)

        return await _guard(context, work)

    async def GetCitizenRequest(self, request, context):
        return await _guard(context, lambda: citizens.describe(self.ctx, request.id, request.operator_view))

    async def ListCitizenRequests(self, request, context):
        async def work() -> requisition_pb2.ListCitizenRequestsResponse:
            return requisition_pb2.ListCitizenRequestsResponse(requests=await citizens.listing(self.ctx, request))

        return await _guard(context, work)

    async def ReadCitizenDocument(self, request, context):
        doc, data = await _guard(context, lambda: asyncio.to_thread(citizens.identity_document, self.ctx, request.id))
        info = requisition_pb2.FileInfo(
            filename=doc.filename, content_type=doc.content_type, size=doc.size, sha256=doc.sha256
        )
        for chunk in _file_chunks(info, data):
            yield chunk

    async def RecordSearch(self, request, context):
        async def work() -> requisition_pb2.CitizenRequest:
            row = await citizens.record_search(self.ctx, request)
            return await citizens.describe(self.ctx, row.id, operator_view=True)

        return await _guard(context, work)

    async def StartRedaction(self, request, context):
        async def work() -> requisition_pb2.CitizenRequest:
            row = await citizens.start_redaction(self.ctx, request)
            return await citizens.describe(self.ctx, row.id, operator_view=True)

        return await _guard(context, work)

    async def OpenKioskSession(self, request, context):
        return await _guard(context, lambda: kiosk.open_session(self.ctx, request))

    async def PairKiosk(self, request, context):
        return await _guard(context, lambda: kiosk.pair(self.ctx, request))

    async def GetKioskSession(self, request, context):
        return await _guard(context, lambda: asyncio.to_thread(kiosk.session_info, self.ctx, request.token))

    async def ReadKioskClip(self, request, context):
        stream = kiosk.clip(self.ctx, request)
        while True:
            try:
                chunk = await anext(stream)
            except StopAsyncIteration:
                return
            except Refusal as exc:
                await refusals.abort(context, exc)
            yield chunk

    async def RecordOutcome(self, request, context):
        async def work() -> requisition_pb2.CitizenRequest:
            row = await citizens.close(self.ctx, request.id, request.actor, request.outcome, request.reason)
            return await citizens.describe(self.ctx, row.id, operator_view=False)

        return await _guard(context, work)

    async def EraseExpired(self, request, context):
        """The gateway's retention sweep (services/gateway/operations/retention.py)."""

        async def work() -> requisition_pb2.EraseExpiredResponse:
            erased, oldest = await retention.erase_expired(self.ctx, request.kind, request.before_us, request.dry_run)
            return requisition_pb2.EraseExpiredResponse(erased=erased, oldest_kept_us=oldest)

        return await _guard(context, work)


def entry_message(e: register.RegisterEntry) -> requisition_pb2.RegisterEntry:
    return requisition_pb2.RegisterEntry(
        seq=e.seq,
        time_us=e.time_us,
        kind=e.kind,
        request_id=e.request_id,
        request_number=e.request_number,
        actor=e.actor,
        payload_json=e.payload_json,
        prev_hash=e.prev_hash,
        entry_hash=e.entry_hash,
        signature=e.signature,
        key_fingerprint=e.key_fingerprint,
    )
