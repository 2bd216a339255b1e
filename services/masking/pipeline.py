"""Per-camera masking: the one decode and the one encode every frame goes through.

    raw packet -> decoder -> image -> masks burned in -> x264 -> masked packet

Privacy rules enforced here (DESIGN §3):
- This is the burn-in way: nothing it publishes skipped the fill. Whether a camera burns in at all
  is the router's decision (router.py: pass-through and camera-masked, each with its own rules).
- Fail closed, counted by reason in csu_masking_fully_masked_frames_total: the whole image is
  masked (and flagged fully_masked) when the camera has no approved mask set or its set could not
  be loaded, and, for PTZ masks, when the frame's PTZ position is unknown, older (or newer) than
  the frame by more than `ptz_max_age_us`, or the camera moves faster than `ptz_max_speed`.
- While a PTZ camera moves (at a speed the masks can follow), each mask is projected at the
  positions the camera may have held during the frame's uncertainty window (the age of the
  position plus two frame intervals) and the union is filled, so the window is covered wherever
  within that window the camera really was.
- A new mask set takes effect on a forced keyframe, so every segment (cut on keyframes and on
  mask_version changes by the archive) records exactly one version.
- A packet that fails to decode is counted and skipped; the stream goes on.

Time: output packets are stamped from the capture time (90 kHz), made strictly increasing, so
the masked stream never goes backwards even when a camera's clock does.

Cost: the decoded image is copied once into an output frame this masker owns (the decoder's own
buffer is a reference picture and must not be written), masks are filled as whole-macroblock
rectangles (slice assignments), and the same output frame is handed to x264 every time, which
copies it into its own buffers; no per-frame allocation of image-sized arrays.
Design: docs/design/masking.md
"""

import threading
from collections import OrderedDict
from fractions import Fraction
from typing import cast

import av
import av.error
import numpy as np
from av.video.codeccontext import VideoCodecContext
from prometheus_client import Counter

from services.common.log import get_logger
from services.common.pb.csu.v1.frame_pb2 import CodecParameters, FramePacket
from services.masking.encoding import EncoderSettings, x264_options
from services.masking.masks import DEFAULT_MARGIN_PX, Yuv, fill_planes
from services.masking.osd import Osd
from services.masking.planner import (
    NO_APPROVED_SET,
    NO_MASK_SET,
    FrameInfo,
    MaskPlanner,
    MaskSet,
    PtzPolicy,
    Velocity,
)
from services.masking.projection import PtzModel
from services.masking.stills import PRESET_STILLS, Still, make_still, position_key

log = get_logger(__name__)

FRAMES = Counter("csu_masking_frames_total", "Frames masked and encoded", ["camera"])
FULLY_MASKED = Counter(
    "csu_masking_fully_masked_frames_total", "Frames masked entirely (fail closed), by reason", ["camera", "reason"]
)
DECODE_ERRORS = Counter("csu_masking_decode_errors_total", "Packets that failed to decode (skipped)", ["camera"])
DROPPED = Counter("csu_masking_dropped_packets_total", "Packets dropped before decoding", ["camera", "reason"])
VERSION_CHANGES = Counter("csu_masking_mask_version_changes_total", "Mask sets switched on a keyframe", ["camera"])

TIME_BASE = Fraction(1, 90_000)
__all__ = ["NO_MASK_SET", "CameraMasker", "EncoderSettings", "MaskSet", "PtzPolicy"]


