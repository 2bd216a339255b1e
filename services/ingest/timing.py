"""Capture times: mapping a source's own timestamps onto UTC.

A camera's clock (RTP timestamps, a file's pts) runs at its own rate and starts anywhere, so each
source session is anchored to the wall clock and later packets are placed by their timestamp
offset from the first one.

For a live source the anchor is the moment we started opening it, not the moment its first packet
reaches us: opening an RTSP stream reads the first seconds of packets to learn the codec
(FFmpeg's stream probing), and those packets then arrive in a burst. Every packet was sent after
we started opening, so placing the first one there keeps the burst at its real cadence and every
capture time at or before its arrival. The probe reads at most PROBE_S of stream (sources.py), so
when the open itself took longer (a camera slow to answer, or just back), the worker anchors at
the end of the open minus a probe instead: the first images are never dated from when we started
waiting.

Live sources drift against the wall clock, and cameras jump. A capture time ahead of the wall
clock is impossible, and one lagging more than the longest probe burst means the camera's clock
runs slow or stalled: either way the session re-anchors on the wall clock. The masked stream is
made strictly increasing downstream, so a re-anchor never shows time going backwards.
Design: docs/design/time.md
"""

from datetime import UTC, datetime, timedelta

from services.common.clock import Clock

MAX_LEAD_US = 500_000
MAX_LAG_US = 10_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def _now_us(clock: Clock) -> int:
    # to_us's arithmetic with the epoch built once: a live source asks for every packet. A naive
    # datetime still fails (it cannot be subtracted from an aware one).
    return (clock.now() - _EPOCH) // _US


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
            now = _now_us(self._clock)
            if capture - now > MAX_LEAD_US or now - capture > MAX_LAG_US:
                self._anchor(ts_s, now)
                self.reanchors += 1
                capture = now
        return capture

    def _anchor(self, ts_s: float, at_us: int | None) -> None:
        self._anchor_us = at_us if at_us is not None else _now_us(self._clock)
        self._base_s = ts_s
