"""One held camera's masked frames, read from the JetStream buffer (bus.ensure_masked_stream).

Each camera has one durable pull consumer, `archive-<camera>`, on the masked-frame stream,
filtered to its main stream. Only the archive replica holding the camera's lease reads it (node.py),
and it acknowledges a segment's frames once the segment is in the object store (AckPolicy.ALL: the
ack of a segment's last frame covers all before it). So the consumer's ack floor is always "stored
up to here", whoever stored it.

Taking a camera (a start, a restart after kill -9, a handover from a replica that died or
stopped) re-creates its consumer from that floor: the frames after the last stored segment come
again, at once and in order, and the recording resumes where the stored one ended. The new
holder skips what it already has (`resume_after_us`: the end of the camera's last segment in the
index or in this replica's spool, where a crash's salvaged fragments are). Re-creating rather than
waiting for redelivery: frames delivered and not acked come back only after the ack wait, and
behind newer ones.

While a camera is held, a frame delivered twice (`num_delivered > 1`: not acked within the ack
wait, a store outage longer than a segment) is already in a segment: it is dropped.

Frames older than the buffer's window are gone whatever the floor says: `Resume.window_passed`
tells the node that frames after the floor have left the buffer, and the hole is a gap with its
reason.
Design: docs/design/reliability.md
"""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import FetchTimeoutError, NotFoundError
from prometheus_client import Counter

from services.common import bus, subjects
from services.common.log import get_logger

log = get_logger(__name__)

REDELIVERED = Counter(
    "csu_archive_redelivered_frames_total", "Masked frames the buffer delivered twice (dropped: already recorded)"
)
# One fetch: a second of 128 cameras' frames arrives in a few of them, a replay in a few hundred.
BATCH = 256
# Delivered and not acked: the frames of the segment being written and of those waiting to be stored.
MAX_ACK_PENDING = 1_000_000


def consumer_name(camera_id: str) -> str:
    return f"archive-{camera_id}"


@dataclass(frozen=True)
class Resume:
    """Where a taken camera's frames start again."""

    # The buffer's first stream sequence for this camera (0: nothing buffered yet).
    from_seq: int
    # True when frames after the last ack may have left the buffer (its window passed).
    window_passed: bool


class CameraIntake:
    """The durable consumer of one camera while this replica holds it."""

    def __init__(
        self,
        nc: Client,
        prefix: str,
        camera_id: str,
        handle: Callable[[Msg], Awaitable[None]],
        ack_wait_s: float,
    ) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.camera_id = camera_id
        self.stream = subjects.masked_stream(prefix)
        self.subject = subjects.masked(prefix, camera_id, "main")
        self.name = consumer_name(camera_id)
        self._handle = handle
        self._ack_wait_s = ack_wait_s
        self._sub: JetStreamContext.PullSubscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def open(self) -> Resume:
        """(Re-)create the consumer from its ack floor, and start reading."""
        floor = 0
        with contextlib.suppress(NotFoundError):
            info = await self.js.consumer_info(self.stream, self.name)
            floor = info.ack_floor.stream_seq
            await self.js.delete_consumer(self.stream, self.name)
        first = await self._first_seq()
        config = ConsumerConfig(
            durable_name=self.name,
            ack_policy=AckPolicy.ALL,
            filter_subject=self.subject,
            # Longer than any frame waits for its segment to be stored while the store works; past
            # it a frame comes again, and is dropped (see the module's docstring).
            ack_wait=self._ack_wait_s,
            max_ack_pending=MAX_ACK_PENDING,
            max_deliver=-1,
        )
        if floor:
            config.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
            config.opt_start_seq = floor + 1
        else:
            config.deliver_policy = DeliverPolicy.ALL
        await self.js.add_consumer(self.stream, config)
        self._sub = await self.js.pull_subscribe_bind(durable=self.name, stream=self.stream)
        self._stopping.clear()
        self._task = asyncio.create_task(self._read())
        # No floor: a consumer never acked (a new camera) or lost with NATS's store: unknown, so
        # any hole before the first frame is named as the archive's.
        return Resume(first, window_passed=not floor or first > floor + 1)

    async def _first_seq(self) -> int:
        """The stream's oldest sequence still kept (0 when empty): the window's start."""
        info = await self.js.stream_info(self.stream)
        return info.state.first_seq if info.state.messages else 0

    async def close(self) -> None:
        """Stop reading (the consumer and its ack floor stay for the next holder)."""
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        await bus.release(self._sub)
        self._sub = None

    async def ack(self, reply: str) -> None:
        """Acknowledge every frame up to the one `reply` belongs to (sent by this consumer's reads)."""
        try:
            await self.nc.publish(reply, b"+ACK")  # what Msg.ack() sends, without keeping the Msg
        except Exception as exc:  # noqa: BLE001 - a later ack covers it; a takeover starts from the last one
            log.warning("buffer ack not sent", camera=self.camera_id, error=str(exc) or type(exc).__name__)

    async def _read(self) -> None:
        assert self._sub is not None
        while not self._stopping.is_set():
            try:
                messages = await self._sub.fetch(BATCH, timeout=1)
            except (FetchTimeoutError, NatsTimeoutError, TimeoutError):
                continue  # nothing new within the second (nats-py raises any of the three)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - NATS away or restarting: fetch again
                log.warning("masked frames not fetched", camera=self.camera_id, error=str(exc) or type(exc).__name__)
                await asyncio.sleep(1)
                continue
            for msg in messages:
                if msg.metadata.num_delivered > 1:
                    REDELIVERED.inc()
                    continue  # already in a segment (see the module's docstring)
                await self._handle(msg)
