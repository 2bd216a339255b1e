"""One camera's queue and masking task.

Packets are masked in order on a worker thread (PyAV releases the GIL while decoding and
encoding, so cameras run in parallel). A camera whose queue overflows drops packets up to its
next keyframe: dropping single packets would corrupt every frame until then.

A lane publishes only while its replica holds the camera's lease (`may_publish`, checked before
every packet), so a replica that lost a camera never publishes alongside the new owner.
"""

import asyncio
from collections.abc import Awaitable, Callable

from services.common.log import get_logger
from services.common.pb.csu.v1.frame_pb2 import FramePacket
from services.masking.pipeline import DROPPED
from services.masking.router import CameraRouter

log = get_logger(__name__)

Publish = Callable[[FramePacket], Awaitable[None]]


class CameraLane:
    def __init__(self, masker: CameraRouter, limit: int, publish: Publish, may_publish: Callable[[], bool]) -> None:
        self.masker = masker
        self.queue: asyncio.Queue[FramePacket] = asyncio.Queue(limit)
        self._publish = publish
        self._may_publish = may_publish
        self._skipping = False
        self.task = asyncio.create_task(self._run())

    @property
    def camera_id(self) -> str:
        return self.masker.camera_id

    def offer(self, packet: FramePacket) -> None:
        if self._skipping and not packet.keyframe:
            DROPPED.labels(self.camera_id, "overload").inc()
            return
        self._skipping = False
        try:
            self.queue.put_nowait(packet)
        except asyncio.QueueFull:
            self._skipping = True
            DROPPED.labels(self.camera_id, "overload").inc()

    async def _run(self) -> None:
        while True:
            packet = await self.queue.get()
            try:
                masked = await asyncio.to_thread(self.masker.process, packet)
            except Exception:
                log.exception("masking failed", camera=self.camera_id)
                continue
            for out in masked:
                if not self._may_publish():
                    DROPPED.labels(self.camera_id, "lease_lost").inc()
                    continue
                await self._publish(out)

    async def stop(self) -> None:
        self.task.cancel()
        try:
            await self.task
        except asyncio.CancelledError:
            pass
