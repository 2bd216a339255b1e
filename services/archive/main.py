"""The archive service: records masked streams into segments, stores and indexes them, keeps them
exactly as long as allowed, and serves timelines, clips and extractions over gRPC.

Start-up, in order: database migrations (while the database is away, spooled segments past the
legal maximum are deleted all the same); the gRPC API; the gaps the previous run left (a crash
or a stop: "archive_restart"); then, as soon as the object store answers, in the background:
bucket, lifecycle rule, one retention sweep, the reconcile of the recent hours (index <-> store),
and the hash chains' heads — only then do spooled segments start leaving. Recording into the
spool starts as soon as NATS is connected, whatever the store's state, from the masked-frame
buffer, for the cameras this replica holds. What a replica does once running is node.py.
"""

import asyncio
import shutil

from nats.aio.client import Client

from services.archive import ledger
from services.archive.grpc_api import ArchiveApi
from services.archive.holds import HoldBook
from services.archive.node import ArchiveNode
from services.archive.recorder import expire_past_legal
from services.archive.retention import RetentionPolicy
from services.archive.spool import Spool
from services.common import bus, db, rpc
from services.common.clock import Clock, SystemClock, to_us
from services.common.leases import replica_slot
from services.common.log import get_logger
from services.common.objectstore import make_store
from services.common.pb.csu.v1 import archive_pb2_grpc, ingest_pb2_grpc
from services.common.service import Runtime

log = get_logger(__name__)


async def run(runtime: Runtime) -> None:
    settings = runtime.settings
    clock: Clock = SystemClock()
    engine = db.make_engine(settings)
    store = make_store(settings, settings.bucket_recordings)
    # One spool per replica: replicas sharing a data folder (make run, tests) each take a slot of it.
    slot = replica_slot("archive", settings.data_dir)
    folder = "archive" if not slot else f"archive-{slot}"
    spool = Spool((settings.data_dir / "spool" / folder).resolve(), settings.archive_spool_max_bytes)
    ingest_channel = rpc.channel(settings.ingest_grpc)
    ingest = ingest_pb2_grpc.IngestServiceStub(ingest_channel)
    retention = RetentionPolicy(settings.retention_days, ingest, engine=engine, clock=clock)
    nc: Client | None = None
    runtime.add_check("nats", bus.nats_ready(lambda: nc))
    runtime.add_check("database", lambda: asyncio.to_thread(db.ping, engine))
    runtime.add_check("object_store", lambda: asyncio.to_thread(store.ping))
    serving = runtime.add_step("grpc")

    def open_database() -> None:
        if settings.db_auto_migrate:
            db.migrate("archive", engine)
        retention.load()

    # Until the database answers, the cameras' retention and the holds are unknown, but the legal
    # maximum is not: spooled segments past it go even while the archive cannot start.
    if not await runtime.until_ok(
        "database", open_database, while_waiting=lambda: expire_past_legal(spool, to_us(clock.now()))
    ):
        return
    holds = HoldBook(engine, clock)
    book = ledger.Book.from_settings(settings, engine, clock)  # the segment ledger (ledger.py)
    node = ArchiveNode(settings, engine, store, spool, retention, holds, clock, runtime.stop, ingest)
    clips_dir = (settings.data_dir / "cache" / "archive-clips").resolve()
    # Clips a killed run was building are footage too: they must not linger past retention.
    shutil.rmtree(clips_dir, ignore_errors=True)
    api = ArchiveApi(
        engine,
        store,
        clock=clock,
        retention=retention,
        max_query_range_hours=settings.max_query_range_hours,
        work_dir=clips_dir,
        live=node,
        store_for=lambda bucket: make_store(settings, bucket),
        holds=holds,
        ledger=book,
    )
    server = await rpc.start_server(
        f"{settings.bind_host}:{settings.archive_grpc.rsplit(':', 1)[1]}",
        [lambda s: archive_pb2_grpc.add_ArchiveServiceServicer_to_server(api, s)],
    )
    serving.set()
    await retention.refresh()
    recovered = await node.recover()

    nc = await bus.connect_with_retry(settings, "archive", runtime.stop)
    if nc is None:
        await server.stop(None)
        await ingest_channel.close()
        return
    await node.start(nc)
    ledger_stop = asyncio.Event()  # set once the last segments are stored: they are ledgered too
    ledgering = asyncio.create_task(ledger.run(book, settings.chain_checkpoint_minutes * 60, ledger_stop))
    log.info("archive running", recovered_segments=recovered, spool=str(spool.root))
    await runtime.stop.wait()
    serving.clear()

    await node.stop()
    ledger_stop.set()
    await asyncio.gather(ledgering, return_exceptions=True)
    await server.stop(grace=2)
    await bus.close(nc)
    await ingest_channel.close()
    engine.dispose()
