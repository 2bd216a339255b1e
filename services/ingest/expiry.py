"""Authorisation deadlines: the 4-month warning and the expiry alarm, each raised once.

Run by one ingest replica at a time (it holds the "task.authorisations" lease) every minute, on the
injected Clock (ManualClock in tests). A notice is published first and recorded after, so a crash
in between repeats it rather than losing it. Cameras stop recording at expiry by themselves: each
replica checks every camera's authorisation on the same clock before streaming it.
"""

import asyncio
from collections.abc import Awaitable, Callable

from services.common.clock import Clock, to_us
from services.ingest import authorisations as auth
from services.ingest.registry import AuthorisationRecord, Registry

Notify = Callable[[str, AuthorisationRecord, list[str]], Awaitable[None]]


class AuthorisationMonitor:
    def __init__(self, registry: Registry, clock: Clock, notify: Notify) -> None:
        self._registry = registry
        self._clock = clock
        self._notify = notify

    async def check(self) -> list[tuple[str, str]]:
        """Raise what is due; the (reference, kind) pairs raised by this call."""
        now = to_us(self._clock.now())
        raised: list[tuple[str, str]] = []
        for record in await asyncio.to_thread(self._registry.authorisations):
            state = record.status(now)
            if state == auth.EXPIRED and record.expired_alarm_us is None:
                kind = auth.EXPIRED
            elif state == auth.EXPIRING and record.warned_us is None:
                kind = auth.EXPIRING
            else:
                continue
            cameras = await asyncio.to_thread(self._registry.cameras_of, record.reference)
            await self._notify(kind, record, cameras)
            await asyncio.to_thread(self._registry.mark_notice, record.reference, kind, now)
            raised.append((record.reference, kind))
        return raised