class CameraMasker:
    """Holds one camera's decoder, encoder and mask plan; `process` has one owner thread."""

    def __init__(
        self,
        camera_id: str,
        masks: MaskSet | None,
        colour: Yuv,
        encoder: EncoderSettings,
        *,
        ptz_model: PtzModel | None = None,
        ptz_policy: PtzPolicy | None = None,
        margin_px: int = DEFAULT_MARGIN_PX,
        missing_reason: str = NO_APPROVED_SET,
        stream: str = "main",
        osd: Osd | None = None,
    ) -> None:
        self.camera_id = camera_id
        # "main" or "sub": the same masks (normalised coordinates) on either stream.
        self.stream = stream
        self._colour = colour
        self._encoder_settings = encoder
        self._planner = MaskPlanner(masks, ptz_model, ptz_policy or PtzPolicy(), margin_px, missing_reason)
        # A new plan waits here until the next frame, which is then forced to be a keyframe.
        self._next_planner: MaskPlanner | None = None
        self._plan_lock = threading.Lock()
        self._decoder: VideoCodecContext | None = None
        self._decoder_params: tuple[str, bytes] | None = None
        self._encoder: VideoCodecContext | None = None
        self._out: av.VideoFrame | None = None
        self._out_planes: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._session = ""
        # The session of the packets this masker publishes: the input's, or the router's when it
        # hands the camera over mid-session (a way through masking starts a session of its own).
        self._out_session = ""
        self.osd = osd
        self._sequence = 0
        self._pending: dict[int, FrameInfo] = {}
        self._last_out_ts = -1
        self._last_capture_us = 0
        self._last_keyframe_us: int | None = None
        # Whether the last frame was masked whole (a change cuts the archive segment: see _mask_and_encode).
        self._fully = False
        self._need_keyframe = True
        self._velocity = Velocity()
        # Previews: the latest keyframe's image, and the latest still image at each PTZ position.
        self.still: Still | None = None
        self.position_stills: OrderedDict[tuple[float, float, float], Still] = OrderedDict()

    # -- masks ---------------------------------------------------------------------------------

    @property
    def mask_version(self) -> str:
        return self._planner.version

    @property
    def planner(self) -> MaskPlanner:
        return self._planner

    @property
    def latest_planner(self) -> MaskPlanner:
        """The plan the next frame will use (a set given by set_masks, or the current one)."""
        return self._next_planner or self._planner

    def frame_info(self, packet: FramePacket) -> FrameInfo:
        return self._frame_info(packet)

    def set_masks(self, masks: MaskSet | None, missing_reason: str = NO_APPROVED_SET) -> None:
        """Apply another mask set from the next frame on (any thread may call this)."""
        current = self._planner
        if masks == current.masks and missing_reason == current.missing_reason:
            return
        planner = MaskPlanner(masks, current.ptz_model, current.policy, current.margin_px, missing_reason)
        with self._plan_lock:
            self._next_planner = planner

    def set_ptz_model(self, model: PtzModel | None) -> None:
        current = self._next_planner or self._planner
        if model == current.ptz_model:
            return
        with self._plan_lock:
            self._next_planner = MaskPlanner(
                current.masks, model, current.policy, current.margin_px, current.missing_reason
            )

    # -- packets -------------------------------------------------------------------------------

    def restart(self, packet: FramePacket, out_session: str) -> None:
        """Start burning in afresh from `packet` on (the router's switch): a new decoder that waits for
        a keyframe, a new encoder (its first frame a keyframe), under the output session given."""
        self._start_session(packet.source_session)
        self._out_session = out_session
        self._encoder = None

    def blank(self, packet: FramePacket, width: int, height: int) -> list[FramePacket]:
        """The whole image masked for this packet's time (a switch before the next keyframe)."""
        if width <= 0 or height <= 0:
            DROPPED.labels(self.camera_id, "size_unknown").inc()
            return []
        info = self._frame_info(packet)
        width, height = width - width % 2, height - height % 2
        planes = self._output_planes(width, height)
        fill_planes(*planes, None, self._colour)
        if self.osd is not None:
            self.osd.draw(planes, info.capture_time_us)
        FULLY_MASKED.labels(self.camera_id, "switching").inc()
        return self._encode(width, height, info, True, self._encoder is None)

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
        self._pending[packet.pts] = self._frame_info(packet)
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

    def _frame_info(self, packet: FramePacket) -> FrameInfo:
        if not packet.HasField("ptz"):
            return FrameInfo(packet.capture_time_us, packet.frame_rate)
        p = packet.ptz
        velocity = self._velocity.update(p.read_time_us, p.pan, p.tilt, p.zoom, packet.moving)
        return FrameInfo(
            packet.capture_time_us, packet.frame_rate, (p.pan, p.tilt, p.zoom, p.read_time_us), packet.moving, velocity
        )

    # -- sessions and codecs -------------------------------------------------------------------

    def _start_session(self, session: str) -> None:
        self._session = self._out_session = session
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
            decoder = cast(VideoCodecContext, av.CodecContext.create(codec.name, "r"))  # frames carry video
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

    def _open_encoder(self, width: int, height: int, frame_rate: float) -> VideoCodecContext:
        s = self._encoder_settings
        encoder = av.CodecContext.create("libx264", "w")
        encoder.width, encoder.height = width, height
        encoder.pix_fmt = "yuv420p"
        encoder.time_base = TIME_BASE
        if frame_rate > 0:
            encoder.framerate = Fraction(frame_rate).limit_denominator(1001)
        # Keyframes are forced by capture time (see _encode); this is only a ceiling.
        encoder.gop_size = 600
        encoder.max_b_frames = 0
        options, threads = x264_options(s, width, height)
        encoder.thread_count = threads
        encoder.options = options
        return encoder

    # -- the frame path ------------------------------------------------------------------------

    def _output_planes(self, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._out is None or (self._out.width, self._out.height) != (width, height):
            self._out = av.VideoFrame(width, height, "yuv420p")
            self._out_planes = tuple(  # type: ignore[assignment]
                np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width] for p in self._out.planes
            )
        assert self._out_planes is not None
        return self._out_planes

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
        planes = self._output_planes(width, height)
        for target, plane in zip(planes, frame.planes, strict=True):
            source = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width]
            np.copyto(target, source)
        switched = False
        if self._next_planner is not None:
            with self._plan_lock:
                planner, self._next_planner = self._next_planner, None
            switched = planner.version != self._planner.version
            self._planner = planner
            if switched:
                VERSION_CHANGES.labels(self.camera_id).inc()
                log.info("mask set applied", camera=self.camera_id, mask_version=planner.version)
        decision = self._planner.decide(width, height, info)
        # A switch to or from whole-frame masking starts a new archive segment: on a keyframe, so
        # none of its frames waits for the next one.
        fully = decision.raster is None
        switched = switched or fully != self._fully
        self._fully = fully
        keyframe = self._keyframe_due(info.capture_time_us) or switched
        if keyframe:
            self.still = make_still(planes, info)
        if info.ptz is not None and not info.moving and (keyframe or self._position_still_due(info)):
            self._keep_position_still(planes, info)
        # The overlay never covers a mask (masks are filled after it); on a wholly masked image it
        # is drawn on the grey, where it hides nothing.
        if self.osd is not None and decision.raster is not None:
            self.osd.draw(planes, info.capture_time_us)
        fill_planes(*planes, decision.raster, self._colour)
        if self.osd is not None and decision.raster is None:
            self.osd.draw(planes, info.capture_time_us)
        if decision.raster is None:
            FULLY_MASKED.labels(self.camera_id, decision.reason).inc()
        return self._encode(width, height, info, decision.raster is None, keyframe)

    def _keyframe_due(self, capture_us: int) -> bool:
        interval_us = self._encoder_settings.keyframe_interval_s * 1_000_000
        return self._last_keyframe_us is None or capture_us - self._last_keyframe_us >= interval_us

    def _position_still_due(self, info: FrameInfo) -> bool:
        assert info.ptz is not None
        return position_key(info.ptz) not in self.position_stills

    def _keep_position_still(self, planes: tuple[np.ndarray, np.ndarray, np.ndarray], info: FrameInfo) -> None:
        assert info.ptz is not None
        key = position_key(info.ptz)
        self.position_stills.pop(key, None)
        self.position_stills[key] = self.still if self.still and self.still.info is info else make_still(planes, info)
        while len(self.position_stills) > PRESET_STILLS:
            self.position_stills.popitem(last=False)

    def _encode(self, width: int, height: int, info: FrameInfo, fully: bool, keyframe: bool) -> list[FramePacket]:
        if self._encoder is not None and (self._encoder.width, self._encoder.height) != (width, height):
            self._encoder = None  # resolution changed: a new encoder starts on a keyframe
        if self._encoder is None:
            self._encoder = self._open_encoder(width, height, info.frame_rate)
            keyframe = True
        capture_us = max(info.capture_time_us, self._last_capture_us + 1)
        ts = max(capture_us * 9 // 100, self._last_out_ts + 1)
        self._last_capture_us, self._last_out_ts = capture_us, ts
        out_frame = self._out
        assert out_frame is not None
        out_frame.pts = ts
        out_frame.time_base = TIME_BASE
        if keyframe:
            out_frame.pict_type = av.video.frame.PictureType.I
            self._last_keyframe_us = capture_us
        else:
            out_frame.pict_type = av.video.frame.PictureType.NONE
        FRAMES.labels(self.camera_id).inc()
        result = []
        version = self._planner.version
        # zerolatency: each frame comes out as exactly one packet, at once.
        for packet in self._encoder.encode(out_frame):
            masked = FramePacket(
                camera_id=self.camera_id,
                stream=self.stream,
                sequence=self._sequence,
                pts=packet.pts if packet.pts is not None else ts,
                dts=packet.dts if packet.dts is not None else ts,
                time_base_num=1,
                time_base_den=90_000,
                keyframe=packet.is_keyframe,
                capture_time_us=capture_us,
                mask_version=version,
                source_session=self._out_session,
                fully_masked=fully,
                frame_rate=info.frame_rate,
                data=bytes(packet),
            )
            if packet.is_keyframe:
                masked.codec.CopyFrom(CodecParameters(name="h264", width=width, height=height))
            self._sequence += 1
            result.append(masked)
        return result
