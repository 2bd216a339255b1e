"""The gateway service: the HTTP app (served by run_service) plus its NATS connection."""

from services.common import bus
from services.common.pb.csu.v1 import ingest_pb2
from services.common.service import Runtime
from services.gateway.backends import Backends


async def run(runtime: Runtime) -> None:
    assert runtime.app is not None
    b: Backends = runtime.app.state.backends
    runtime.add_check("nats", bus.nats_ready(lambda: b.nats))

    async def ingest_reachable() -> bool:
        await b.ingest.ListCameras(ingest_pb2.ListCamerasRequest(), timeout=2)
        return True

    runtime.add_check("ingest", ingest_reachable)
    b.nats = await bus.connect_with_retry(runtime.settings, "gateway", runtime.stop)
    await runtime.stop.wait()
    if b.nats is not None:
        await b.nats.drain()
    await b.close()
