"""What ingest does to every packet of a source session, whoever reads the source.

A session's packets come from a worker thread (PyAV sources, services/ingest/worker.py) or from
the event loop (our own RTSP client, services/ingest/rtsp/); both hand each packet to one
`SessionStamper`, so there is one place that:

- stamps the capture time in UTC, never earlier than the previous packet's of the same stream
  (across reconnects and clock re-anchors too: the caller carries `last_capture_us` over);
- notices a change of in-band parameter sets on a keyframe (a camera reconfigured mid-stream)
  and starts a new source session with the new parameters, so nobody joins the two; the first
  sets' picture size is the stream's measured size (held to the norms);
- adds the PTZ position and moving flag when the camera has PTZ, and codec parameters on every
  keyframe (EnvelopeWriter);
- checks `may_publish()` packet by packet: a replica that lost a camera's lease never publishes
  for it alongside the new owner;
- counts the packet in the stream's health and metrics.

The per-packet path is what limits cameras per core (bench/ingest.py): what can be bound once per
session is bound in __init__, and Prometheus counters (a lock per increment) are added every
METRICS_S instead of per packet.
Design: docs/design/time.md
"""

import time
import uuid
from collections.abc import Callable

from prometheus_client import Counter

from services.common.clock import Clock
from services.common.envelope import EnvelopeWriter
from services.common.log import get_logger
from services.common.pb.csu.v1.frame_pb2 import CodecParameters, PtzPosition
from services.ingest.bitstream import ParameterSets, parameter_sets
from services.ingest.health import StreamHealth
from services.ingest.ptz.driver import PtzSnapshot
from services.ingest.publisher import Send
from services.ingest.sources import SourcePacket, StreamInfo
from services.ingest.timing import CaptureClock

log = get_logger(__name__)

PACKETS = Counter("csu_ingest_packets_total", "Packets published", ["camera", "stream"])
BYTES = Counter("csu_ingest_bytes_total", "Bytes of packets published", ["camera", "stream"])
PARAMETER_CHANGES = Counter(
    "csu_ingest_codec_changes_total", "Mid-stream codec parameter changes (new source session)", ["camera"]
)

# Longest delay before published packets show in csu_ingest_packets_total / csu_ingest_bytes_total.
METRICS_S = 0.25

PtzState = Callable[[], PtzSnapshot | None]


class SessionStamper:
    """One source session of one camera stream: `packet` for each packet, `close` at its end."""

    def __init__(
        self,
        camera_id: str,
        stream: str,
        info: StreamInfo,
        clock: Clock,
        opened_at_us: int,
        last_capture_us: int,
        send: Send,
        health: StreamHealth,
        may_publish: Callable[[], bool],
        ptz_state: PtzState | None,
    ) -> None:
        self.camera_id, self.stream = camera_id, stream
        self.info = info
        self.last_capture_us = last_capture_us
        self.delivered = False
        self._capture = CaptureClock(clock, info.live, opened_at_us)
        self._codec = CodecParameters(name=info.codec, extradata=info.extradata, width=info.width, height=info.height)
        self._writer = EnvelopeWriter(camera_id, stream, uuid.uuid4().hex, info.frame_rate, self._codec)
        self._known_sets: ParameterSets | None = None
        self._sequence = 0
        self._send, self._health, self._may_publish, self._ptz_state = send, health, may_publish, ptz_state
        self._packets_metric, self._bytes_metric = PACKETS.labels(camera_id, stream), BYTES.labels(camera_id, stream)
        self._counted = self._volume = 0
        self._flush_at = time.monotonic() + METRICS_S

    def packet(self, packet: SourcePacket) -> bool:
        """Stamp and send one packet; False when it may not be published (the session must end)."""
        data = packet.data
        keyframe = packet.keyframe
        if keyframe:
            # Only keyframes carry parameter sets worth comparing; other packets are not inspected.
            sets = parameter_sets(self.info.codec, data)
            if sets is not None and sets != self._known_sets:
                if self._known_sets is not None:
                    self._reconfigured(sets.annexb(), sets.width, sets.height)
                elif sets.width and (sets.width, sets.height) != (self._health.width, self._health.height):
                    # The stream's own sequence parameter set is the truth about its picture size
                    # (held to the norms, services/common/technical_norms.py), whatever was announced.
                    self._health.resized(sets.width, sets.height)
                self._known_sets = sets
        ts = packet.pts_s if packet.pts_s is not None else packet.dts_s
        capture_us = self._capture.capture_us(ts)
        if capture_us <= self.last_capture_us:
            capture_us = self.last_capture_us + 1
        self.last_capture_us = capture_us
        ptz = None
        moving = False
        if packet.ptz is not None:
            pan, tilt, zoom = packet.ptz
            ptz = PtzPosition(pan=pan, tilt=tilt, zoom=zoom, read_time_us=capture_us)
            moving = packet.moving
        elif self._ptz_state is not None:
            snapshot = self._ptz_state()
            if snapshot is not None:
                ptz = PtzPosition(
                    pan=snapshot.pan, tilt=snapshot.tilt, zoom=snapshot.zoom, read_time_us=snapshot.read_time_us
                )
                moving = snapshot.moving
        if not self._may_publish():
            return False
        size = len(data)
        head = self._writer.head(
            self._sequence, packet.pts, packet.dts, packet.time_base, keyframe, capture_us, size, ptz, moving
        )
        self._send(head, data)
        self._sequence += 1
        self.delivered = True
        self._health.packet(size)
        self._counted += 1
        self._volume += size
        now = time.monotonic()
        if now >= self._flush_at:
            self._flush_metrics(now)
        return True

    def close(self) -> None:
        self._flush_metrics(time.monotonic())

    def _flush_metrics(self, now: float) -> None:
        if self._counted:
            self._packets_metric.inc(self._counted)
            self._bytes_metric.inc(self._volume)
            self._counted = self._volume = 0
        self._flush_at = now + METRICS_S

    def _reconfigured(self, extradata: bytes, width: int, height: int) -> None:
        """Reconfigured mid-stream: a new session with the new parameters, so nobody joins the two."""
        PARAMETER_CHANGES.labels(self.camera_id).inc()
        log.info("codec parameters changed", camera=self.camera_id, stream=self.stream, width=width, height=height)
        self._codec = CodecParameters(
            name=self.info.codec,
            extradata=extradata,
            width=width or self._codec.width,
            height=height or self._codec.height,
        )
        self._writer = EnvelopeWriter(self.camera_id, self.stream, uuid.uuid4().hex, self.info.frame_rate, self._codec)
        self._sequence = 0
        self._health.resized(self._codec.width, self._codec.height)
