"""Handing packets from worker threads to NATS without a wake-up or a copy per packet.

Workers append envelopes to a deque (thread-safe, no lock); while packets flow, the event loop
drains it every DRAIN_S and publishes each batch, which nats-py writes to the socket in one go.
Waking the loop (and the NATS flusher) once per packet costs more CPU than demuxing the packet;
draining on a tick adds at most DRAIN_S of latency. When a tick finds nothing, the loop stops
ticking and the next packet wakes it (one cross-thread signal per idle period, not per packet).
Past `limit` pending packets (NATS away or too slow), new packets are dropped and counted: a camera
loses frames rather than the process growing without bound.

An envelope arrives as its serialized head and the packet's data (still the demuxer's buffer), so
a worker never copies the video; the event loop joins the two once, when it publishes. Publishing
goes through nats-py's public `Client.publish` only: its outgoing buffer and flusher are nats-py's
business, and a faster path through its private fields would break silently with a release.
"""

import asyncio
import collections
from collections.abc import Buffer, Callable

from nats.aio.client import Client
from prometheus_client import Counter

from services.common import subjects
from services.common.log import get_logger
from services.common.pb.csu.v1.frame_pb2 import FramePacket

log = get_logger(__name__)

DROPPED = Counter("csu_ingest_dropped_total", "Packets dropped because publishing fell behind", ["camera"])
QUEUE_LIMIT = 5000
# Every tick wakes the event loop and nats-py's flusher: at 32 cameras, 20 ms ticks cost the loop
# ~9 µs less CPU per packet than 10 ms ones (bench/ingest.py), for at most 20 ms more latency.
DRAIN_S = 0.02

# What a worker calls per packet: (envelope head, packet data); the envelope is head + data.
Send = Callable[[bytes, Buffer], None]


class Publisher:
    def __init__(self, loop: asyncio.AbstractEventLoop, prefix: str, limit: int = QUEUE_LIMIT) -> None:
        self._loop = loop
        self._prefix = prefix
        self._limit = limit
        self._pending: collections.deque[tuple[str, str, bytes, Buffer]] = collections.deque()
        self._senders: dict[tuple[str, str], Send] = {}
        self._wake = asyncio.Event()
        self._idle = True

    def sender(self, camera_id: str, stream: str) -> Send:
        """What a worker thread calls with each envelope of one camera stream, as (head, data).

        Subject and drop counter are looked up once per stream, not per packet. `data` must stay
        unchanged until published (a demuxed packet's buffer does).
        """
        subject = subjects.raw(self._prefix, camera_id, stream)
        dropped = DROPPED.labels(camera_id)
        pending, limit, append = self._pending, self._limit, self._pending.append

        def send(head: bytes, data: Buffer) -> None:
            if len(pending) >= limit:
                dropped.inc()
                return
            append((subject, camera_id, head, data))
            if self._idle:
                self._idle = False
                self._loop.call_soon_threadsafe(self._wake.set)

        return send

    def publish(self, envelope: FramePacket) -> None:
        """Called from worker threads, with a message (the workers' hot path uses `sender`)."""
        key = (envelope.camera_id, envelope.stream)
        send = self._senders.get(key)
        if send is None:
            send = self._senders[key] = self.sender(*key)
        send(envelope.SerializeToString(), b"")

    async def run(self, nc: Client) -> None:
        while True:
            await asyncio.sleep(DRAIN_S)
            if not self._pending:
                # Idle: stop ticking until a worker signals. Set before the check below, so a packet
                # appended meanwhile either is seen by it or signals (at worst one spare wake-up).
                self._wake.clear()
                self._idle = True
                if not self._pending:
                    await self._wake.wait()
                continue
            await self._publish_pending(nc)

    async def _publish_pending(self, nc: Client) -> None:
        while self._pending:
            subject, camera_id, head, data = self._pending.popleft()
            try:
                await nc.publish(subject, head + data)
            except Exception as exc:  # noqa: BLE001 - a lost packet must not stop the others
                DROPPED.labels(camera_id).inc()
                log.warning("publish failed", camera=camera_id, error=str(exc))
