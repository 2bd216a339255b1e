"""One camera stream's way through masking (modes.py), switched at keyframes, failing towards more
masking.

    raw packet -> router -> pass-through (the camera's packets, Annex B, envelope re-stamped)
                         -> camera-masked (the camera's packets; keyframes, and frames while a
                            PTZ camera moves, decoded and checked against the approved polygons)
                         -> burn in (pipeline.CameraMasker: decode, fill, OSD, encode)

Rules:
- The way is chosen on each keyframe, from the node's facts (statement, PTZ, declared OSD, camera
  masks enabled), the approved set, the stream (H.264 without B-frames: what the archive and the
  browsers take as it is) and, for camera-masked, the camera's read-back of the approved version
  (newer than the start of this stream session, so a camera that rebooted is read again first,
  and newer than the last failure) and the keyframe's own verification.
- Between keyframes a pass-through camera keeps its way (a new statement or mask set takes effect
  at the next keyframe, as a new mask set does when burning in). A camera-masked camera is checked
  on every packet: a read-back that is missing, stale or of another version, a PTZ position that
  cannot place the masks, or a failed verification while it moves switches it to burning in at
  once, the whole image masked until the next keyframe (the burn-in decoder needs one).
- Every way publishes under a session of its own (`<input session>-<n>`), starting with a keyframe
  carrying its parameter sets, so the archive never joins two ways' packets in one segment.
- Each switch is reported (`on_switch`) for the node to count, audit and, when the camera's own
  masks failed, raise an alarm.

Cost: pass-through is an envelope parse and re-serialisation per packet; camera-masked adds one
keyframe decode per GOP and the check (bench/masking.py measures both).
Design: docs/design/masking.md
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import av
import av.error
import numpy as np
from av.video.codeccontext import VideoCodecContext
from prometheus_client import Counter, Gauge

from services.common.h264 import AnnexB
from services.common.log import get_logger
from services.common.pb.csu.v1.frame_pb2 import CodecParameters, FramePacket
from services.masking import modes
from services.masking.masks import Yuv
from services.masking.modes import BURN_IN, CAMERA_MASKED, PASS_THROUGH, CameraFacts, Confirmation
from services.masking.pipeline import DROPPED, CameraMasker
from services.masking.stills import make_still
from services.masking.verify import covered, interior

log = get_logger(__name__)

PASSED = Counter("csu_masking_passed_frames_total", "Frames published as the camera encoded them", ["camera", "way"])
VERIFIED = Counter(
    "csu_masking_camera_mask_checks_total", "Frames whose camera-burned masks were checked", ["camera", "outcome"]
)
SWITCHES = Counter(
    "csu_masking_way_switches_total", "Switches between ways through masking", ["camera", "to", "reason"]
)
WAY = Gauge("csu_masking_way", "1 for the way each camera's main stream takes now", ["camera", "way"])

# How long a read-back of the camera's masks stays good (the node reads every READBACK_S).
READBACK_MAX_AGE_US = 20_000_000
# Packets kept since the last keyframe, to bring the check decoder up to a frame while a PTZ
# camera moves (a GOP of 4 s at 30 fps is 120).
GOP_LIMIT = 300
# A pass-through camera's preview still is refreshed from a keyframe this often.
STILL_EVERY_US = 30_000_000
TIME_BASE_DEN = 90_000
# How long a new stream session of a camera-masked camera is masked whole (not burned in) while its
# camera's masks are read back: the read-back is asked at once, and answers within a second or two.
CONFIRM_GRACE_US = 10_000_000


@dataclass(frozen=True)
class Switch:
    camera_id: str
    stream: str
    previous: str
    way: str
    reason: str
    capture_us: int
    # The camera's own masks failed (verification, read-back, reboot): an alarm, not just a note.
    failure: bool


FAILURES = frozenset(
    {
        modes.VERIFICATION_FAILED,
        modes.READBACK_MISSING,
        modes.READBACK_MISMATCH,
        modes.READBACK_STALE,
        modes.NEW_SESSION,
        modes.POSITION_UNKNOWN,
        modes.OUT_OF_SYNC,
    }
)


def _planes(frame: av.VideoFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if frame.format.name != "yuv420p" or frame.width % 2 or frame.height % 2:
        frame = frame.reformat(width=frame.width - frame.width % 2, height=frame.height - frame.height % 2,
                               format="yuv420p")  # fmt: skip
    return tuple(  # type: ignore[return-value]
        np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width] for p in frame.planes
    )


class CameraRouter:
    """Routes one camera stream's packets; `process` has one owner thread, the setters any thread."""

    def __init__(
        self,
        masker: CameraMasker,
        facts: CameraFacts,
        colour: Yuv,
        on_switch: Callable[[Switch], None] | None = None,
    ) -> None:
        self.masker = masker
        self.camera_id, self.stream = masker.camera_id, masker.stream
        self.facts = facts
        self.confirmation: Confirmation | None = None
        self._colour = colour
        self._on_switch = on_switch
        self.way = ""
        self.reason = "no keyframe yet"
        self._session = ""
        self._session_start_us = 0
        self._switches = 0
        self._out_session = ""
        self._sequence = 0
        self._last_ts = -1
        self._last_capture_us = 0
        self._codec_name = ""
        self._size = (0, 0)
        self._annexb = AnnexB()
        self._b_frames = False
        self._blanking = False
        self._failed_us = 0
        self._checker: VideoCodecContext | None = None
        self._gop: list[FramePacket] = []
        self._fed = 0  # packets of _gop the check decoder has decoded
        self._last_still_us = 0
        # A failed check is reported once until a check succeeds again (a camera that keeps
        # dropping a mask raises one alarm, not one per keyframe).
        self._failure_reported = False
        self._passed: dict[str, Counter] = {}
        # The last region checked: (the planner's pixels, their interior and its bounding box).
        self._region: tuple[np.ndarray, np.ndarray, tuple[slice, slice]] | None = None

    # -- what the node tells ---------------------------------------------------------------

    @property
    def size(self) -> tuple[int, int]:
        """The stream's picture size from its codec parameters ((0, 0) before the first keyframe)."""
        return self._size

    def set_facts(self, facts: CameraFacts) -> None:
        self.facts = facts

    def set_confirmation(self, confirmation: Confirmation | None) -> None:
        self.confirmation = confirmation

    # -- the masker's face, for previews and reports -----------------------------------------

    @property
    def mask_version(self) -> str:
        return self._version(self.way or BURN_IN)

    @property
    def planner(self):
        return self.masker.planner

    @property
    def still(self):
        return self.masker.still

    @property
    def position_stills(self):
        return self.masker.position_stills

    def set_masks(self, *args, **kwargs) -> None:
        self.masker.set_masks(*args, **kwargs)

    def set_ptz_model(self, model) -> None:
        self.masker.set_ptz_model(model)

    def flush(self) -> list[FramePacket]:
        return self.masker.flush() if self.way == BURN_IN else []

    # -- packets ---------------------------------------------------------------------------

    def process(self, packet: FramePacket) -> list[FramePacket]:
        if packet.source_session != self._session:
            self._new_session(packet)
        if packet.keyframe and packet.HasField("codec"):
            self._codec(packet.codec)
        if packet.pts != packet.dts:
            self._b_frames = True
        if packet.keyframe:
            return self._keyframe(packet)
        if not self.way:
            DROPPED.labels(self.camera_id, "waiting_for_keyframe").inc()
            return []
        if self.way == BURN_IN:
            return self.masker.blank(packet, *self._size) if self._blanking else self.masker.process(packet)
        if self.way == PASS_THROUGH:
            return [self._pass(packet)]
        return self._camera_masked(packet)

    def _new_session(self, packet: FramePacket) -> None:
        self._session = packet.source_session
        self._session_start_us = packet.capture_time_us
        self._b_frames = False
        self._checker = None
        self._gop, self._fed = [], 0
        if self.way and self.way != BURN_IN:
            # Until its first keyframe a new session has no way; nothing of it is passed meanwhile.
            self._report(self.way, BURN_IN, modes.NEW_SESSION, packet.capture_time_us)
        self.way = ""

    def _codec(self, codec: CodecParameters) -> None:
        if codec.name != self._codec_name:
            self._checker = None
        self._codec_name = codec.name
        if codec.width and codec.height:
            self._size = (codec.width, codec.height)
        if codec.name == "h264" and codec.extradata:
            try:
                self._annexb.configure(bytes(codec.extradata))
            except ValueError:
                self._annexb = AnnexB()

    def _keyframe(self, packet: FramePacket) -> list[FramePacket]:
        self._blanking = False
        self._gop, self._fed = [packet], 0
        planner = self.masker.latest_planner
        way, reason = modes.wanted(self.facts, planner.masks, planner.missing_reason)
        if way != BURN_IN and self._codec_name != "h264":
            way, reason = BURN_IN, modes.NOT_H264
        if way != BURN_IN and self._b_frames:
            way, reason = BURN_IN, modes.B_FRAMES
        waiting = False
        if way == CAMERA_MASKED:
            problem = self._readback_problem(packet.capture_time_us) or self._check(packet)
            if problem:
                way, reason = BURN_IN, problem
                # A stream just (re)started, its camera not read back yet: masked whole meanwhile, which
                # costs no decoding (a replica taking over many cameras would otherwise burn them all in).
                waiting = problem in (modes.NEW_SESSION, modes.READBACK_MISSING) and (
                    packet.capture_time_us - self._session_start_us < CONFIRM_GRACE_US
                )
        elif way == PASS_THROUGH and packet.capture_time_us - self._last_still_us >= STILL_EVERY_US:
            self._check(packet, still_only=True)
        if way != self.way:
            self._switch(way, reason, packet)
        elif reason == modes.VERIFICATION_FAILED and not self._failure_reported:
            self._report(self.way, way, reason, packet.capture_time_us, always=True)
        self.reason = reason
        if way == BURN_IN:
            self._blanking = waiting
            return self.masker.blank(packet, *self._size) if waiting else self.masker.process(packet)
        return [self._pass(packet)]

    def _camera_masked(self, packet: FramePacket) -> list[FramePacket]:
        if len(self._gop) < GOP_LIMIT:
            self._gop.append(packet)
        problem = self._readback_problem(packet.capture_time_us)
        if not problem and packet.moving:
            problem = self._check(packet)
        if problem:
            self._switch(BURN_IN, problem, packet)
            self._blanking = True
            return self.masker.blank(packet, *self._size)
        return [self._pass(packet)]

    # -- camera-masked checks --------------------------------------------------------------

    def _readback_problem(self, capture_us: int) -> str:
        c = self.confirmation
        masks = self.masker.latest_planner.masks
        if c is None:
            return modes.READBACK_MISSING
        if c.problem or masks is None or c.version != masks.version:
            return modes.READBACK_MISMATCH
        if c.read_us < self._session_start_us:
            return modes.NEW_SESSION
        if c.read_us <= self._failed_us or capture_us - c.read_us > READBACK_MAX_AGE_US:
            return modes.READBACK_STALE
        return ""

    def _check(self, packet: FramePacket, still_only: bool = False) -> str:
        """Decode up to this packet and check the approved polygons are covered; "" when they are."""
        frame = self._decode_to(packet)
        if frame is None:
            VERIFIED.labels(self.camera_id, "undecodable").inc()
            return "" if still_only else modes.OUT_OF_SYNC
        planes = _planes(frame)
        info = self.masker.frame_info(packet)
        if packet.keyframe and packet.capture_time_us - self._last_still_us >= STILL_EVERY_US:
            self.masker.still = make_still(planes, info)
            self._last_still_us = packet.capture_time_us
        if still_only:
            return ""
        height, width = planes[0].shape
        pixels, reason = self.masker.latest_planner.exact(width, height, info)
        if pixels is None:
            VERIFIED.labels(self.camera_id, "unplaceable").inc()
            log.warning("camera's own masks cannot be placed", camera=self.camera_id, reason=reason)
            return modes.POSITION_UNKNOWN
        if not covered(*self._cropped(planes, pixels), self._colour):
            VERIFIED.labels(self.camera_id, "failed").inc()
            self._failed_us = max(self._failed_us, packet.capture_time_us)
            log.warning("camera's own masks not covering the approved polygons", camera=self.camera_id,
                        stream=self.stream, capture_us=packet.capture_time_us)  # fmt: skip
            return modes.VERIFICATION_FAILED
        VERIFIED.labels(self.camera_id, "covered").inc()
        self._failure_reported = False
        return ""

    def _cropped(
        self, planes: tuple[np.ndarray, np.ndarray, np.ndarray], pixels: np.ndarray
    ) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
        """The planes and the region to check, cut to the region's bounding box (even-aligned)."""
        if self._region is None or self._region[0] is not pixels:
            inside = interior(pixels)
            rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
            if len(rows) == 0:
                box = (slice(0, 0), slice(0, 0))
            else:
                box = (slice(rows[0] // 2 * 2, rows[-1] + 1), slice(cols[0] // 2 * 2, cols[-1] + 1))
            self._region = (pixels, inside[box], box)
        _, region, (ys, xs) = self._region
        y, u, v = planes
        chroma = (slice(ys.start // 2, (ys.stop + 1) // 2), slice(xs.start // 2, (xs.stop + 1) // 2))
        return (y[ys, xs], u[chroma], v[chroma]), region

    def _decode_to(self, packet: FramePacket) -> av.VideoFrame | None:
        if self._checker is None:
            try:
                self._checker = cast(VideoCodecContext, av.CodecContext.create(self._codec_name or "h264", "r"))
            except (av.error.FFmpegError, ValueError):
                return None
            self._checker.thread_count = 1
        if packet.keyframe:
            self._fed = 0
        try:
            index = next(i for i in range(len(self._gop) - 1, -1, -1) if self._gop[i] is packet)
        except StopIteration:
            return None
        if self._fed > index:
            return None
        frame = None
        for queued in self._gop[self._fed : index + 1]:
            data = bytes(queued.data)
            if self._codec_name == "h264":
                data = self._annexb.packet(data, queued.keyframe)
            av_packet = av.Packet(data)
            av_packet.pts = queued.pts
            try:
                frames = self._checker.decode(av_packet)
            except (av.error.FFmpegError, ValueError):
                self._checker = None
                return None
            if frames:
                frame = frames[-1]
        self._fed = index + 1
        return frame

    # -- switching and publishing ----------------------------------------------------------

    def _switch(self, way: str, reason: str, packet: FramePacket) -> None:
        previous = self.way
        self.way, self.reason = way, reason
        self._switches += 1
        self._out_session = f"{self._session}-{self._switches}"
        self._sequence = 0
        if way == BURN_IN:
            self.masker.restart(packet, self._out_session)
        for name in modes.WAYS:
            if self.stream == "main":
                WAY.labels(self.camera_id, name).set(1 if name == way else 0)
        self._report(previous, way, reason, packet.capture_time_us)

    def _report(self, previous: str, way: str, reason: str, capture_us: int, always: bool = False) -> None:
        if previous == way and not always:
            return
        if reason == modes.VERIFICATION_FAILED:
            self._failure_reported = True
        SWITCHES.labels(self.camera_id, way, reason or "cheaper").inc()
        log.info("way through masking", camera=self.camera_id, stream=self.stream, previous=previous or "none",
                 way=way, reason=reason)  # fmt: skip
        if self._on_switch is not None:
            # The camera's own masks failed: while trusted (any reason), or on its pixels (always).
            failure = reason in FAILURES and (previous == CAMERA_MASKED or reason == modes.VERIFICATION_FAILED)
            self._on_switch(Switch(self.camera_id, self.stream, previous, way, reason, capture_us, failure))

    def _version(self, way: str) -> str:
        if way == PASS_THROUGH:
            return modes.STATEMENT_VERSION
        if way == CAMERA_MASKED:
            return self.masker.latest_planner.version + modes.CAMERA_SUFFIX
        return self.masker.mask_version

    def _pass(self, packet: FramePacket) -> FramePacket:
        capture_us = max(packet.capture_time_us, self._last_capture_us + 1)
        ts = max(capture_us * 9 // 100, self._last_ts + 1)
        self._last_capture_us, self._last_ts = capture_us, ts
        out = FramePacket(
            camera_id=self.camera_id,
            stream=self.stream,
            sequence=self._sequence,
            pts=ts,
            dts=ts,
            time_base_num=1,
            time_base_den=TIME_BASE_DEN,
            keyframe=packet.keyframe,
            capture_time_us=capture_us,
            mask_version=self._version(self.way),
            source_session=self._out_session,
            frame_rate=packet.frame_rate,
            data=self._annexb.packet(bytes(packet.data), packet.keyframe),
        )
        if packet.keyframe:
            out.codec.CopyFrom(CodecParameters(name="h264", width=self._size[0], height=self._size[1]))
        self._sequence += 1
        counter = self._passed.get(self.way)
        if counter is None:
            counter = self._passed[self.way] = PASSED.labels(self.camera_id, self.way)
        counter.inc()
        return out
