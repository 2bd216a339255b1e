"""One thread per camera: open the source, stamp and publish its packets, reconnect when it fails.

A thread (not a task) because PyAV's demuxing blocks; it hands each envelope to the event loop,
which publishes it. A failure never escapes the thread: it becomes the camera's status with a
reason, and the camera is retried with exponential backoff and jitter.
"""

import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import Counter, Gauge

from services.common.cameras import CameraConfig
from services.common.clock import Clock, to_us
from services.common.log import get_logger
from services.common.pb.csu.v1.frame_pb2 import CodecParameters, FramePacket
from services.common.settings import Settings
from services.ingest.sources import SourceError, describe, open_source
from services.ingest.timing import CaptureClock

log = get_logger(__name__)

PACKETS = Counter("csu_ingest_packets_total", "Packets published", ["camera"])
BYTES = Counter("csu_ingest_bytes_total", "Bytes of packets published", ["camera"])
RECONNECTS = Counter("csu_ingest_reconnects_total", "Source (re)connection attempts after a failure", ["camera"])
LAST_PACKET = Gauge("csu_ingest_last_packet_timestamp_seconds", "Wall time of the last packet", ["camera"])

ONLINE, OFFLINE, CONNECTING = "online", "offline", "connecting"


@dataclass(frozen=True)
class CameraStatus:
    status: str
    reason: str
    since_us: int


Publish = Callable[[FramePacket], None]
StatusChanged = Callable[[str, CameraStatus], None]


class CameraWorker(threading.Thread):
    def __init__(
        self,
        camera: CameraConfig,
        settings: Settings,
        clock: Clock,
        publish: Publish,
        on_status: StatusChanged,
    ) -> None:
        super().__init__(name=f"ingest-{camera.id}", daemon=True)
        self.camera = camera
        self._settings = settings
        self._clock = clock
        self._publish = publish
        self._on_status = on_status
        self._stopping = threading.Event()
        self.status = CameraStatus(CONNECTING, "starting", to_us(clock.now()))

    def stop(self) -> None:
        self._stopping.set()

    def _set_status(self, status: str, reason: str) -> None:
        if (status, reason) == (self.status.status, self.status.reason):
            return
        self.status = CameraStatus(status, reason, to_us(self._clock.now()))
        self._on_status(self.camera.id, self.status)

    def run(self) -> None:
        delay = self._settings.reconnect_min_s
        while not self._stopping.is_set():
            streamed = False
            try:
                streamed = self._stream_once()
                reason = "stopped"
            except SourceError as exc:
                reason = str(exc)
            except Exception as exc:
                reason = f"unexpected error: {exc!r}"
                log.exception("camera source crashed", camera=self.camera.id)
            if self._stopping.is_set():
                break
            if streamed:
                delay = self._settings.reconnect_min_s
            self._set_status(OFFLINE, reason)
            RECONNECTS.labels(self.camera.id).inc()
            wait = delay * random.uniform(0.8, 1.2)
            log.warning("camera offline", camera=self.camera.id, reason=reason, retry_in_s=round(wait, 1))
            self._stopping.wait(wait)
            delay = min(delay * 2, self._settings.reconnect_max_s)

    def _stream_once(self) -> bool:
        """Stream one source session; True if it delivered at least one packet."""
        s = self._settings
        opened_at_us = to_us(self._clock.now())
        source = open_source(
            self.camera.source, self.camera.transport, s.source_open_timeout_s, s.source_read_timeout_s
        )
        info = source.info
        session = uuid.uuid4().hex
        capture = CaptureClock(self._clock, info.live, opened_at_us)
        pace = CaptureClock(self._clock, live=False)
        codec = CodecParameters(name=info.codec, extradata=info.extradata, width=info.width, height=info.height)
        log.info(
            "camera source opened",
            camera=self.camera.id,
            source=describe(self.camera.source),
            codec=info.codec,
            width=info.width,
            height=info.height,
            fps=info.frame_rate,
        )
        sequence = 0
        try:
            for packet in source.packets():
                if self._stopping.is_set():
                    return sequence > 0
                if not info.live:
                    # Files and the demo scene play at their own frame rate, like a camera.
                    delay = (pace.capture_us(packet.dts_s) - to_us(self._clock.now())) / 1_000_000
                    if delay > 0 and self._stopping.wait(delay):
                        return sequence > 0
                ts = packet.pts_s if packet.pts_s is not None else packet.dts_s
                envelope = FramePacket(
                    camera_id=self.camera.id,
                    stream="main",
                    sequence=sequence,
                    pts=packet.pts,
                    dts=packet.dts,
                    time_base_num=packet.time_base.numerator,
                    time_base_den=packet.time_base.denominator,
                    keyframe=packet.keyframe,
                    capture_time_us=capture.capture_us(ts),
                    source_session=session,
                    frame_rate=info.frame_rate,
                    data=packet.data,
                )
                if packet.keyframe:
                    envelope.codec.CopyFrom(codec)
                self._publish(envelope)
                sequence += 1
                PACKETS.labels(self.camera.id).inc()
                BYTES.labels(self.camera.id).inc(len(packet.data))
                LAST_PACKET.labels(self.camera.id).set(time.time())
                if sequence == 1:
                    self._set_status(ONLINE, "streaming")
        finally:
            source.close()
        return sequence > 0
