"""One thread per camera stream: open the source, stamp and publish its packets, reconnect when it fails.

A thread (not a task) because PyAV's demuxing blocks; it hands each envelope to the event loop,
which publishes it. A failure never escapes the thread: it is counted in the stream's health with
its reason, and the source is retried with exponential backoff and jitter (reconnect_min_s doubling
up to reconnect_max_s; a session that delivered resets it). A silent source is cut by FFmpeg's
socket timeout (the watchdog, source_read_timeout_s; see open_source).

Every packet carries its capture time in UTC, never earlier than the previous packet's of the same
stream (across reconnects and clock re-anchors too); the PTZ position and moving flag when the
camera has PTZ; codec parameters on every keyframe. A change of in-band parameter sets (a camera
reconfigured mid-stream) starts a new source session with the new parameters.

Nothing is published unless `may_publish()` says so at that moment: the camera's lease is checked
packet by packet, so a replica that lost a camera never publishes for it alongside the new owner.
"""

import random
import threading
import time
import uuid
from collections.abc import Callable

from prometheus_client import Counter

from services.common.clock import Clock, to_us
from services.common.envelope import EnvelopeWriter
from services.common.log import get_logger
from services.common.pb.csu.v1.frame_pb2 import CodecParameters, FramePacket, PtzPosition
from services.common.settings import Settings
from services.ingest.bitstream import parameter_sets
from services.ingest.health import StreamHealth
from services.ingest.ptz.driver import PtzSnapshot
from services.ingest.publisher import Publisher, Send
from services.ingest.sources import PROBE_S, SourceError, describe, open_source
from services.ingest.timing import CaptureClock

log = get_logger(__name__)

PACKETS = Counter("csu_ingest_packets_total", "Packets published", ["camera", "stream"])
BYTES = Counter("csu_ingest_bytes_total", "Bytes of packets published", ["camera", "stream"])
RECONNECTS = Counter("csu_ingest_reconnects_total", "Source (re)connection attempts after a failure", ["camera"])
PARAMETER_CHANGES = Counter(
    "csu_ingest_codec_changes_total", "Mid-stream codec parameter changes (new source session)", ["camera"]
)

# Longest delay before published packets show in csu_ingest_packets_total / csu_ingest_bytes_total.
METRICS_S = 0.25

Publish = Callable[[FramePacket], None]
PtzState = Callable[[], PtzSnapshot | None]


