"""NATS connection, the durable event stream and the masked-frame buffer.

Frames travel on core NATS: they are many, small and perishable, and a consumer that falls behind
must lose frames rather than stall a camera. Events travel on JetStream: a consumer acks them, and
none is lost across restarts.

Masked main-stream frames are also kept, for a bounded window, by a JetStream stream of their own
(`masked_stream`): masking still publishes them on core NATS (a camera never waits for storage),
the server keeps a copy, and the archive records from that copy (archive/intake.py), so an archive
restart, rollout or handover shorter than the window loses nothing. Raw frames are never kept.
Design: docs/design/reliability.md
"""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BadRequestError, FetchTimeoutError, NotFoundError

from services.common import subjects
from services.common.log import get_logger
from services.common.settings import Settings, redact_url

log = get_logger(__name__)

# Frames of 1080p keyframes exceed NATS's 1 MB default; servers are configured for 8 MB.
MAX_PAYLOAD_HINT = 8 * 1024 * 1024
EVENTS_MAX_AGE = timedelta(days=7)
DRAIN_TIMEOUT_S = 3.0


async def connect(settings: Settings, name: str) -> Client:
    """Connect, then keep reconnecting forever: a NATS restart must never take a service down."""

    async def on_disconnect() -> None:
        log.warning("nats disconnected")

    async def on_reconnect() -> None:
        log.info("nats reconnected")

    async def on_error(exc: Exception) -> None:
        log.warning("nats error", error=str(exc))

    servers = [s.strip() for s in settings.nats_url.split(",") if s.strip()]
    nc = await nats.connect(
        servers=servers,
        name=name,
        user=settings.nats_user or None,
        password=settings.nats_password.get_secret_value() or None,
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        connect_timeout=5,
        # The bound on stopping if a subscription never finishes draining (see `release`): nats-py's
        # default, 30 s, outlasts a pod's grace period. JetStream redelivers what was not acked.
        drain_timeout=DRAIN_TIMEOUT_S,
        allow_reconnect=True,
        disconnected_cb=on_disconnect,
        reconnected_cb=on_reconnect,
        error_cb=on_error,
    )
    log.info("nats connected", url=redact_url(nc.connected_url.geturl() if nc.connected_url else ""))
    return nc


async def connect_with_retry(settings: Settings, name: str, stop: asyncio.Event) -> Client | None:
    """Keep trying to connect until it works or stop is set (start-up order must not matter)."""
    delay = 0.5
    while not stop.is_set():
        try:
            return await connect(settings, name)
        except Exception as exc:  # noqa: BLE001 - any connect failure is retried the same way
            log.warning("nats not reachable yet", error=str(exc) or type(exc).__name__)
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except TimeoutError:
                pass
            delay = min(delay * 2, 5.0)
    return None


async def ensure_events_stream(js: JetStreamContext, prefix: str) -> None:
    """Create (or bring up to date) the JetStream stream that keeps every <prefix>.events.>."""
    name = subjects.events_stream(prefix)
    config = StreamConfig(
        name=name,
        subjects=[subjects.event(prefix, ">")],
        max_age=EVENTS_MAX_AGE.total_seconds(),
    )
    try:
        await js.stream_info(name)
        await js.update_stream(config)
    except NotFoundError:
        try:
            await js.add_stream(config)
        except BadRequestError:
            # Another service created it between our two calls.
            await js.stream_info(name)


async def ensure_masked_stream(js: JetStreamContext, prefix: str, window_s: float, max_bytes: int) -> None:
    """Create (or bring to these limits) the stream keeping the last `window_s` of masked main streams.

    Limits, not acks, decide what goes: the oldest frames leave once past the window or the byte
    budget, whether or not the archive has read them (it records what it read, and a stream that
    kept unread frames forever would fill the disk while the archive is down). Files, not memory:
    a NATS restart keeps the window, and its RAM cost stays the server's block cache.
    """
    name = subjects.masked_stream(prefix)
    config = StreamConfig(
        name=name,
        subjects=[subjects.masked(prefix, "*", "main")],
        retention=RetentionPolicy.LIMITS,
        discard=DiscardPolicy.OLD,
        storage=StorageType.FILE,
        max_age=window_s,
        max_bytes=max_bytes,
        max_msg_size=MAX_PAYLOAD_HINT,
    )
    try:
        current = await js.stream_info(name)
        if (current.config.max_age, current.config.max_bytes) != (config.max_age, config.max_bytes):
            await js.update_stream(config)
    except NotFoundError:
        try:
            await js.add_stream(config)
        except BadRequestError:
            await js.stream_info(name)  # another service created it between our two calls


