"""One thread per camera stream: open the source, stamp and publish its packets, reconnect when it fails.

A thread (not a task) because PyAV's demuxing blocks; it hands each envelope to the event loop,
which publishes it. A failure never escapes the thread: it is counted in the stream's health with
its reason, and the source is retried with exponential backoff and jitter (reconnect_min_s doubling
up to reconnect_max_s; a session that delivered resets it). A silent source is cut by FFmpeg's
socket timeout (the watchdog, source_read_timeout_s; see open_source).

What is done to each packet (capture time, parameter changes, PTZ position, the lease check,
health) is services/ingest/stamping.py's, shared with the RTSP client that runs on the event loop.
"""

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import Counter

from services.common.clock import Clock, to_us
from services.common.log import get_logger
from services.common.pb.csu.v1.frame_pb2 import FramePacket
from services.common.settings import Settings
from services.ingest.health import StreamHealth
from services.ingest.publisher import Publisher, Send
from services.ingest.sources import PROBE_S, SourceError, StreamInfo, describe, open_source
from services.ingest.stamping import PtzState, SessionStamper

log = get_logger(__name__)

RECONNECTS = Counter("csu_ingest_reconnects_total", "Source (re)connection attempts after a failure", ["camera"])

Publish = Callable[[FramePacket], None]


@dataclass(frozen=True)
class StreamJob:
    """One camera stream to read and publish, whichever worker reads it (a thread here, a task on
    the event loop for ingest's own RTSP client)."""

    camera_id: str
    stream: str
    url: str
    transport: str
    settings: Settings
    clock: Clock
    publish: Publish
    health: StreamHealth
    may_publish: Callable[[], bool] = lambda: True
    ptz_state: PtzState | None = None

    def sender(self) -> Send:
        """Where envelopes go, as (head, data): see EnvelopeWriter.

        Production hands over a Publisher's `publish`: its per-stream sender takes the envelope in
        those two parts, so a packet is serialized once and its data is never copied on the way to
        the socket. Any other callable (tests, tools) gets FramePackets, as `Publish` promises.
        """
        owner = getattr(self.publish, "__self__", None)
        if isinstance(owner, Publisher):
            return owner.sender(self.camera_id, self.stream)
        publish = self.publish
        return lambda head, data: publish(FramePacket.FromString(head + data))

    def stamper(self, info: StreamInfo, opened_at_us: int, last_capture_us: int) -> SessionStamper:
        return SessionStamper(
            self.camera_id, self.stream, info, self.clock, opened_at_us, last_capture_us, self.sender(), self.health,
            self.may_publish, self.ptz_state,
        )  # fmt: skip

    def opened(self, info: StreamInfo) -> None:
        """A source session starts: the stream's health and the log say what it delivers."""
        self.health.opened(info.codec, info.width, info.height)
        log.info(
            "camera source opened", camera=self.camera_id, stream=self.stream, source=describe(self.url),
            codec=info.codec, width=info.width, height=info.height, fps=info.frame_rate,
        )  # fmt: skip

    def unexpected(self, exc: Exception) -> str:
        """The reason for a failure no source foresaw, logged once. The message may quote the URL:
        credentials are scrubbed, and no traceback is logged (its text could carry them too)."""
        reason = f"unexpected error: {type(exc).__name__}: {exc}".replace(self.url, describe(self.url))
        log.error("camera source crashed", camera=self.camera_id, stream=self.stream, reason=reason)
        return reason


