"""Refused attempts per client address.

Two budgets, for two kinds of secret:

- `AddressBudget`, logins (and every re-authentication): in the database, so that every gateway
  replica counts against the same budget; see `reserve`.
- `AttemptLimiter`, the kiosk's pairing code: a sliding window in memory.
  `CSU_KIOSK_PAIR_MAX_FAILURES` refusals within `CSU_KIOSK_PAIR_WINDOW_S` block the address (429
  with Retry-After) until the oldest refusal leaves the window. Per gateway replica: with N
  replicas an attacker gets N times the budget, which is still nothing against a 10-character
  code (36^10 combinations); the limit is there to make guessing visible and slow, and every
  refusal is in the audit trail anyway.

The address is the connecting peer's, or the one a trusted proxy forwarded (CSU_TRUSTED_PROXIES,
applied by the HTTP server before any of this runs): a client cannot choose it with a header.
"""

import ipaddress
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine, case, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from services.gateway.identity.models import LoginThrottle

T = LoginThrottle.__table__  # type: ignore[attr-defined]


def address_key(ip: str) -> str:
    """The unit an address budget counts: an IPv4 address, or an IPv6 address's /64 (one
    subscriber gets a whole /64, 2^64 addresses: counting them one by one would count nothing)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip[:64] or "(unknown)"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class Throttled(Exception):
    """The address has used its budget: try again in retry_after_s seconds."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"retry after {retry_after_s} s")
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Ticket:
    """One attempt counted against an address; `give_back` returns it when it was no failure."""

    key: str
    window_start_us: int


def _upsert(engine: Engine):
    return (postgresql if engine.dialect.name == "postgresql" else sqlite).insert(T)


def reserve(engine: Engine, now_us: int, ip: str, max_failures: int, window_s: float) -> Ticket:
    """Count one attempt from this address, or raise Throttled when its window's budget is spent.

    Counted BEFORE the password is checked, in one statement that checks and counts at once (an
    upsert whose update only applies under the limit): 30 parallel attempts from one address get
    exactly max_failures through, on SQLite and PostgreSQL alike. A fixed window (not sliding):
    at worst 2 x max_failures around a window's edge, for one small row per address.
    """
    key = address_key(ip)
    window_us = int(window_s * 1_000_000)
    stale = T.c.window_start_us <= now_us - window_us
    insert = _upsert(engine).values(address=key, window_start_us=now_us, failures=1)
    statement = insert.on_conflict_do_update(
        index_elements=[T.c.address],
        set_={
            "failures": case((stale, 1), else_=T.c.failures + 1),
            "window_start_us": case((stale, now_us), else_=T.c.window_start_us),
        },
        where=stale | (T.c.failures < max_failures),
    ).returning(T.c.window_start_us)
    with engine.begin() as conn:
        started = conn.execute(statement).scalar()
        if started is not None:
            return Ticket(key, started)
        window_start = conn.execute(select(T.c.window_start_us).where(T.c.address == key)).scalar() or now_us
    raise Throttled(max(1, -(-(window_start + window_us - now_us) // 1_000_000)))  # whole seconds, rounded up


def give_back(engine: Engine, ticket: Ticket) -> None:
    """The attempt was not a failure (a successful login, or a step that stops before the second
    factor): it no longer counts. A window that started over since is left alone."""
    with engine.begin() as conn:
        conn.execute(
            update(T)
            .where(T.c.address == ticket.key, T.c.window_start_us == ticket.window_start_us, T.c.failures > 0)
            .values(failures=T.c.failures - 1)
        )


def purge(engine: Engine, now_us: int, window_s: float) -> int:
    """Forget addresses whose window is over (their next attempt starts a new one)."""
    with engine.begin() as conn:
        return conn.execute(delete(T).where(T.c.window_start_us <= now_us - int(window_s * 1_000_000))).rowcount


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
