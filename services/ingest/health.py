"""A camera's health: per-stream metrics, and its status with a reason and a since-when.

    online    the main stream delivers what the recording profile asks
    non_compliant  it delivers, but its measured picture size (from the sequence parameter set)
              or frame rate (over WINDOW_S) is below the declared profile or the arrêté of 3 August
              2007 for the camera's use (services/common/technical_norms.py): recording goes on (losing the
              footage would be worse), an alarm is raised and the archive marks the span
    degraded  it delivers, but stalls, drops repeatedly, or its sub stream or PTZ driver fails
    offline   nothing is delivered: the source fails (the reason says how), or the camera may not
              record (maintenance, no valid authorisation, outside its perimeter)
    connecting  a source is being opened and has not delivered yet

Worker threads only count (`StreamHealth`); the event loop evaluates every second (`evaluate`).
Reasons carry no changing figures, so "since" is when the situation began, not the last sample.
"""

import threading
import time
from collections import deque
from dataclasses import dataclass

from services.common.technical_norms import stream_problem

ONLINE, DEGRADED, OFFLINE, CONNECTING = "online", "degraded", "offline", "connecting"
NON_COMPLIANT = "non_compliant"
WINDOW_S = 5.0
STALL_S = 3.0
# A stream dropping this often within the window is unstable.
FLAPPING_RECONNECTS, FLAPPING_WINDOW_S = 3, 300.0


@dataclass(frozen=True)
class StreamMetrics:
    fps: float
    bitrate_bps: float
    reconnects: int
    last_packet_age_s: float  # -1: nothing in this session
    connected: bool
    streaming_for_s: float
    failure: str
    width: int
    height: int
    codec: str


class StreamHealth:
    """Counters one worker thread updates and the event loop reads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._window: deque[tuple[float, int]] = deque()
        self._last_packet: float | None = None
        self._session_start: float | None = None
        self._failure = ""
        self._connected = False
        self._stall_began: float | None = None
        self._resumed_at = 0.0
        self.reconnects = 0
        self._reconnect_times: deque[float] = deque()
        self.width = self.height = 0
        self.codec = ""

    def opened(self, codec: str, width: int, height: int) -> None:
        with self._lock:
            self._connected, self._failure = True, ""
            self._session_start, self._last_packet = time.monotonic(), None
            self._stall_began, self._resumed_at = None, 0.0
            self.codec, self.width, self.height = codec, width, height

    @property
    def connected(self) -> bool:
        return self._connected

    def resized(self, width: int, height: int) -> None:
        with self._lock:
            self.width, self.height = width, height

    def packet(self, size: int) -> None:
        # Called per packet: no lock (the GIL makes each of these steps atomic; readers tolerate a
        # packet counted a moment late).
        now = time.monotonic()
        previous = self._last_packet
        if previous is not None and now - previous > STALL_S:
            # A hung camera's demuxer may still hand over a few queued packets long after the
            # stall began: the stall lasts until the stream has flowed again for STALL_S.
            if self._stall_began is None:
                self._stall_began = previous
            self._resumed_at = now
        elif self._stall_began is not None and now - self._resumed_at >= STALL_S:
            self._stall_began = None
        self._last_packet = now
        self._window.append((now, size))

    def silent_for(self) -> float:
        """Seconds the stream has been stalled (0 when it flows, or has not started)."""
        last, began = self._last_packet, self._stall_began
        if last is None:
            return 0.0
        return time.monotonic() - (began if began is not None else last)

    def failed(self, reason: str) -> None:
        now = time.monotonic()
        with self._lock:
            if self._last_packet is not None:
                # A stream that delivered and then dropped; failed attempts during one outage
                # are a single drop, not instability.
                self._reconnect_times.append(now)
            self._connected, self._failure = False, reason
            self._last_packet = None
            self.reconnects += 1

    def recent_reconnects(self) -> int:
        now = time.monotonic()
        with self._lock:
            while self._reconnect_times and now - self._reconnect_times[0] > FLAPPING_WINDOW_S:
                self._reconnect_times.popleft()
            return len(self._reconnect_times)

    def metrics(self) -> StreamMetrics:
        now = time.monotonic()
        with self._lock:
            while self._window and now - self._window[0][0] > WINDOW_S:
                self._window.popleft()
            span = min(WINDOW_S, now - self._session_start) if self._session_start else WINDOW_S
            span = max(span, 1.0)
            window = list(self._window)
            frames = len(window)
            size = sum(s for _, s in window)
            return StreamMetrics(
                fps=frames / span,
                bitrate_bps=8 * size / span,
                reconnects=self.reconnects,
                last_packet_age_s=(now - self._last_packet) if self._last_packet is not None else -1.0,
                connected=self._connected,
                streaming_for_s=(now - self._session_start) if self._connected and self._session_start else 0.0,
                failure=self._failure,
                width=self.width,
                height=self.height,
                codec=self.codec,
            )


@dataclass(frozen=True)
class Status:
    status: str
    reason: str


def evaluate(
    refusal: str | None,
    main: StreamMetrics | None,
    recent_reconnects: int,
    profile: tuple[int, int, float],
    sub: StreamMetrics | None = None,
    ptz_problem: str = "",
    close_up: bool = False,
) -> Status:
    """The camera's status from what may be recorded and what its streams deliver.

    A stall outranks non-compliance (nothing is being recorded at all); non-compliance outranks
    the other troubles (the footage being recorded may be unusable as evidence)."""
    if refusal:
        return Status(OFFLINE, refusal)
    if main is None or (not main.connected and not main.failure):
        return Status(CONNECTING, "opening the source")
    if not main.connected:
        return Status(OFFLINE, main.failure)
    if main.last_packet_age_s < 0:
        return Status(CONNECTING, "source opened, waiting for its first image")
    width, height, fps = profile
    if main.last_packet_age_s > STALL_S:
        return Status(DEGRADED, f"no image for more than {STALL_S:g} s")
    # The frame rate is judged once a whole window has been counted.
    measured_fps = main.fps if main.streaming_for_s >= WINDOW_S else None
    if problem := stream_problem(main.width, main.height, measured_fps, (width, height, fps), close_up):
        return Status(NON_COMPLIANT, problem)
    if recent_reconnects >= FLAPPING_RECONNECTS:
        return Status(DEGRADED, f"unstable: the stream dropped {FLAPPING_RECONNECTS} times or more in 5 minutes")
    if sub is not None and not sub.connected and sub.failure:
        return Status(DEGRADED, f"sub stream offline: {sub.failure}")
    if ptz_problem:
        return Status(DEGRADED, f"PTZ unavailable: {ptz_problem}")
    return Status(ONLINE, "streaming")
