"""Who steers a PTZ camera: one control session per camera, won by priority.

- A command opens a session for its user, or refreshes the user's own session.
- A strictly higher priority takes the camera over; an equal or lower one is refused with the
  holder's name, priority and time left (ingest answers ABORTED, the gateway 409).
- A session ends by itself after idle_timeout_s without a command (15 s by default).
- A supervisor's reservation does not time out while reserved (up to its duration); lower
  priorities cannot break it. An administrator can release any session (force).
- A guard tour holds the camera at the tour priority while it runs; any higher priority stops it.

Pure logic on a Clock: tested with ManualClock, no waiting.
"""

from dataclasses import dataclass, replace

from services.common.clock import Clock, to_us
from services.common.refusals import Busy, Denied


class PtzBusy(Busy):
    """Someone with an equal or higher priority holds the camera; the message names them."""


class PtzRefused(Denied):
    """The user may not do this to the current session (e.g. release someone else's)."""


@dataclass(frozen=True)
class Session:
    holder: str
    priority: int
    since_us: int
    last_us: int
    reserved_until_us: int | None = None
    tour: str = ""

    @property
    def reserved(self) -> bool:
        return self.reserved_until_us is not None


class Arbiter:
    def __init__(self, camera_id: str, clock: Clock, idle_timeout_s: float) -> None:
        self.camera_id = camera_id
        self._clock = clock
        self._idle_us = int(idle_timeout_s * 1_000_000)
        self._session: Session | None = None
        self.preempted: list[tuple[Session, str]] = []  # (ended session, by whom) for logs and tests

    def _now(self) -> int:
        return to_us(self._clock.now())

    def ends_us(self, session: Session) -> int | None:
        """When the session ends by itself (None: a running tour, ended by stopping it)."""
        if session.reserved_until_us is not None:
            return session.reserved_until_us
        if session.tour:
            return None
        return session.last_us + self._idle_us

    def session(self) -> Session | None:
        """The current session, None when there is none or it has ended."""
        if self._session is not None:
            ends = self.ends_us(self._session)
            if ends is not None and self._now() >= ends:
                self._session = None
        return self._session

    def time_left_s(self, session: Session) -> float:
        ends = self.ends_us(session)
        return -1.0 if ends is None else max(0.0, (ends - self._now()) / 1_000_000)

    def describe(self, session: Session) -> str:
        left = self.time_left_s(session)
        if session.tour:
            return (
                f"PTZ of camera {self.camera_id} is on guard tour {session.tour!r} started by {session.holder} "
                f"(priority {session.priority}, until the tour is stopped)"
            )
        kind = "reserved by" if session.reserved else "held by"
        who = f"{session.holder} (priority {session.priority}, {left:.0f} s left)"
        return f"PTZ of camera {self.camera_id} is {kind} {who}"

    def claim(self, user: str, priority: int, tour: str = "") -> Session:
        """Open or refresh the user's session for a command; PtzBusy if someone outranks them."""
        now = self._now()
        current = self.session()
        if current is not None and current.holder == user:
            if current.tour == tour:
                self._session = replace(current, last_us=now, priority=max(current.priority, priority))
            else:  # the same user switching between manual control and a tour
                self._session = Session(user, priority, current.since_us, now, current.reserved_until_us, tour)
            return self._session
        if current is not None and priority <= current.priority:
            raise PtzBusy(self.describe(current))
        if current is not None:
            self.preempted.append((current, user))
        self._session = Session(user, priority, now, now, tour=tour)
        return self._session

    def reserve(self, user: str, priority: int, duration_s: float) -> Session:
        now = self._now()
        current = self.session()
        if current is not None and current.holder != user and priority <= current.priority:
            raise PtzBusy(self.describe(current))
        if current is not None and current.holder != user:
            self.preempted.append((current, user))
        since = current.since_us if current is not None and current.holder == user else now
        self._session = Session(user, priority, since, now, reserved_until_us=now + int(duration_s * 1_000_000))
        return self._session

    def release(self, user: str, force: bool = False) -> Session | None:
        """End the session: the holder's own, or anyone's with force (administrators)."""
        current = self.session()
        if current is None:
            return None
        if current.holder != user and not force:
            raise PtzRefused(f"{self.describe(current)}: only its holder or an administrator can release it")
        self._session = None
        return current

    def restore(self, session: Session) -> None:
        """Take over a session saved by the camera's previous holder (sessions.py); one that has
        ended since is dropped by the next `session()`."""
        self._session = session

    def end_tour(self, tour: str) -> None:
        """The tour stopped by itself (or was stopped): its session ends if it still holds one."""
        if self._session is not None and self._session.tour == tour:
            self._session = None