async def publish_event(js: JetStreamContext, prefix: str, kind: str, payload: bytes) -> None:
    """Publish an event and wait for JetStream's ack: the event is stored when this returns."""
    await js.publish(subjects.event(prefix, kind), payload, stream=subjects.events_stream(prefix))


async def consume_events(
    js: JetStreamContext,
    prefix: str,
    kind: str,
    durable: str,
    handle: Callable[[Msg], Awaitable[None]],
    stop: asyncio.Event,
    batch: int = 50,
) -> None:
    """Hand every `<prefix>.events.<kind>` event to `handle`, then ack it; until `stop` is set.

    One durable pull consumer, shared by the replicas of a service: each event is handled by one of
    them, and events published while none runs are handled when one starts. `handle` raising means
    "not now" (its database is away, say): the event stays unacked and is handed again a second
    later, so nothing is lost and order is kept. A handler drops a malformed event by returning.
    """
    subject = subjects.event(prefix, kind)
    config = ConsumerConfig(
        durable_name=durable,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        filter_subject=subject,
        ack_wait=30,
        max_ack_pending=1000,
    )
    sub = None
    try:
        while not stop.is_set():
            if sub is None:
                try:
                    sub = await js.pull_subscribe(
                        subject, durable=durable, stream=subjects.events_stream(prefix), config=config
                    )
                except Exception as exc:  # noqa: BLE001 - NATS away at start: try again
                    log.warning("event consumer not ready", consumer=durable, error=str(exc) or type(exc).__name__)
                    await asyncio.sleep(1)
                    continue
            try:
                messages = await sub.fetch(batch, timeout=1)
            except (FetchTimeoutError, NatsTimeoutError):
                continue
            except Exception as exc:  # noqa: BLE001 - NATS away: wait and fetch again
                log.warning("event fetch failed", consumer=durable, error=str(exc) or type(exc).__name__)
                await asyncio.sleep(1)
                continue
            for message in messages:
                while True:
                    try:
                        await handle(message)
                        break
                    except Exception as exc:  # noqa: BLE001 - not now: keep it unacked, hand it again
                        log.warning(
                            "event not handled yet, retrying", consumer=durable, error=str(exc) or type(exc).__name__
                        )
                        await asyncio.sleep(1)
                        if stop.is_set():
                            return
                await message.ack()
    finally:
        await release(sub)


async def release(sub: JetStreamContext.PullSubscription | None) -> None:
    """Unsubscribe a pull consumer's inbox as its task ends, cancelled or not; the durable consumer stays.

    A subscription left behind by a cancelled fetch never finishes draining, so `close` would wait
    out the whole drain timeout and stopping would overrun a pod's grace period.
    """
    if sub is None:
        return
    try:
        await sub.unsubscribe()
    except Exception as exc:  # noqa: BLE001 - connection already closed: nothing left to release
        log.debug("pull subscription not released", error=str(exc) or type(exc).__name__)


async def close(nc: Client | None) -> None:
    """Drain (deliver what is pending) when connected, else just close: stopping never fails on NATS."""
    if nc is None:
        return
    try:
        if nc.is_connected:
            await nc.drain()
        else:
            await nc.close()
    except Exception as exc:  # noqa: BLE001 - NATS is going away anyway
        log.warning("nats close failed", error=str(exc) or type(exc).__name__)


NatsCheck = Callable[[], Awaitable[bool]]


# A readiness probe's round trip to NATS: a frozen server keeps the TCP connection "connected".
READY_RTT_S = 2


def nats_ready(get_client: Callable[[], Client | None]) -> NatsCheck:
    async def check() -> bool:
        nc = get_client()
        if nc is None or not nc.is_connected:
            return False
        try:
            await nc.flush(timeout=READY_RTT_S)  # PING, wait for PONG
        except Exception:  # noqa: BLE001 - no answer in time is "not ready"
            return False
        return True

    return check