class Backoff:
    """When a stream's next attempt goes: reconnect_min_s doubling up to reconnect_max_s, with
    jitter so that cameras behind one failed switch do not all come back at the same instant; a
    session that delivered starts the doubling afresh."""

    def __init__(self, job: StreamJob) -> None:
        self._job = job
        self._delay = job.settings.reconnect_min_s

    def failed(self, reason: str, streamed: bool) -> float:
        """Record a session's end (the stream's health, the reconnect metric, the log); the wait before the next."""
        job, settings = self._job, self._job.settings
        if streamed:
            self._delay = settings.reconnect_min_s
        job.health.failed(reason)
        RECONNECTS.labels(job.camera_id).inc()
        wait = min(self._delay * random.uniform(0.8, 1.2), settings.reconnect_max_s)
        log.warning(
            "camera stream offline", camera=job.camera_id, stream=job.stream, reason=reason, retry_in_s=round(wait, 1)
        )
        self._delay = min(self._delay * 2, settings.reconnect_max_s)
        return wait


class StreamWorker(threading.Thread):
    def __init__(self, job: StreamJob, last_capture_us: int = 0) -> None:
        super().__init__(name=f"ingest-{job.camera_id}-{job.stream}", daemon=True)
        self.job = job
        self.camera_id, self.stream, self.url, self.health = job.camera_id, job.stream, job.url, job.health
        self._stopping = threading.Event()
        self._last_capture_us = last_capture_us

    def stop(self) -> None:
        self._stopping.set()

    def clone(self) -> "StreamWorker":
        """A fresh worker for the same stream (the watchdog's replacement for a stuck one)."""
        return StreamWorker(self.job, self._last_capture_us)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def run(self) -> None:
        backoff = Backoff(self.job)
        while not self._stopping.is_set():
            streamed = False
            try:
                streamed = self._stream_once()
                reason = "stopped"
            except SourceError as exc:
                reason = str(exc)
            except Exception as exc:  # noqa: BLE001 - a camera must never take the process down
                reason = self.job.unexpected(exc)
            if self._stopping.is_set():
                break
            self._stopping.wait(backoff.failed(reason, streamed))

    def _stream_once(self) -> bool:
        """Stream one source session; True if it delivered at least one packet."""
        job, s = self.job, self.job.settings
        opened_at_us = to_us(job.clock.now())
        source = open_source(job.url, job.transport, s.source_open_timeout_s, s.source_read_timeout_s)
        # The first packets were sent after we started opening, and at most a probe's worth before
        # the open returned: a camera that made us wait (busy, just restarted) must not get its
        # first images dated from when we started waiting.
        opened_at_us = max(opened_at_us, to_us(job.clock.now()) - int((PROBE_S + 0.5) * 1_000_000))
        try:
            return self._stream_source(source, opened_at_us)
        finally:
            source.close()

    def _stream_source(self, source, opened_at_us: int) -> bool:
        info = source.info
        stamper = self.job.stamper(info, opened_at_us, self._last_capture_us)
        self.job.opened(info)
        pace_from: tuple[float, float] | None = None  # (monotonic time, dts) of the first packet
        # Bound once: the per-packet path is what limits cameras per core (bench/ingest.py).
        stamp, stopping, monotonic = stamper.packet, self._stopping, time.monotonic
        live, silence_limit = info.live, self.job.settings.source_read_timeout_s
        last_arrival = monotonic()
        try:
            for packet in source.packets():
                if stopping.is_set():
                    break
                now = monotonic()
                if live:
                    if now - last_arrival > silence_limit:
                        # What a hung camera's demuxer hands over after a long silence is stale
                        # (queued before the stall): the session is dead, and a new one starts clean.
                        raise SourceError(
                            f"{describe(self.url)}: no data from the camera for {silence_limit:g} s (watchdog)"
                        )
                    last_arrival = now
                else:
                    # Files and the demo scene play at their own frame rate, like a camera.
                    if pace_from is None:
                        pace_from = (now, packet.dts_s)
                    delay = pace_from[0] + (packet.dts_s - pace_from[1]) - now
                    if delay > 0 and stopping.wait(delay):
                        break
                if stopping.is_set() or not stamp(packet):
                    break
            return stamper.delivered
        finally:
            stamper.close()
            self._last_capture_us = stamper.last_capture_us
