"""The masking service: the only reader of raw frames, the only writer of masked ones.

Start-up: masking's own tables (Alembic, masking_*), the catalogue's masks imported as approved
version 1 of each camera without a mask set (so existing deployments keep their masks), then the
replica (node.py: per-camera leases, lanes, previews), the redaction worker, and MaskingService on
CSU_MASKING_GRPC.
"""

import asyncio
import contextlib
from pathlib import Path

from nats.aio.client import Client

from services.common import bus, db, rpc
from services.common.cameras import load_cameras
from services.common.clock import SystemClock
from services.common.log import get_logger
from services.common.objectstore import make_store
from services.common.pb.csu.v1 import archive_pb2_grpc, ingest_pb2_grpc, masking_pb2_grpc
from services.common.service import Runtime
from services.common.settings import Settings
from services.common.signing import Signer, SigningKeyError
from services.masking.grpc_api import MaskingApi
from services.masking.node import MaskingNode
from services.masking.projection import Position, default_optics, model_for
from services.masking.redaction.jobs import RedactionJobs
from services.masking.redaction.worker import RedactionWorker
from services.masking.store import CatalogueMasks, MaskStore
from services.masking.validation import check_polygons

log = get_logger(__name__)
GRPC_RETRY_S = 5.0


def catalogue_masks(settings: Settings) -> list[CatalogueMasks]:
    """The catalogue's masks, in each camera's space: image coordinates as they are for fixed
    cameras; for PTZ cameras, taken as drawn at the home position (0, 0, 0) and converted through
    the default optics. No calibration stands behind those: a PTZ camera with catalogue masks is
    masked whole (and alarmed) until it is calibrated and a set drawn under that is approved."""
    optics = default_optics(settings)
    result = []
    for camera in load_cameras(settings):
        polygons = [[(float(x), float(y)) for x, y in polygon] for polygon in camera.masks]
        model = model_for(camera.ptz_driver, optics)
        if model is None:
            result.append(CatalogueMasks(camera.id, "image", polygons))
            continue
        aspect = camera.profile.width / camera.profile.height if camera.profile else 16 / 9
        home = Position(0.0, 0.0, 0.0)
        converted = [[model.unproject(p, home, aspect) for p in polygon] for polygon in polygons]
        result.append(CatalogueMasks(camera.id, "ptz", check_polygons(converted, "ptz") if converted else []))
    return result


def _public_key(settings: Settings) -> str | None:
    """The deployment's public key, to check statements with, when this service is given the key."""
    try:
        return Signer.from_file(settings.signing_key_file).public_pem()
    except SigningKeyError:
        return None


async def _serve_grpc(runtime: Runtime, api: MaskingApi, serving: asyncio.Event) -> None:
    """MaskingService; a port that cannot be bound is retried (the frame path must not stop for it),
    and the service is not ready until it is served."""
    settings = runtime.settings
    address = f"{settings.bind_host}:{settings.masking_grpc.rsplit(':', 1)[1]}"
    server = None
    while server is None and not runtime.stop.is_set():
        try:
            server = await rpc.start_server(
                address, [lambda s: masking_pb2_grpc.add_MaskingServiceServicer_to_server(api, s)]
            )
        except RuntimeError as exc:
            log.error("MaskingService not served yet", address=address, error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(runtime.stop.wait(), GRPC_RETRY_S)
        else:
            serving.set()
    await runtime.stop.wait()
    serving.clear()
    if server is not None:
        await server.stop(grace=2)


async def run(runtime: Runtime) -> None:
    settings = runtime.settings
    clock = SystemClock()
    engine = db.make_engine(settings)
    store = MaskStore(engine, clock)
    jobs = RedactionJobs(engine, clock)
    nc: Client | None = None
    runtime.add_check("nats", bus.nats_ready(lambda: nc))
    runtime.add_check("database", lambda: asyncio.to_thread(db.ping, engine))
    serving = runtime.add_step("grpc")

    def prepare() -> None:
        if settings.db_auto_migrate:
            db.migrate("masking", engine)
        imported = store.import_catalogue(catalogue_masks(settings))
        if imported:
            log.info("catalogue masks imported as approved version 1", cameras=imported)

    if not await runtime.until_ok("masking database", prepare):
        return
    nc = await bus.connect_with_retry(settings, "masking", runtime.stop)
    if nc is None:
        return
    ingest_channel, archive_channel = rpc.channel(settings.ingest_grpc), rpc.channel(settings.archive_grpc)
    ingest = ingest_pb2_grpc.IngestServiceStub(ingest_channel)
    archive = archive_pb2_grpc.ArchiveServiceStub(archive_channel)
    node = MaskingNode(settings, store, nc, ingest, public_key_pem=_public_key(settings))
    await bus.ensure_events_stream(nc.jetstream(), settings.nats_prefix)
    # The archive records from this buffer: it must keep frames even before an archive first starts.
    await bus.ensure_masked_stream(
        nc.jetstream(), settings.nats_prefix, settings.masked_buffer_s, settings.masked_buffer_max_bytes
    )
    await node.start()
    redactions = make_store(settings, settings.bucket_redactions)
    grey = _bgr(settings.mask_colour)
    worker = RedactionWorker(
        jobs, archive, redactions, node.replica_id, grey, settings.redaction_max_days,
        Path(settings.data_dir) / "masking-work", settings.stream_stall_s,
    )  # fmt: skip
    api = MaskingApi(settings, store, jobs, node, ingest, archive, redactions, _public_key(settings))
    tasks = [asyncio.create_task(_serve_grpc(runtime, api, serving)), asyncio.create_task(_worker(runtime, worker))]
    log.info("masking running", replica=node.replica_id)
    await runtime.stop.wait()
    await node.stop()
    await asyncio.gather(*tasks, return_exceptions=True)
    await bus.close(nc)
    await ingest_channel.close()
    await archive_channel.close()
    engine.dispose()


async def _worker(runtime: Runtime, worker: RedactionWorker) -> None:
    if not await runtime.until_ok("redaction bucket", worker.prepare):
        return
    await worker.run(runtime.stop)


def _bgr(colour: str) -> tuple[int, int, int]:
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return b, g, r
