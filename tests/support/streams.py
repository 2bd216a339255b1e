"""A camera stream worker run from a synchronous test, as the ingest node runs it: the one
`stream_worker` picks (ingest's RTSP client as a task on an event loop, here a thread of its own,
or FFmpeg's worker thread), with the packets it publishes collected."""

import asyncio
import threading
import time
from typing import Any

from services.common.clock import SystemClock
from services.common.pb.csu.v1.frame_pb2 import FramePacket
from services.common.settings import Settings
from services.ingest.health import StreamHealth
from services.ingest.rtsp.worker import RtspWorker, stream_worker
from services.ingest.worker import StreamJob, StreamWorker


class RunningStream:
    def __init__(self, url: str, transport: str = "tcp", camera_id: str = "cam-t", **settings: Any) -> None:
        self.packets: list[FramePacket] = []
        self.health = StreamHealth()
        job = StreamJob(camera_id, "main", url, transport, Settings(**settings), SystemClock(), self.packets.append,
                        self.health)  # fmt: skip
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="stream-loop", daemon=True)
        self._thread.start()

        async def start() -> StreamWorker | RtspWorker:
            worker = stream_worker(job)
            worker.start()
            return worker

        self.worker = asyncio.run_coroutine_threadsafe(start(), self._loop).result(10)

    @property
    def native(self) -> bool:
        """Read by ingest's own RTSP client (and not handed on to FFmpeg)."""
        return isinstance(self.worker, RtspWorker) and not self.worker.handed_to_ffmpeg

    def failure(self) -> str:
        return self.health.metrics().failure

    def is_alive(self) -> bool:
        return self.worker.is_alive()

    def stop(self, timeout: float = 15) -> None:
        """Stop the worker and wait for it (a blocked FFmpeg read ends within its timeout)."""
        self.worker.stop()
        deadline = time.monotonic() + timeout
        while self.worker.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._loop.is_running():
            self._loop.close()

    def __enter__(self) -> "RunningStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
