"""The requisition service: judicial requisitions and their signed register, export packages,
citizens' access requests and the kiosk — served over gRPC to the gateway (RequisitionService).

It needs the deployment's signing key (register entries, export manifests) and secrets key
(documents are stored encrypted): without either it refuses to start. Start-up: migrations, the
three buckets (extractions: the buffer; documents; exports), NATS (audit records, state events,
alarms), the gRPC API, then the deadline loop.

Why the extraction bucket has no lifecycle rule: a buffer copy that has not reached the
requisition stage is purged at the footage's own retention by the deadline loop (to the minute,
with a register entry); once the signed requisition has arrived, the footage is tied to a judicial
procedure — the retention limit of the Code de la sécurité intérieure (art. L252-5: "hormis le cas
d'une enquête de flagrant délit, d'une enquête préliminaire ou d'une information judiciaire") does
not apply to it — and it is kept for that procedure until handed over, then purged. A fixed expiry
rule could destroy evidence a magistrate has required.
"""

import asyncio
import shutil
from pathlib import Path

from nats.aio.client import Client

from services.common import anchoring, bus, db, rpc
from services.common.clock import Clock, SystemClock, to_us
from services.common.log import get_logger
from services.common.objectstore import ObjectLockMissing, make_store
from services.common.pb.csu.v1 import archive_pb2_grpc, masking_pb2_grpc, requisition_pb2_grpc
from services.common.secretbox import SecretBox
from services.common.service import Runtime
from services.common.settings import Settings
from services.common.signing import Signer
from services.requisition import deadlines, register
from services.requisition.context import Context
from services.requisition.grpc_api import RequisitionApi

log = get_logger(__name__)


def build_context(settings: Settings, clock: Clock, engine=None) -> Context:
    """Everything the service works with (tests build it with their own clock and servers)."""
    return Context(
        settings=settings,
        engine=engine if engine is not None else db.make_engine(settings),
        clock=clock,
        signer=Signer.from_file(settings.signing_key_file),
        box=SecretBox.from_file(settings.secrets_key_file),
        extractions=make_store(settings, settings.bucket_extractions),
        documents=make_store(settings, settings.bucket_documents),
        exports=make_store(settings, settings.bucket_exports),
        archive=archive_pb2_grpc.ArchiveServiceStub(rpc.channel(settings.archive_grpc)),
        masking=masking_pb2_grpc.MaskingServiceStub(rpc.channel(settings.masking_grpc)),
        work_dir=(settings.data_dir / "work" / "requisition").resolve(),
    )


def prepare_stores(ctx: Context) -> None:
    for store in (ctx.extractions, ctx.documents, ctx.exports):
        store.ensure_bucket()
    try:
        ctx.anchors.ensure()  # made with object lock: where the register's head is published
    except ObjectLockMissing as exc:
        # Loud, not fatal: the register works and is checked against its signed checkpoints; the
        # anchoring loop keeps saying that nothing can be published (csu_chain_anchor_failures_total).
        log.error("the anchors bucket has no object lock: the register's head cannot be published", error=str(exc))


async def serve(ctx: Context, address: str):
    return await rpc.start_server(
        address, [lambda s: requisition_pb2_grpc.add_RequisitionServiceServicer_to_server(RequisitionApi(ctx), s)]
    )


async def run(runtime: Runtime) -> None:
    settings = runtime.settings
    # Refuse to start without the keys: no register entry or package may go unsigned or unencrypted.
    ctx = build_context(settings, SystemClock())
    nc: Client | None = None
    runtime.add_check("nats", bus.nats_ready(lambda: nc))
    runtime.add_check("database", lambda: asyncio.to_thread(db.ping, ctx.engine))
    runtime.add_check("object_store", lambda: asyncio.to_thread(ctx.documents.ping))
    serving = runtime.add_step("grpc")
    if not await runtime.until_ok(
        "database", lambda: db.migrate("requisition", ctx.engine) if settings.db_auto_migrate else None
    ):
        return
    if not await runtime.until_ok("object store", lambda: prepare_stores(ctx)):
        return
    # Packages and kiosk clips a killed run was building are footage: nothing of them may linger.
    await asyncio.to_thread(_clear_work, ctx.work_dir)
    nc = await bus.connect_with_retry(settings, "requisition", runtime.stop)
    if nc is None:
        return
    ctx.js = nc.jetstream()
    await bus.ensure_events_stream(ctx.js, settings.nats_prefix)
    server = await serve(ctx, f"{settings.bind_host}:{settings.requisition_grpc.rsplit(':', 1)[1]}")
    serving.set()
    loop = asyncio.create_task(deadlines.run(ctx, settings.requisition_deadline_check_s, runtime.stop))
    # The register's head, signed and published outside the database every few minutes; the last
    # round once the API has stopped appending.
    anchoring_stop = asyncio.Event()
    anchored = asyncio.create_task(
        anchoring.keep_anchored(
            register.CHAIN,
            lambda: register.checkpoint_now(ctx.engine, ctx.signer, to_us(ctx.clock.now()), ctx.cadence),
            lambda: register.newest_checkpoint(ctx.engine),
            ctx.anchors,
            settings.chain_checkpoint_minutes * 60,
            anchoring_stop,
        )
    )
    await runtime.stop.wait()
    serving.clear()
    await asyncio.gather(loop, return_exceptions=True)
    await server.stop(grace=5)
    anchoring_stop.set()
    await asyncio.gather(anchored, return_exceptions=True)
    await bus.close(nc)
    ctx.engine.dispose()


def _clear_work(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
