"""The requisition service.

Its workflow (requisitions, the signed register, exports, citizens' access) comes with the
requisitions issue; until then the process runs with its health, readiness and metrics so the
deployment, the launcher and the chart already treat it as one of the five services.
"""

import asyncio

from nats.aio.client import Client

from services.common import bus, db
from services.common.service import Runtime


async def run(runtime: Runtime) -> None:
    engine = db.make_engine(runtime.settings)
    nc: Client | None = None
    runtime.add_check("nats", bus.nats_ready(lambda: nc))
    runtime.add_check("database", lambda: asyncio.to_thread(db.ping, engine))
    nc = await bus.connect_with_retry(runtime.settings, "requisition", runtime.stop)
    await runtime.stop.wait()
    await bus.close(nc)
    engine.dispose()
