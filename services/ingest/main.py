"""The ingest service: one worker thread per camera, packets published on <prefix>.raw.<cam>.main."""

import asyncio

import grpc
from nats.aio.client import Client
from prometheus_client import Counter

from services.common import bus, rpc, subjects
from services.common.cameras import CameraConfig, load_cameras
from services.common.clock import SystemClock
from services.common.log import get_logger
from services.common.pb.csu.v1 import ingest_pb2, ingest_pb2_grpc
from services.common.pb.csu.v1.frame_pb2 import FramePacket
from services.common.service import Runtime
from services.ingest.worker import CameraStatus, CameraWorker

log = get_logger(__name__)

DROPPED = Counter("csu_ingest_dropped_total", "Packets dropped because publishing fell behind", ["camera"])
# Packets waiting for NATS across all cameras; past this a camera loses packets instead of the
# process growing without bound while NATS is away.
QUEUE_LIMIT = 5000


class IngestApi(ingest_pb2_grpc.IngestServiceServicer):
    def __init__(self, workers: dict[str, CameraWorker]) -> None:
        self._workers = workers

    def _camera(self, worker: CameraWorker) -> ingest_pb2.Camera:
        camera: CameraConfig = worker.camera
        status = worker.status
        return ingest_pb2.Camera(
            id=camera.id,
            name=camera.name,
            status=status.status,
            status_reason=status.reason,
            status_since_us=status.since_us,
            retention_days=camera.retention_days,
            groups=camera.groups,
        )

    async def ListCameras(self, request, context):  # type: ignore[no-untyped-def]
        return ingest_pb2.ListCamerasResponse(cameras=[self._camera(w) for w in self._workers.values()])

    async def GetCamera(self, request, context):  # type: ignore[no-untyped-def]
        worker = self._workers.get(request.camera_id)
        if worker is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown camera {request.camera_id!r}")
        return self._camera(worker)


async def run(runtime: Runtime) -> None:
    settings = runtime.settings
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[FramePacket] = asyncio.Queue(QUEUE_LIMIT)
    nc: Client | None = None
    runtime.add_check("nats", bus.nats_ready(lambda: nc))

    def publish(envelope: FramePacket) -> None:  # called from worker threads
        loop.call_soon_threadsafe(_enqueue, envelope)

    def _enqueue(envelope: FramePacket) -> None:
        try:
            queue.put_nowait(envelope)
        except asyncio.QueueFull:
            DROPPED.labels(envelope.camera_id).inc()

    def on_status(camera_id: str, status: CameraStatus) -> None:
        log.info("camera status", camera=camera_id, status=status.status, reason=status.reason)

    clock = SystemClock()
    workers = {
        camera.id: CameraWorker(camera, settings, clock, publish, on_status) for camera in load_cameras(settings)
    }
    server = await rpc.start_server(
        f"{settings.bind_host}:{settings.ingest_grpc.rsplit(':', 1)[1]}",
        [lambda s: ingest_pb2_grpc.add_IngestServiceServicer_to_server(IngestApi(workers), s)],
    )
    nc = await bus.connect_with_retry(settings, "ingest", runtime.stop)
    if nc is None:
        await server.stop(None)
        return
    for worker in workers.values():
        worker.start()
    log.info("ingest running", cameras=len(workers))

    async def pump() -> None:
        while True:
            envelope = await queue.get()
            subject = subjects.raw(settings.nats_prefix, envelope.camera_id, envelope.stream)
            try:
                await nc.publish(subject, envelope.SerializeToString())
            except Exception as exc:  # noqa: BLE001 - a lost packet must not stop the others
                DROPPED.labels(envelope.camera_id).inc()
                log.warning("publish failed", camera=envelope.camera_id, error=str(exc))

    pumping = asyncio.create_task(pump())
    await runtime.stop.wait()
    for worker in workers.values():
        worker.stop()
    pumping.cancel()
    await server.stop(grace=2)
    await nc.drain()
    for worker in workers.values():
        await asyncio.to_thread(worker.join, 5)
