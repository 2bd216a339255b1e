"""Capture times: mapping a source's own timestamps onto UTC.

A camera's clock (RTP timestamps, a file's pts) runs at its own rate and starts anywhere, so each
source session is anchored to the wall clock and later packets are placed by their timestamp
offset from the first one.

For a live source the anchor is the moment we started opening it, not the moment its first packet
reaches us: opening an RTSP stream reads the first seconds of packets to learn the codec
(FFmpeg's stream probing), and those packets then arrive in a burst. Every packet was sent after
we started opening, so placing the first one there keeps the burst at its real cadence and every
capture time at or before its arrival.

Live sources drift against the wall clock, and cameras jump. A capture time ahead of the wall
clock is impossible, and one lagging more than the longest probe burst means the camera's clock
runs slow or stalled: either way the session re-anchors on the wall clock. The masked stream is
made strictly increasing downstream, so a re-anchor never shows time going backwards.
"""

from services.common.clock import Clock, to_us

MAX_LEAD_US = 500_000
MAX_LAG_US = 10_000_000


class CaptureClock:
    def __init__(self, clock: Clock, live: bool, opened_at_us: int | None = None) -> None:
        self._clock = clock
        self._live = live
        self._opened_at_us = opened_at_us
        self._anchor_us: int | None = None
        self._base_s = 0.0
        self.reanchors = 0

    def capture_us(self, ts_s: float) -> int:
        if self._anchor_us is None:
            start = self._opened_at_us if self._live and self._opened_at_us is not None else None
            self._anchor(ts_s, start)
        assert self._anchor_us is not None
        capture = self._anchor_us + round((ts_s - self._base_s) * 1_000_000)
        if self._live:
            now = to_us(self._clock.now())
            if capture - now > MAX_LEAD_US or now - capture > MAX_LAG_US:
                self._anchor(ts_s, now)
                self.reanchors += 1
                capture = now
        return capture

    def _anchor(self, ts_s: float, at_us: int | None) -> None:
        self._anchor_us = at_us if at_us is not None else to_us(self._clock.now())
        self._base_s = ts_s
