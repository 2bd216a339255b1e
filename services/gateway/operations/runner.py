"""The operations' background work in a gateway process, started once NATS is connected:
- the alarm consumer (durable, shared by the replicas) and the refused-logins watch;
- the retry of viewing-room declarations not yet mailed to the prefecture;
- the console hub's subscription (pop-ups for the consoles connected to this replica);
- the partners' conventions (an alarm a month before one ends, and when it has ended).
"""

import asyncio
from collections.abc import Awaitable, Callable

from services.common.log import get_logger
from services.gateway.backends import Backends
from services.gateway.identity.federation import conventions
from services.gateway.operations import alarms, notifications, visitors

log = get_logger(__name__)


async def run(b: Backends, stop: asyncio.Event) -> None:
    """Until stop is set; every task restarts on its own after a failure (NATS or database away)."""
    assert b.nats is not None
    hub = notifications.hub(b)
    await hub.start(b.nats, b.settings.nats_prefix)

    async def forever(name: str, make: Callable[[], Awaitable[None]]) -> None:
        while not stop.is_set():
            try:
                await make()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - log, wait, start again
                log.error("operations task failed, restarting", task=name, error=repr(exc))
                try:
                    await asyncio.wait_for(stop.wait(), 2)
                except TimeoutError:
                    pass

    tasks = [
        asyncio.create_task(forever("alarms", lambda: alarms.consume(b, stop))),
        asyncio.create_task(forever("refused-logins", lambda: alarms.watch_refused_logins(b, stop))),
        asyncio.create_task(forever("partner-conventions", lambda: conventions.watch(b, stop))),
        asyncio.create_task(forever("visitor-mail", lambda: visitors.retry_loop(b.engine, b.settings, b.clock, stop))),
    ]
    try:
        await stop.wait()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await hub.stop()
