"""Unauthenticated refusals in the audit trail, without letting anyone grow it at will.

Anyone can send a made-up token or a login for an account that does not exist: recorded one by
one, 200 such requests made 200 entries in 3 s. Per source address and action, the first refusal
of a window (CSU_REFUSAL_AUDIT_WINDOW_S, 60 s) is recorded at once, in full; the others of that
window are counted, and one summary entry records their count, reasons and a few samples when the
window ends. So a source costs the trail at most 2 entries per window and action, per gateway
replica.

Memory is bounded: at most MAX_SOURCES windows are open; past that, refusals from new sources are
counted together under the address "(many addresses)" (a distributed probe is then one summary a
window, not thousands). Summaries are written by `run` every few seconds, and by `flush` at stop.

Refusals that checked an account's password or code are not aggregated (services/gateway/identity/login.py):
the account lock bounds them, and auditors want each one.
"""

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from weakref import WeakKeyDictionary

from fastapi import HTTPException

from services.common.clock import to_us
from services.common.log import get_logger
from services.gateway.backends import Backends

log = get_logger(__name__)
# 10,000 open windows: ~2 MB at most (a window holds a few counters and up to 10 short samples).
MAX_SOURCES = 10_000
MANY = "(many addresses)"
MAX_SAMPLES = 10


@dataclass
class Window:
    action: str
    address: str
    opened: float  # monotonic seconds
    opened_us: int
    count: int = 0  # refusals after the first, not yet in the trail
    reasons: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)
    target: str = ""


@dataclass(frozen=True)
class Summary:
    action: str
    address: str
    count: int
    since_us: int
    reasons: dict[str, int]
    samples: list[str]
    target: str


class RefusalAggregator:
    """The bookkeeping (no I/O): which refusal is written at once, which summaries are due."""

    def __init__(self, window_s: float, now: Callable[[], float] = time.monotonic, max_sources: int = MAX_SOURCES):
        self.window_s = window_s
        self._now = now
        self._max = max_sources
        self._open: dict[tuple[str, str], Window] = {}
        self._due: list[Summary] = []

    def note(self, action: str, address: str, reason: str, sample: str, target: str, now_us: int) -> bool:
        """Count a refusal; True when it opens a window, so it must be written now, in full."""
        key = (action, address)
        window = self._current(key)
        if window is None and len(self._open) >= self._max:
            self._close_ended()
            if len(self._open) >= self._max:
                key = (action, MANY)
                window = self._current(key)
        if window is None:
            self._open[key] = Window(action, key[1], self._now(), now_us, target=target)
            return True
        window.count += 1
        window.reasons[reason] += 1
        if sample and sample[:80] not in window.samples and len(window.samples) < MAX_SAMPLES:
            window.samples.append(sample[:80])
        return False

    def take_due(self, everything: bool = False) -> list[Summary]:
        """Summaries of the windows that have ended (all of them when stopping), to be written."""
        self._close_ended(everything)
        due, self._due = self._due, []
        return due

    def _current(self, key: tuple[str, str]) -> Window | None:
        window = self._open.get(key)
        if window is not None and self._now() - window.opened >= self.window_s:
            self._close(key)
            return None
        return window

    def _close_ended(self, everything: bool = False) -> None:
        now = self._now()
        for key, window in list(self._open.items()):
            if everything or now - window.opened >= self.window_s:
                self._close(key)

    def _close(self, key: tuple[str, str]) -> None:
        window = self._open.pop(key)
        if window.count:
            self._due.append(
                Summary(
                    window.action,
                    window.address,
                    window.count,
                    window.opened_us,
                    dict(window.reasons),
                    list(window.samples),
                    window.target,
                )
            )


_aggregators: "WeakKeyDictionary[Backends, RefusalAggregator]" = WeakKeyDictionary()


def aggregator(b: Backends) -> RefusalAggregator:
    found = _aggregators.get(b)
    if found is None:
        found = _aggregators[b] = RefusalAggregator(b.settings.refusal_audit_window_s)
    return found


async def refused(
    b: Backends, *, action: str, origin_ip: str, reason: str, sample: str, actor: str, role: str, target: str
) -> None:
    """Audit an unauthenticated refusal: at once if it opens its source's window, else counted.

    Never raises: a refusal stands whether or not the trail could take it."""
    from services.gateway.identity.security import record

    if not aggregator(b).note(action, origin_ip, reason, sample, target, to_us(b.clock.now())):
        return
    window_s = int(b.settings.refusal_audit_window_s)
    details = {"reason": reason, "aggregated": f"further refusals from this address within {window_s} s are summarised"}
    try:
        await record(
            b,
            actor=actor,
            role=role,
            origin_ip=origin_ip,
            action=action,
            target=target,
            outcome="refused",
            details=details,
        )
    except HTTPException:
        log.warning("refusal not recorded: audit trail unavailable", action=action)


async def flush(b: Backends, everything: bool = False) -> int:
    """Write the summaries that are due; returns how many were written."""
    from services.gateway.identity.security import record

    written = 0
    for summary in aggregator(b).take_due(everything):
        details: dict[str, Any] = {
            "summary": True,
            "count": summary.count,
            "since_us": summary.since_us,
            "window_s": b.settings.refusal_audit_window_s,
            "reasons": summary.reasons,
            "samples": summary.samples,
        }
        try:
            await record(
                b,
                actor="(summary)",
                role="",
                origin_ip="" if summary.address == MANY else summary.address,
                action=summary.action,
                target=summary.target if summary.address != MANY else MANY,
                outcome="refused",
                details=details,
            )
            written += 1
        except HTTPException:
            log.warning("refusal summary not recorded", action=summary.action, count=summary.count)
    return written


async def run(b: Backends, stop: asyncio.Event) -> None:
    """Write summaries as their windows end, until stop; then the rest."""
    period = min(5.0, b.settings.refusal_audit_window_s / 2)
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), period)
        except TimeoutError:
            pass
        await flush(b, everything=stop.is_set())
