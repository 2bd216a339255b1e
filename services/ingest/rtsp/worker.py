"""A camera stream read by ingest's own RTSP client, as a task on the event loop.

The counterpart of services/ingest/worker.StreamWorker (a thread, for what FFmpeg reads), with the
same life for the node (start, stop, clone, health), the same reconnect policy (Backoff) and the
same stamping of every packet (SessionStamper). What differs is when a session's stream facts are
known. FFmpeg probes the stream before its open returns; here the session holds its first access
units until it knows the parameter sets and picture size (the SDP's, else the first keyframe's:
what comes before it cannot be decoded and is dropped) and the frame rate (the SDP's a=framerate,
else the spacing of the first PROBE_UNITS timestamps), for at most PROBE_S as FFmpeg would, then
publishes them with the rest: their capture times are their own, as with FFmpeg's probe.

The watchdog is the worker's own: no access unit for source_read_timeout_s ends the session ("no
video" while bytes still come, "no data" when nothing does), as FFmpeg's socket timeout would.
Keep-alives go every half session timeout.

A camera whose video this client does not read (session.NotHandled) is handed to a StreamWorker
thread for good: the task ends there, and FFmpeg reads the camera from then on.
"""

import asyncio
import itertools
import time
from fractions import Fraction
from urllib.parse import urlsplit

from services.common.clock import to_us
from services.common.log import get_logger
from services.ingest.bitstream import parameter_sets, picture_size
from services.ingest.rtsp.depacketize import START_CODE
from services.ingest.rtsp.session import NotHandled, RtspSession
from services.ingest.sources import PROBE_S, SourceError, SourcePacket, StreamInfo, describe
from services.ingest.stamping import SessionStamper
from services.ingest.worker import Backoff, StreamJob, StreamWorker

log = get_logger(__name__)

# Access units whose timestamps give the frame rate when the SDP does not (B-frames reorder a few).
PROBE_UNITS = 5
# How often a session's watchdog, probe deadline and keep-alive are looked at.
TICK_S = 0.25


def reads(job: StreamJob) -> bool:
    """Whether this client reads the stream (RTSP over TCP, unless the settings say FFmpeg)."""
    try:
        scheme = urlsplit(job.url).scheme.lower()
    except ValueError:
        return False
    return job.settings.rtsp_client == "native" and job.transport == "tcp" and scheme == "rtsp"


def stream_worker(job: StreamJob) -> "StreamWorker | RtspWorker":
    """The worker for a camera stream: this client's task for RTSP over TCP, FFmpeg's thread otherwise.
    Call it on the event loop (the task starts on it)."""
    return RtspWorker(job) if reads(job) else StreamWorker(job)


class RtspWorker:
    def __init__(self, job: StreamJob, last_capture_us: int = 0) -> None:
        self.job = job
        self.camera_id, self.stream, self.url, self.health = job.camera_id, job.stream, job.url, job.health
        self._last_capture_us = last_capture_us
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._delegate: StreamWorker | None = None
        self._stopping = False

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._run(), name=f"ingest-{self.camera_id}-{self.stream}")

    def stop(self) -> None:
        """Stop streaming (from any thread): the session is torn down, nothing more is published."""
        self._stopping = True
        if self._task is not None and self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._task.cancel)
        if self._delegate is not None:
            self._delegate.stop()

    def clone(self) -> "RtspWorker":
        """A fresh worker for the same stream (the node's watchdog replaces a stuck one)."""
        return RtspWorker(self.job, self._last_capture_us)

    @property
    def stopping(self) -> bool:
        return self._stopping

    @property
    def handed_to_ffmpeg(self) -> bool:
        """The camera's video was not for this client: FFmpeg reads it (a thread)."""
        return self._delegate is not None

    def is_alive(self) -> bool:
        return (self._task is not None and not self._task.done()) or (
            self._delegate is not None and self._delegate.is_alive()
        )

    async def _run(self) -> None:
        backoff = Backoff(self.job)
        while not self._stopping:
            streamed = False
            try:
                streamed = await self._stream_once()
                reason = "stopped"
            except NotHandled as exc:
                log.info("camera stream handed to FFmpeg", camera=self.camera_id, stream=self.stream, reason=str(exc))
                self._delegate = StreamWorker(self.job, self._last_capture_us)
                if not self._stopping:
                    self._delegate.start()
                return
            except SourceError as exc:
                reason = str(exc)
            except Exception as exc:  # noqa: BLE001 - a camera must never take the process down
                reason = self.job.unexpected(exc)
            if self._stopping:
                break
            await asyncio.sleep(backoff.failed(reason, streamed))

    async def _stream_once(self) -> bool:
        """Stream one session; True if it delivered at least one packet."""
        job, settings = self.job, self.job.settings
        opened_at_us = to_us(job.clock.now())
        delivery = _Delivery(self, opened_at_us)
        session = await RtspSession.open(job.url, settings.source_open_timeout_s, delivery.unit)
        # As in StreamWorker: a camera that made us wait must not date its first images from then.
        delivery.opened_at_us = max(opened_at_us, to_us(job.clock.now()) - int((PROBE_S + 0.5) * 1_000_000))
        keepalive: asyncio.Task[None] | None = None
        try:
            delivery.attach(session)
            connection, limit = session.connection, settings.source_read_timeout_s
            next_keepalive = time.monotonic() + session.keepalive_s
            while True:
                done, _ = await asyncio.wait([connection.closed], timeout=TICK_S)
                if done:
                    failure = connection.closed.exception()
                    if isinstance(failure, SourceError):
                        raise failure
                    raise SourceError(f"{describe(job.url)}: {failure or 'the camera closed the stream'}")
                if delivery.refused or self._stopping:
                    return delivery.delivered
                now = time.monotonic()
                delivery.tick(now)
                if now - delivery.last_unit > limit:
                    what = "no video" if now - connection.last_data <= limit else "no data from the camera"
                    raise SourceError(f"{describe(job.url)}: {what} for {limit:g} s (watchdog)")
                if now >= next_keepalive and (keepalive is None or keepalive.done()):
                    keepalive = asyncio.create_task(session.keepalive())
                    next_keepalive = now + session.keepalive_s
        finally:
            if keepalive is not None:
                keepalive.cancel()
            delivery.close()
            self._last_capture_us = delivery.last_capture_us
            session.close()


