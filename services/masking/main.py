"""The masking service: the only reader of raw frames, the only writer of masked ones.

Each camera gets a bounded queue and a task that masks its packets in order on a worker thread
(PyAV releases the GIL while decoding and encoding, so cameras run in parallel). A camera whose
queue overflows drops packets up to its next keyframe: dropping single packets would corrupt
every frame until then.
"""

import asyncio

from nats.aio.client import Client
from nats.aio.msg import Msg

from services.common import bus, subjects
from services.common.cameras import load_cameras
from services.common.envelope import parse_frame
from services.common.log import get_logger
from services.common.pb.csu.v1.frame_pb2 import FramePacket
from services.common.service import Runtime
from services.common.settings import Settings
from services.masking.masks import rgb_hex_to_yuv
from services.masking.pipeline import DROPPED, CameraMasker, EncoderSettings, MaskSet

log = get_logger(__name__)


class CameraLane:
    """One camera's queue and masking task."""

    def __init__(self, masker: CameraMasker, limit: int, publish) -> None:  # type: ignore[no-untyped-def]
        self.masker = masker
        self.queue: asyncio.Queue[FramePacket] = asyncio.Queue(limit)
        self._publish = publish
        self._skipping = False
        self.task = asyncio.create_task(self._run())

    def offer(self, packet: FramePacket) -> None:
        if self._skipping and not packet.keyframe:
            DROPPED.labels(self.masker.camera_id, "overload").inc()
            return
        self._skipping = False
        try:
            self.queue.put_nowait(packet)
        except asyncio.QueueFull:
            self._skipping = True
            DROPPED.labels(self.masker.camera_id, "overload").inc()

    async def _run(self) -> None:
        while True:
            packet = await self.queue.get()
            try:
                masked = await asyncio.to_thread(self.masker.process, packet)
            except Exception:
                log.exception("masking failed", camera=self.masker.camera_id)
                continue
            for out in masked:
                await self._publish(out)


def _masks_by_camera(settings: Settings) -> dict[str, MaskSet]:
    return {c.id: MaskSet(c.mask_version, c.masks) for c in load_cameras(settings)}


async def run(runtime: Runtime) -> None:
    settings = runtime.settings
    nc: Client | None = None
    runtime.add_check("nats", bus.nats_ready(lambda: nc))
    masks = _masks_by_camera(settings)
    colour = rgb_hex_to_yuv(settings.mask_colour)
    encoder = EncoderSettings(
        settings.x264_preset, settings.x264_crf, settings.x264_threads, settings.keyframe_interval_s
    )
    lanes: dict[str, CameraLane] = {}
    prefix = settings.nats_prefix

    nc = await bus.connect_with_retry(settings, "masking", runtime.stop)
    if nc is None:
        return

    async def publish(packet: FramePacket) -> None:
        subject = subjects.masked(settings.nats_prefix, packet.camera_id, packet.stream)
        await nc.publish(subject, packet.SerializeToString())

    async def on_raw(msg: Msg) -> None:
        try:
            packet = parse_frame(msg.subject, msg.data, lambda cam, stream: subjects.raw(prefix, cam, stream))
        except ValueError:
            DROPPED.labels("unknown", "malformed").inc()
            return
        lane = lanes.get(packet.camera_id)
        if lane is None:
            # A camera missing from the catalogue has no mask set: it is masked entirely.
            masker = CameraMasker(packet.camera_id, masks.get(packet.camera_id), colour, encoder)
            lane = lanes[packet.camera_id] = CameraLane(masker, settings.masking_queue_frames, publish)
        lane.offer(packet)

    subscription = await nc.subscribe(
        subjects.raw(settings.nats_prefix, "*", "main"),
        cb=on_raw,
        pending_msgs_limit=100_000,
        pending_bytes_limit=512 * 1024 * 1024,
    )
    log.info("masking running", cameras_with_masks=len(masks))
    await runtime.stop.wait()
    await subscription.unsubscribe()
    for lane in lanes.values():
        lane.task.cancel()
    await nc.drain()
