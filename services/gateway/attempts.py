"""Refused attempts per client address, for endpoints that take a guessable secret without an
account to lock (the kiosk's pairing code).

A sliding window in memory: `CSU_KIOSK_PAIR_MAX_FAILURES` refusals within
`CSU_KIOSK_PAIR_WINDOW_S` block the address (429 with Retry-After) until the oldest refusal leaves
the window. Per gateway replica: with N replicas an attacker gets N times the budget, which is
still nothing against a 10-character code (36^10 combinations); the limit is there to make
guessing visible and slow, and every refusal is in the audit trail anyway.
"""

import time
from collections import deque
from collections.abc import Callable


class AttemptLimiter:
    def __init__(self, max_failures: int, window_s: float, clock: Callable[[], float] | None = None) -> None:
        self._max = max_failures
        self._window = window_s
        self._now = clock or time.monotonic
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str) -> deque[float]:
        failures = self._failures.get(key)
        if failures is None:
            return deque()
        limit = self._now() - self._window
        while failures and failures[0] <= limit:
            failures.popleft()
        if not failures:
            del self._failures[key]
        return failures

    def retry_after(self, key: str) -> float:
        """Seconds until this address may try again; 0 when it may now."""
        failures = self._recent(key)
        if len(failures) < self._max:
            return 0.0
        return max(0.0, failures[0] + self._window - self._now())

    def failed(self, key: str) -> None:
        self._recent(key)
        self._failures.setdefault(key, deque()).append(self._now())
        if len(self._failures) > 10_000:  # bounded: drop the addresses seen longest ago
            for stale in list(self._failures)[:1000]:
                del self._failures[stale]
