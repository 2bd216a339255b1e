"""Per-camera masking: the one decode and the one encode every frame goes through.

    raw packet -> decoder -> image -> masks burned in -> x264 -> masked packet

Privacy rules enforced here (DESIGN §3):
- Nothing is published that did not go through the fill: there is no pass-through path.
- Fail closed: a camera without a loaded mask set is masked entirely (and flagged fully_masked).
- A packet that fails to decode is counted and skipped; the stream goes on.

Time: output packets are stamped from the capture time (90 kHz), made strictly increasing, so
the masked stream never goes backwards even when a camera's clock does.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import av
import av.error
import numpy as np
from prometheus_client import Counter

from services.common.log import get_logger
from services.common.pb.csu.v1.frame_pb2 import CodecParameters, FramePacket
from services.masking.masks import MaskRaster, Yuv, fill_yuv420, rasterise

log = get_logger(__name__)

FRAMES = Counter("csu_masking_frames_total", "Frames masked and encoded", ["camera"])
FULLY_MASKED = Counter("csu_masking_fully_masked_frames_total", "Frames masked entirely (fail closed)", ["camera"])
DECODE_ERRORS = Counter("csu_masking_decode_errors_total", "Packets that failed to decode (skipped)", ["camera"])
DROPPED = Counter("csu_masking_dropped_packets_total", "Packets dropped before decoding", ["camera", "reason"])

TIME_BASE = Fraction(1, 90_000)
# The mask_version of frames masked entirely because the camera has no mask set.
NO_MASK_SET = "none"


@dataclass(frozen=True)
class MaskSet:
    version: str
    polygons: Sequence[Sequence[tuple[float, float]]]


@dataclass(frozen=True)
class EncoderSettings:
    preset: str
    crf: int
    threads: int
    keyframe_interval_s: float


@dataclass(frozen=True)
class _FrameInfo:
    capture_time_us: int
    frame_rate: float


class CameraMasker:
    """Holds one camera's decoder, encoder and mask raster; not thread-safe (one owner)."""

    def __init__(self, camera_id: str, masks: MaskSet | None, colour: Yuv, encoder: EncoderSettings) -> None:
        self.camera_id = camera_id
        self._masks = masks
        self._colour = colour
        self._encoder_settings = encoder
        self._decoder: av.CodecContext | None = None
        self._decoder_params: tuple[str, bytes] | None = None
        self._encoder: av.CodecContext | None = None
        self._raster: MaskRaster | None = None
        self._raster_size: tuple[int, int] | None = None
        self._session = ""
        self._sequence = 0
        self._pending: dict[int, _FrameInfo] = {}
        self._last_out_ts = -1
        self._last_capture_us = 0
        self._last_keyframe_us: int | None = None
        self._need_keyframe = True

    def process(self, packet: FramePacket) -> list[FramePacket]:
        """Mask one raw packet; returns the masked packets it produced (zero or more)."""
        if packet.source_session != self._session:
            out = self._drain()
            self._start_session(packet.source_session)
        else:
            out = []
        if packet.keyframe and packet.HasField("codec"):
            self._configure_decoder(packet.codec)
        if self._need_keyframe:
            if not packet.keyframe or self._decoder is None:
                DROPPED.labels(self.camera_id, "waiting_for_keyframe").inc()
                return out
            self._need_keyframe = False
        if self._decoder is None:
            return out
        av_packet = av.Packet(packet.data)
        av_packet.pts = packet.pts
        av_packet.dts = packet.dts
        if packet.time_base_den:
            av_packet.time_base = Fraction(packet.time_base_num, packet.time_base_den)
        self._pending[packet.pts] = _FrameInfo(packet.capture_time_us, packet.frame_rate)
        try:
            frames = self._decoder.decode(av_packet)
        except (av.error.FFmpegError, ValueError) as exc:
            DECODE_ERRORS.labels(self.camera_id).inc()
            log.warning("packet failed to decode", camera=self.camera_id, error=str(exc))
            self._pending.pop(packet.pts, None)
            return out
        for frame in frames:
            out.extend(self._mask_and_encode(frame))
        return out

    def flush(self) -> list[FramePacket]:
        return self._drain()

    # -- sessions and codecs -----------------------------------------------------------------

    def _start_session(self, session: str) -> None:
        self._session = session
        self._sequence = 0
        self._decoder = None
        self._decoder_params = None
        self._pending.clear()
        self._need_keyframe = True

    def _configure_decoder(self, codec: CodecParameters) -> None:
        params = (codec.name, bytes(codec.extradata))
        if params == self._decoder_params:
            return
        try:
            decoder = av.CodecContext.create(codec.name, "r")
        except (av.error.FFmpegError, ValueError) as exc:
            DROPPED.labels(self.camera_id, "unsupported_codec").inc()
            log.error("unsupported codec", camera=self.camera_id, codec=codec.name, error=str(exc))
            self._decoder = None
            return
        if codec.extradata:
            decoder.extradata = bytes(codec.extradata)
        decoder.thread_count = 1
        self._decoder = decoder
        self._decoder_params = params

    def _drain(self) -> list[FramePacket]:
        out: list[FramePacket] = []
        if self._decoder is not None:
            try:
                for frame in self._decoder.decode(None):
                    out.extend(self._mask_and_encode(frame))
            except av.error.FFmpegError:
                DECODE_ERRORS.labels(self.camera_id).inc()
        return out

    def _open_encoder(self, width: int, height: int, frame_rate: float) -> av.CodecContext:
        s = self._encoder_settings
        encoder = av.CodecContext.create("libx264", "w")
        encoder.width, encoder.height = width, height
        encoder.pix_fmt = "yuv420p"
        encoder.time_base = TIME_BASE
        if frame_rate > 0:
            encoder.framerate = Fraction(frame_rate).limit_denominator(1001)
        # Keyframes are forced by capture time (see _mask_and_encode); this is only a ceiling.
        encoder.gop_size = 600
        encoder.max_b_frames = 0
        encoder.thread_count = s.threads
        # zerolatency: no lookahead and no frame delay, so a frame leaves as soon as it is in.
        encoder.options = {"preset": s.preset, "crf": str(s.crf), "tune": "zerolatency", "forced-idr": "1"}
        return encoder

    # -- the frame path ----------------------------------------------------------------------

    def _mask_and_encode(self, frame: av.VideoFrame) -> list[FramePacket]:
        info = self._pending.pop(frame.pts, None) if frame.pts is not None else None
        if info is None:
            # No timestamp to match (rare decoders): take the oldest pending frame's.
            if not self._pending:
                DROPPED.labels(self.camera_id, "no_timestamp").inc()
                return []
            info = self._pending.pop(min(self._pending))
        width, height = frame.width - frame.width % 2, frame.height - frame.height % 2
        if frame.format.name != "yuv420p" or (width, height) != (frame.width, frame.height):
            frame = frame.reformat(width=width, height=height, format="yuv420p")
        planes = frame.to_ndarray(format="yuv420p")
        raster = self._raster_for(width, height)
        fully = self._masks is None
        fill_yuv420(planes, width, height, None if fully else raster, self._colour)
        if fully:
            FULLY_MASKED.labels(self.camera_id).inc()
        return self._encode(planes, width, height, info, fully)

    def _raster_for(self, width: int, height: int) -> MaskRaster | None:
        if self._masks is None:
            return None
        if self._raster_size != (width, height):
            self._raster = rasterise(self._masks.polygons, width, height)
            self._raster_size = (width, height)
        return self._raster

    def _encode(self, planes: np.ndarray, width: int, height: int, info: _FrameInfo, fully: bool) -> list[FramePacket]:
        if self._encoder is not None and (self._encoder.width, self._encoder.height) != (width, height):
            self._encoder = None  # resolution changed: a new encoder starts on a keyframe
        if self._encoder is None:
            self._encoder = self._open_encoder(width, height, info.frame_rate)
            self._last_keyframe_us = None
        capture_us = max(info.capture_time_us, self._last_capture_us + 1)
        ts = max(capture_us * 9 // 100, self._last_out_ts + 1)
        self._last_capture_us, self._last_out_ts = capture_us, ts
        out_frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
        out_frame.pts = ts
        out_frame.time_base = TIME_BASE
        interval_us = self._encoder_settings.keyframe_interval_s * 1_000_000
        if self._last_keyframe_us is None or capture_us - self._last_keyframe_us >= interval_us:
            out_frame.pict_type = av.video.frame.PictureType.I
            self._last_keyframe_us = capture_us
        FRAMES.labels(self.camera_id).inc()
        result = []
        # zerolatency: each frame comes out as exactly one packet, at once.
        for packet in self._encoder.encode(out_frame):
            masked = FramePacket(
                camera_id=self.camera_id,
                stream="main",
                sequence=self._sequence,
                pts=packet.pts if packet.pts is not None else ts,
                dts=packet.dts if packet.dts is not None else ts,
                time_base_num=1,
                time_base_den=90_000,
                keyframe=packet.is_keyframe,
                capture_time_us=capture_us,
                mask_version=self._masks.version if self._masks else NO_MASK_SET,
                source_session=self._session,
                fully_masked=fully,
                frame_rate=info.frame_rate,
                data=bytes(packet),
            )
            if packet.is_keyframe:
                masked.codec.CopyFrom(CodecParameters(name="h264", width=width, height=height))
            self._sequence += 1
            result.append(masked)
        return result