class _Delivery:
    """A session's access units: held until the stream's facts are known, then stamped and sent."""

    def __init__(self, worker: RtspWorker, opened_at_us: int) -> None:
        self._worker = worker
        self._job = worker.job
        self.opened_at_us = opened_at_us
        self.last_capture_us = worker._last_capture_us
        self.delivered = False
        self.refused = False  # the stamper may not publish (the lease went): the session ends
        self.last_unit = self._since = time.monotonic()
        self._held: list[tuple[bytes, int, bool]] = []
        self._session: RtspSession | None = None
        self._sets: tuple[bytes, ...] = ()
        self._stamper: SessionStamper | None = None
        self._time_base = Fraction(1, 90_000)
        self._tick = 1 / 90_000
        self._forced = False

    def attach(self, session: RtspSession) -> None:
        """The session is playing (units may have come with its PLAY answer, and wait here)."""
        self._session = session
        track = session.track
        self._sets = track.parameter_sets
        self._time_base, self._tick = Fraction(1, track.clock_rate), 1 / track.clock_rate
        held, self._held = self._held, []
        for unit in held:
            self.unit(*unit)

    def unit(self, data: bytes, ts: int, key: bool) -> None:
        """One access unit from the depacketizer (its timestamp counted from the session's first)."""
        if self._worker.stopping:
            return  # stopped: the task ends at its next step, and nothing more goes out meanwhile
        self.last_unit = time.monotonic()
        if self._stamper is not None:
            self._stamp(data, ts, key)
            return
        if self._session is not None and not self._sets:
            if not key:
                return  # undecodable without parameter sets: dropped until a keyframe brings them
            found = parameter_sets(self._session.track.codec, data)
            if found is not None:
                self._sets = found.units
        self._held.append((data, ts, key))
        if self._session is not None:
            self._start_when_known()

    def tick(self, now: float) -> None:
        """PROBE_S after the session opened, publishing starts with whatever is known."""
        if self._stamper is None and not self._forced and now - self._since >= PROBE_S:
            self._forced = True
            self._start_when_known()

    def close(self) -> None:
        if self._stamper is not None:
            self._stamper.close()
            self.last_capture_us = self._stamper.last_capture_us

    def _start_when_known(self) -> None:
        assert self._session is not None
        track, held = self._session.track, self._held
        if not held:
            return
        rate = track.frame_rate
        if not rate and (len(held) >= PROBE_UNITS or self._forced):
            rate = _measured_rate([ts for _, ts, _ in held], track.clock_rate)
        if not (self._forced or (self._sets and rate)):
            return
        width, height = picture_size(track.codec, self._sets)
        info = StreamInfo(
            codec=track.codec,
            extradata=b"".join(START_CODE + unit for unit in self._sets),
            width=width,
            height=height,
            frame_rate=rate,
            live=True,
        )
        self._stamper = self._job.stamper(info, self.opened_at_us, self.last_capture_us)
        self._job.opened(info)
        self._held = []
        for unit in held:
            self._stamp(*unit)

    def _stamp(self, data: bytes, ts: int, key: bool) -> None:
        assert self._stamper is not None
        seconds = ts * self._tick
        # RTP carries presentation times only: the decode time is taken to be the same, as FFmpeg does.
        if self._stamper.packet(SourcePacket(data, seconds, seconds, ts, ts, self._time_base, key)):
            self.delivered = True
        else:
            self.refused = True


def _measured_rate(timestamps: list[int], clock_rate: int) -> float:
    """Frames per second from the smallest step between distinct timestamps (0 when unknown)."""
    distinct = sorted(set(timestamps))
    steps = [b - a for a, b in itertools.pairwise(distinct) if b > a]
    return clock_rate / min(steps) if steps else 0.0
