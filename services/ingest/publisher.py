"""Handing packets from worker threads to NATS without a wake-up or a copy per packet.

Workers append envelopes to a deque (thread-safe, no lock); while packets flow, the event loop
drains it every DRAIN_S and publishes each batch, which nats-py writes to the socket in one go.
Waking the loop (and the NATS flusher) once per packet costs more CPU than demuxing the packet;
draining on a tick adds at most DRAIN_S of latency. When a tick finds nothing, the loop stops
ticking and the next packet wakes it (one cross-thread signal per idle period, not per packet).
Past `limit` pending packets (NATS away or too slow), new packets are dropped and counted: a camera
loses frames rather than the process growing without bound.

An envelope arrives as its serialized head and the packet's data (still the demuxer's buffer), and
goes out as the NATS protocol's PUB line, head, data and CRLF handed to the socket as they are
(scatter-gather): the video is never copied in user space. `Client.publish` would concatenate the
whole message twice, and at 1080p those copies (with their allocations) cost more than the rest
of publishing; so the batch goes into nats-py's outgoing buffer the way `Client._send_publish`
puts it there, with the same checks. That buffer is nats-py's own (pinned in requirements.lock);
should a release rename it, `_direct_writes` says so and every packet goes through `publish`.
"""

import asyncio
import collections
from collections.abc import Buffer, Callable

from nats import errors
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
_CRLF = b"\r\n"

# What a worker calls per packet: (envelope head, packet data); the envelope is head + data.
Send = Callable[[bytes, Buffer], None]


def _direct_writes(nc: Client) -> bool:
    """True when nc has the outgoing buffer `Client._send_publish` fills (nats-py 2.x)."""
    return all(
        hasattr(nc, name) for name in ("_pending", "_pending_data_size", "_max_pending_size", "_flush_queue")
    ) and callable(getattr(nc, "_flush_pending", None))


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
        direct = _direct_writes(nc)
        if not direct:
            log.warning("nats-py without the expected outgoing buffer: publishing packet by packet (slower)")
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
            if direct:
                await self._write(nc)
            else:
                await self._publish_each(nc)

    async def _publish_each(self, nc: Client) -> None:
        while self._pending:
            subject, camera_id, head, data = self._pending.popleft()
            try:
                await nc.publish(subject, head + data)
            except Exception as exc:  # noqa: BLE001 - a lost packet must not stop the others
                DROPPED.labels(camera_id).inc()
                log.warning("publish failed", camera=camera_id, error=str(exc))

    async def _write(self, nc: Client) -> None:
        """The pending packets into nats-py's outgoing buffer, as `Client._send_publish` would."""
        parts: list[Buffer] = []
        cameras: list[str] = []
        size = payload = 0
        max_payload = nc.max_payload
        pending = self._pending
        while pending:
            subject, camera_id, head, data = pending.popleft()
            length = len(head) + len(data)
            if length > max_payload:
                DROPPED.labels(camera_id).inc()
                log.warning("publish failed", camera=camera_id, error=str(errors.MaxPayloadError()))
                continue
            line = f"PUB {subject} {length}\r\n".encode()
            parts += (line, head, data, _CRLF)
            cameras.append(camera_id)
            size += len(line) + length + 2
            payload += length
        if not parts:
            return
        problem: Exception | None = None
        if nc.is_closed:
            problem = errors.ConnectionClosedError()
        elif nc.is_draining_pubs:
            problem = errors.ConnectionDrainingError()
        elif not nc.is_connected and (nc._max_pending_size <= 0 or size + nc._pending_data_size > nc._max_pending_size):
            # Reconnecting, and the buffer kept for after the reconnect is full (or disabled).
            problem = errors.OutboundBufferLimitError()
        if problem is not None:
            for camera_id in cameras:
                DROPPED.labels(camera_id).inc()
            log.warning("publish failed", packets=len(cameras), error=str(problem) or type(problem).__name__)
            return
        nc.stats["out_msgs"] += len(cameras)
        nc.stats["out_bytes"] += payload
        nc._pending.extend(parts)
        nc._pending_data_size += size
        if nc._max_pending_size > 0 and nc._pending_data_size > nc._max_pending_size:
            # The socket is not keeping up: wait for the flusher, as nats-py does, so the backlog
            # stays in our bounded deque instead of growing in nats-py's buffer.
            await nc._flush_pending(force_flush=True)
        elif nc._flush_queue is not None and nc._flush_queue.empty():
            await nc._flush_pending()
