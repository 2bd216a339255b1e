"""The ingest service process: the registry database, one IngestNode (this replica), the gRPC API.

On first start with an empty registry, the registry is seeded from CSU_CAMERAS_FILE (or the two
demo cameras). Camera credentials are sealed with the key in CSU_SECRETS_KEY_FILE: without it
ingest refuses to start rather than store them in clear.
"""

import asyncio

from nats.aio.client import Client

from services.common import bus, db, rpc
from services.common.cameras import load_catalogue
from services.common.clock import SystemClock
from services.common.log import get_logger
from services.common.pb.csu.v1 import ingest_pb2_grpc
from services.common.secretbox import SecretBox
from services.common.service import Runtime
from services.ingest.grpc_api import IngestApi
from services.ingest.node import IngestNode
from services.ingest.registry import Registry

log = get_logger(__name__)

# Recording profile given to catalogue cameras that do not state one (the demo cameras' own).
SEED_PROFILE = (704, 576, 10.0)


async def run(runtime: Runtime) -> None:
    settings = runtime.settings
    box = SecretBox.from_file(settings.secrets_key_file)
    engine = db.make_engine(settings)
    clock = SystemClock()
    registry = Registry(engine, box, clock)
    nc: Client | None = None
    runtime.add_check("nats", bus.nats_ready(lambda: nc))
    runtime.add_check("database", lambda: asyncio.to_thread(db.ping, engine))
    serving = runtime.add_step("grpc")

    if not await runtime.until_ok(
        "database", lambda: db.migrate("ingest", engine) if settings.db_auto_migrate else None
    ):
        return

    def seed() -> None:
        seeded = registry.seed(load_catalogue(settings), SEED_PROFILE)
        if seeded:
            log.info("camera registry seeded", cameras=seeded, source=str(settings.cameras_file or "demo cameras"))

    if not await runtime.until_ok("registry seed", seed):
        return
    nc = await bus.connect_with_retry(settings, "ingest", runtime.stop)
    if nc is None:
        return
    node = IngestNode(settings, registry, nc, capture_clock=clock, policy_clock=clock)
    await node.start()
    server = await rpc.start_server(
        f"{settings.bind_host}:{settings.ingest_grpc.rsplit(':', 1)[1]}",
        [lambda s: ingest_pb2_grpc.add_IngestServiceServicer_to_server(IngestApi(node), s)],
    )
    serving.set()
    await runtime.stop.wait()
    serving.clear()
    await server.stop(grace=2)
    await node.stop()
    await nc.drain()
    await node.join_workers(settings.source_read_timeout_s + 2)
    engine.dispose()
