"""Events a test's platform published, read back from its JetStream events stream."""

from collections.abc import Callable

import nats
from nats.js.api import DeliverPolicy

from services.common import subjects
from services.common.pb.csu.v1.audit_pb2 import AuditEvent


async def stream_events[T](nats_url: str, prefix: str, name: str, parse: Callable[[bytes], T]) -> list[T]:
    """Every `name` event still in the stream, oldest first (read until two seconds bring nothing)."""
    nc = await nats.connect(nats_url)
    try:
        sub = await nc.jetstream().subscribe(
            subjects.event(prefix, name),
            stream=subjects.events_stream(prefix),
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.ALL,
        )
        found = []
        try:
            while True:
                found.append(parse((await sub.next_msg(timeout=2)).data))
        except nats.errors.TimeoutError:
            return found
    finally:
        await nc.close()


async def audit_events(nats_url: str, prefix: str) -> list[AuditEvent]:
    return await stream_events(nats_url, prefix, "audit", AuditEvent.FromString)