class StreamWorker(threading.Thread):
    def __init__(
        self,
        camera_id: str,
        stream: str,
        url: str,
        transport: str,
        settings: Settings,
        clock: Clock,
        publish: Publish,
        health: StreamHealth,
        may_publish: Callable[[], bool] = lambda: True,
        ptz_state: PtzState | None = None,
    ) -> None:
        super().__init__(name=f"ingest-{camera_id}-{stream}", daemon=True)
        self.camera_id = camera_id
        self.stream = stream
        self.url = url
        self._url = url
        self._transport = transport
        self._settings = settings
        self._clock = clock
        self._publish = publish
        self.health = health
        self._may_publish = may_publish
        self._ptz_state = ptz_state
        self._stopping = threading.Event()
        self._last_capture_us = 0

    def stop(self) -> None:
        self._stopping.set()

    def clone(self) -> "StreamWorker":
        """A fresh worker for the same stream (the watchdog's replacement for a stuck one)."""
        twin = StreamWorker(
            self.camera_id, self.stream, self._url, self._transport, self._settings, self._clock, self._publish,
            self.health, self._may_publish, self._ptz_state,
        )  # fmt: skip
        twin._last_capture_us = self._last_capture_us
        return twin

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def run(self) -> None:
        s = self._settings
        delay = s.reconnect_min_s
        while not self._stopping.is_set():
            streamed = False
            try:
                streamed = self._stream_once()
                reason = "stopped"
            except SourceError as exc:
                reason = str(exc)
            except Exception as exc:  # noqa: BLE001 - a camera must never take the process down
                # The message may quote the URL: credentials are scrubbed, and no traceback is logged
                # (its text could carry them too).
                reason = f"unexpected error: {type(exc).__name__}: {exc}".replace(self._url, describe(self._url))
                log.error("camera source crashed", camera=self.camera_id, stream=self.stream, reason=reason)
            if self._stopping.is_set():
                break
            if streamed:
                delay = s.reconnect_min_s
            self.health.failed(reason)
            RECONNECTS.labels(self.camera_id).inc()
            wait = min(delay * random.uniform(0.8, 1.2), s.reconnect_max_s)
            log.warning(
                "camera stream offline",
                camera=self.camera_id,
                stream=self.stream,
                reason=reason,
                retry_in_s=round(wait, 1),
            )
            self._stopping.wait(wait)
            delay = min(delay * 2, s.reconnect_max_s)

    def _stream_once(self) -> bool:
        """Stream one source session; True if it delivered at least one packet."""
        s = self._settings
        opened_at_us = to_us(self._clock.now())
        source = open_source(self._url, self._transport, s.source_open_timeout_s, s.source_read_timeout_s)
        # The first packets were sent after we started opening, and at most a probe's worth before
        # the open returned: a camera that made us wait (busy, just restarted) must not get its
        # first images dated from when we started waiting.
        opened_at_us = max(opened_at_us, to_us(self._clock.now()) - int((PROBE_S + 0.5) * 1_000_000))
        try:
            return self._stream_source(source, opened_at_us)
        finally:
            source.close()

    def _sender(self) -> Send:
        """Where envelopes go, as (head, data): see EnvelopeWriter.

        Production hands over a Publisher's `publish`: its per-stream sender takes the envelope in
        those two parts, so a packet is serialized once and its data is never copied on the way to
        the socket. Any other callable (tests, tools) gets FramePackets, as `Publish` promises.
        """
        owner = getattr(self._publish, "__self__", None)
        if isinstance(owner, Publisher):
            return owner.sender(self.camera_id, self.stream)
        publish = self._publish
        return lambda head, data: publish(FramePacket.FromString(head + data))

    def _stream_source(self, source, opened_at_us: int) -> bool:  # type: ignore[no-untyped-def]
        info = source.info
        session = uuid.uuid4().hex
        capture = CaptureClock(self._clock, info.live, opened_at_us)
        pace_from: tuple[float, float] | None = None  # (monotonic time, dts) of the first packet
        codec = CodecParameters(name=info.codec, extradata=info.extradata, width=info.width, height=info.height)
        self.health.opened(info.codec, info.width, info.height)
        log.info(
            "camera source opened",
            camera=self.camera_id,
            stream=self.stream,
            source=describe(self._url),
            codec=info.codec,
            width=info.width,
            height=info.height,
            fps=info.frame_rate,
        )
        known_sets = None
        sequence = 0
        delivered = False
        camera_id, stream, may_publish, ptz_state = self.camera_id, self.stream, self._may_publish, self._ptz_state
        writer = EnvelopeWriter(camera_id, stream, session, info.frame_rate, codec)
        send = self._sender()
        # Bound once: the per-packet path is what limits cameras per core (bench/ingest.py).
        health_packet = self.health.packet
        stopping, monotonic = self._stopping, time.monotonic
        live, silence_limit = info.live, self._settings.source_read_timeout_s
        last_arrival = monotonic()
        # Prometheus counters take a lock per increment: counted here, added every METRICS_S.
        packets_metric, bytes_metric = PACKETS.labels(camera_id, stream), BYTES.labels(camera_id, stream)
        counted = volume = 0
        flush_at = last_arrival + METRICS_S
        try:
            for packet in source.packets():
                if stopping.is_set():
                    return delivered
                now = monotonic()
                if live:
                    if now - last_arrival > silence_limit:
                        # What a hung camera's demuxer hands over after a long silence is stale
                        # (queued before the stall): the session is dead, and a new one starts clean.
                        raise SourceError(
                            f"{describe(self._url)}: no data from the camera for {silence_limit:g} s (watchdog)"
                        )
                    last_arrival = now
                else:
                    # Files and the demo scene play at their own frame rate, like a camera.
                    if pace_from is None:
                        pace_from = (now, packet.dts_s)
                    delay = pace_from[0] + (packet.dts_s - pace_from[1]) - now
                    if delay > 0 and stopping.wait(delay):
                        return delivered
                data = packet.data
                keyframe = packet.keyframe
                if keyframe:
                    # Only keyframes carry parameter sets worth comparing; other packets are not inspected.
                    sets = parameter_sets(info.codec, data)
                    if sets is not None and sets != known_sets:
                        if known_sets is not None:
                            # Reconfigured mid-stream: a new session, so nobody joins the two.
                            session, sequence = uuid.uuid4().hex, 0
                            PARAMETER_CHANGES.labels(camera_id).inc()
                            log.info(
                                "codec parameters changed", camera=camera_id, stream=stream, width=sets.width,
                                height=sets.height,
                            )  # fmt: skip
                            codec = CodecParameters(
                                name=info.codec,
                                extradata=sets.annexb(),
                                width=sets.width or codec.width,
                                height=sets.height or codec.height,
                            )
                            writer = EnvelopeWriter(camera_id, stream, session, info.frame_rate, codec)
                            self.health.resized(codec.width, codec.height)
                        known_sets = sets
                ts = packet.pts_s if packet.pts_s is not None else packet.dts_s
                capture_us = capture.capture_us(ts)
                if capture_us <= self._last_capture_us:
                    capture_us = self._last_capture_us + 1
                self._last_capture_us = capture_us
                ptz = None
                moving = False
                if packet.ptz is not None:
                    pan, tilt, zoom = packet.ptz
                    ptz = PtzPosition(pan=pan, tilt=tilt, zoom=zoom, read_time_us=capture_us)
                    moving = packet.moving
                elif ptz_state is not None:
                    snapshot = ptz_state()
                    if snapshot is not None:
                        ptz = PtzPosition(
                            pan=snapshot.pan, tilt=snapshot.tilt, zoom=snapshot.zoom, read_time_us=snapshot.read_time_us
                        )
                        moving = snapshot.moving
                if stopping.is_set() or not may_publish():
                    return delivered
                size = len(data)
                head = writer.head(
                    sequence, packet.pts, packet.dts, packet.time_base, keyframe, capture_us, size, ptz, moving
                )
                send(head, data)
                sequence += 1
                delivered = True
                health_packet(size)
                counted += 1
                volume += size
                if now >= flush_at:
                    packets_metric.inc(counted)
                    bytes_metric.inc(volume)
                    counted = volume = 0
                    flush_at = now + METRICS_S
            return delivered
        finally:
            if counted:
                packets_metric.inc(counted)
                bytes_metric.inc(volume)
