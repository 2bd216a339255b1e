"""The archive service: records masked streams into segments, stores and indexes them."""

import asyncio

from nats.aio.client import Client
from nats.aio.msg import Msg

from services.archive.grpc_api import ArchiveApi
from services.archive.recorder import Recorder
from services.archive.segmenter import DROPPED, SegmentBuilder
from services.common import bus, db, rpc, subjects
from services.common.clock import SystemClock
from services.common.envelope import parse_frame
from services.common.log import get_logger
from services.common.objectstore import make_store
from services.common.pb.csu.v1 import archive_pb2_grpc
from services.common.service import Runtime

log = get_logger(__name__)


async def run(runtime: Runtime) -> None:
    settings = runtime.settings
    engine = db.make_engine(settings)
    store = make_store(settings, settings.bucket_recordings)
    spool = (settings.data_dir / "spool" / "archive").resolve()
    spool.mkdir(parents=True, exist_ok=True)
    nc: Client | None = None
    runtime.add_check("nats", bus.nats_ready(lambda: nc))
    runtime.add_check("database", lambda: asyncio.to_thread(db.ping, engine))
    runtime.add_check("object_store", lambda: asyncio.to_thread(store.ping))

    await _until_ok(runtime, "database", lambda: db.migrate("archive", engine) if settings.db_auto_migrate else None)
    await _until_ok(runtime, "object store", store.ensure_bucket)
    server = await rpc.start_server(
        f"{settings.bind_host}:{settings.archive_grpc.rsplit(':', 1)[1]}",
        [lambda s: archive_pb2_grpc.add_ArchiveServiceServicer_to_server(ArchiveApi(engine, store), s)],
    )
    nc = await bus.connect_with_retry(settings, "archive", runtime.stop)
    if nc is None:
        await server.stop(None)
        return
    js = nc.jetstream()
    await bus.ensure_events_stream(js, settings.nats_prefix)

    recorder = Recorder(spool, store, engine, js, settings.nats_prefix, SystemClock())
    recovered = recorder.recover()
    builders: dict[tuple[str, str], SegmentBuilder] = {}
    prefix = settings.nats_prefix

    async def on_masked(msg: Msg) -> None:
        try:
            packet = parse_frame(msg.subject, msg.data, lambda cam, stream: subjects.masked(prefix, cam, stream))
        except ValueError:
            DROPPED.labels("unknown", "malformed").inc()
            return
        key = (packet.camera_id, packet.stream)
        builder = builders.get(key)
        if builder is None:
            builder = builders[key] = SegmentBuilder(
                packet.camera_id, packet.stream, spool, settings.segment_duration_s, settings.segment_gap_s
            )
        for closed in builder.add(packet):
            recorder.submit(closed)

    async def watch_idle() -> None:
        while True:
            await asyncio.sleep(0.5)
            for builder in builders.values():
                closed = builder.close_if_idle()
                if closed is not None:
                    recorder.submit(closed)

    storing = asyncio.create_task(recorder.run())
    idle = asyncio.create_task(watch_idle())
    subscription = await nc.subscribe(
        subjects.masked(settings.nats_prefix, "*", "main"),
        cb=on_masked,
        pending_msgs_limit=100_000,
        pending_bytes_limit=512 * 1024 * 1024,
    )
    log.info("archive running", recovered_segments=recovered, spool=str(spool))
    await runtime.stop.wait()

    await subscription.unsubscribe()
    idle.cancel()
    # Close what is open so a clean stop loses nothing; the spool keeps it if storing is slow.
    for builder in builders.values():
        closed = builder.close()
        if closed is not None:
            recorder.submit(closed)
    try:
        await asyncio.wait_for(recorder.drain(), timeout=15)
    except TimeoutError:
        log.warning("stopping with segments still in the spool; they are stored at next start")
    storing.cancel()
    await server.stop(grace=2)
    await nc.drain()
    engine.dispose()


async def _until_ok(runtime: Runtime, what: str, action) -> None:  # type: ignore[no-untyped-def]
    """Retry a start-up step until it works: dependencies may come up after us."""
    delay = 0.5
    while not runtime.stop.is_set():
        try:
            await asyncio.to_thread(action)
            return
        except Exception as exc:  # noqa: BLE001
            log.warning(f"{what} not ready yet", error=str(exc))
            try:
                await asyncio.wait_for(runtime.stop.wait(), delay)
            except TimeoutError:
                pass
            delay = min(delay * 2, 5.0)
