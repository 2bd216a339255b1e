"""One PTZ camera in the replica that holds it: its driver, its arbitration, presets and guard tours.

The controller polls the driver for the position (fast while moving or just after a command,
slower when still) and keeps the last reading, which the stream worker puts in every packet with
its read time; masking uses it to make masks follow the view. A driver that cannot be reached is
retried with backoff, and the camera shows degraded ("PTZ unavailable: ...") meanwhile.

Presets are kept in the registry (pan/tilt/zoom), so they are the same whichever replica holds the
camera and whichever driver it uses; going to one is an absolute move. A guard tour visits its
presets in order, waiting for each move to finish and then dwelling, until it is stopped or a
higher priority takes the camera. A continuous move stops by itself after CONTINUOUS_MAX_S without
a new command, so a closed browser cannot leave a camera spinning.

The control session is saved after every change (sessions.py) and taken over by the next replica
to hold the camera, a running guard tour included, so a failover changes nobody's control.
"""

import asyncio
import contextlib
import time
from dataclasses import dataclass

from services.common.clock import Clock
from services.common.log import get_logger
from services.common.pb.csu.v1 import ingest_pb2
from services.common.pb.csu.v1.frame_pb2 import PtzPosition
from services.common.refusals import Invalid, NotFound
from services.common.settings import Settings
from services.ingest.ptz.arbitration import Arbiter, PtzBusy, PtzRefused
from services.ingest.ptz.driver import PtzDriver, PtzError, PtzSnapshot, clamp_position
from services.ingest.ptz.sessions import SessionStore
from services.ingest.registry import Registry

log = get_logger(__name__)

FAST_POLL_S, SLOW_POLL_S, FAST_AFTER_COMMAND_S = 0.2, 1.0, 3.0
CONTINUOUS_MAX_S = 5.0
ARRIVAL_TIMEOUT_S = 30.0
RECONNECT_MAX_S = 30.0
SUPERVISOR_ROLES = frozenset({"supervisor"})


@dataclass(frozen=True)
class Actor:
    user: str
    priority: int
    role: str = ""


def make_driver(kind: str, url: str) -> PtzDriver:
    if kind == "simulated":
        from services.ingest.ptz.sim import SimPtzDriver

        return SimPtzDriver(url)
    if kind == "onvif":
        from services.ingest.ptz.onvif import OnvifPtzDriver

        return OnvifPtzDriver(url)
    raise PtzError(f"unknown PTZ driver {kind!r}")


class PtzController:
    def __init__(
        self,
        camera_id: str,
        kind: str,
        driver: PtzDriver,
        registry: Registry,
        settings: Settings,
        clock: Clock,
        sessions: SessionStore | None = None,
    ) -> None:
        self.camera_id = camera_id
        self.kind = kind
        self.driver = driver
        self._registry = registry
        self._settings = settings
        self.arbiter = Arbiter(camera_id, clock, settings.ptz_idle_timeout_s)
        self._sessions = sessions
        self.snapshot: PtzSnapshot | None = None
        self.problem = "connecting to the PTZ driver"
        self._connected = False
        self._last_command = 0.0
        self._lock = asyncio.Lock()
        self._poller: asyncio.Task[None] | None = None
        self._auto_stop: asyncio.Task[None] | None = None
        self._tour: asyncio.Task[None] | None = None
        self._tour_name = ""
        self._closing = False

    # -- life --------------------------------------------------------------------------------

    def start(self) -> None:
        self._poller = asyncio.create_task(self._poll())

    async def take_over(self) -> None:
        """Carry on the session the camera's previous holder saved, and its guard tour if one ran."""
        if self._sessions is None:
            return
        saved = await self._sessions.load(self.camera_id)
        if saved is None:
            return
        async with self._lock:
            self.arbiter.restore(saved)
            session = self.arbiter.session()
            if session is None or not session.tour:
                return
            tours = await asyncio.to_thread(self._registry.tours, self.camera_id)
            if session.tour not in tours:
                self.arbiter.end_tour(session.tour)
                return
            self._tour_name = session.tour
            self._tour = asyncio.create_task(self._run_tour(session.holder, session.tour, tours[session.tour]))
        log.info("PTZ session taken over", camera=self.camera_id, holder=saved.holder, tour=saved.tour)

    async def _save_session(self) -> None:
        """After every change: a failure to save is logged, never refused (the command is done)."""
        if self._sessions is None or self._closing:
            return
        try:
            await self._sessions.save(self.camera_id, self.arbiter.session())
        except Exception as exc:  # noqa: BLE001 - the next change writes again
            log.warning("PTZ session not saved", camera=self.camera_id, error=str(exc))

    async def close(self) -> None:
        # What the tasks end from here on is the handover, not the session: it stays saved for the next holder.
        self._closing = True
        for task in (self._tour, self._auto_stop, self._poller):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        with contextlib.suppress(Exception):
            await self.driver.close()

    def ptz_state(self) -> PtzSnapshot | None:
        """The last position read (any thread may call it); None while unknown."""
        return self.snapshot if self._connected else None

    async def _poll(self) -> None:
        delay = 1.0
        while True:
            if not self._connected:
                try:
                    await self.driver.connect()
                    self._connected, self.problem, delay = True, "", 1.0
                    log.info("PTZ driver connected", camera=self.camera_id, driver=self.kind)
                except PtzError as exc:
                    self.problem = str(exc)
                    log.warning("PTZ driver unavailable", camera=self.camera_id, reason=str(exc))
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RECONNECT_MAX_S)
                    continue
            try:
                self.snapshot = await self.driver.status()
                self.problem = ""
            except PtzError as exc:
                self.problem, self._connected, self.snapshot = str(exc), False, None
                continue
            recent = time.monotonic() - self._last_command < FAST_AFTER_COMMAND_S
            await asyncio.sleep(FAST_POLL_S if recent or self.snapshot.moving else SLOW_POLL_S)

    # -- views -------------------------------------------------------------------------------

    def _session_pb(self) -> ingest_pb2.PtzSession | None:
        session = self.arbiter.session()
        if session is None:
            return None
        return ingest_pb2.PtzSession(
            holder=session.holder,
            priority=session.priority,
            reserved=session.reserved,
            time_left_s=self.arbiter.time_left_s(session),
            since_us=session.since_us,
            tour=session.tour,
        )

    async def state(self) -> ingest_pb2.PtzState:
        presets = await asyncio.to_thread(self._registry.presets, self.camera_id)
        tours = await asyncio.to_thread(self._registry.tours, self.camera_id)
        state = ingest_pb2.PtzState(camera_id=self.camera_id, driver=self.kind, driver_problem=self.problem)
        if (snap := self.ptz_state()) is not None:
            state.position.CopyFrom(
                PtzPosition(pan=snap.pan, tilt=snap.tilt, zoom=snap.zoom, read_time_us=snap.read_time_us)
            )
            state.has_position, state.moving = True, snap.moving
        if (session := self._session_pb()) is not None:
            state.session.CopyFrom(session)
            state.has_session = True
        for name, (pan, tilt, zoom) in presets.items():
            state.presets.add(name=name, position=ingest_pb2.PtzVector(pan=pan, tilt=tilt, zoom=zoom))
        for name, steps in tours.items():
            tour = state.tours.add(name=name)
            for preset, dwell in steps:
                tour.steps.add(preset=preset, dwell_s=dwell)
        return state

    # -- commands ----------------------------------------------------------------------------

    def _require_driver(self) -> None:
        if not self._connected:
            raise PtzError(f"PTZ of camera {self.camera_id} is unavailable: {self.problem}")

    async def _drive(self, coroutine) -> None:
        self._last_command = time.monotonic()
        await coroutine
        # The next reading shows the move; until then the packets must already say "moving".
        if self.snapshot is not None:
            self.snapshot = PtzSnapshot(
                self.snapshot.pan, self.snapshot.tilt, self.snapshot.zoom, True, self.snapshot.read_time_us
            )

    async def command(self, actor: Actor, kind: str, vector: tuple[float, float, float], preset: str = "") -> None:
        """A move; raises PtzBusy (someone outranks the actor), PtzError, Invalid, NotFound."""
        async with self._lock:
            self._require_driver()
            target = None
            if kind == "preset":
                presets = await asyncio.to_thread(self._registry.presets, self.camera_id)
                if preset not in presets:
                    raise NotFound(f"camera {self.camera_id} has no preset {preset!r}")
                target = presets[preset]
            elif kind not in ("continuous", "absolute", "relative", "stop", "home"):
                raise Invalid(f"unknown PTZ command {kind!r}: continuous, absolute, relative, stop, home or preset")
            self.arbiter.claim(actor.user, actor.priority)
            await self._stop_tour_task()
            if kind != "continuous":
                self._cancel_auto_stop()
            if kind == "continuous":
                await self._drive(self.driver.continuous_move(*vector))
                self._cancel_auto_stop()
                self._auto_stop = asyncio.create_task(self._stop_after(CONTINUOUS_MAX_S))
            elif kind == "absolute":
                await self._drive(self.driver.absolute_move(*clamp_position(*vector)))
            elif kind == "relative":
                await self._drive(self.driver.relative_move(*vector))
            elif kind == "stop":
                await self._drive(self.driver.stop())
            elif kind == "home":
                await self._drive(self.driver.goto_home())
            elif target is not None:
                await self._drive(self.driver.absolute_move(*target))
            await self._save_session()

    def _cancel_auto_stop(self) -> None:
        if self._auto_stop is not None and self._auto_stop is not asyncio.current_task():
            self._auto_stop.cancel()
        self._auto_stop = None

    async def _stop_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        with contextlib.suppress(PtzError):
            await self.driver.stop()

    async def reserve(self, actor: Actor, duration_s: float) -> None:
        if actor.role not in SUPERVISOR_ROLES:
            raise PtzRefused("only supervisors may reserve a PTZ camera")
        if not 0 < duration_s <= self._settings.ptz_reservation_max_s:
            raise Invalid(f"a reservation lasts between 1 s and {self._settings.ptz_reservation_max_s:g} s")
        async with self._lock:
            self.arbiter.reserve(actor.user, actor.priority, duration_s)
            await self._stop_tour_task()
            await self._save_session()

    async def release(self, actor: Actor, force: bool) -> None:
        async with self._lock:
            ended = self.arbiter.release(actor.user, force)
            if ended is not None and ended.tour:
                await self._stop_tour_task()
            await self._save_session()

    # -- presets and tours -------------------------------------------------------------------

    async def set_preset(self, actor: Actor, name: str, position: tuple[float, float, float] | None) -> None:
        if not name or len(name) > 64:
            raise Invalid("a preset needs a name of 1 to 64 characters")
        if position is None:
            self._require_driver()
            snap = await self.driver.status()
            position = (snap.pan, snap.tilt, snap.zoom)
        await asyncio.to_thread(self._registry.put_preset, self.camera_id, name, clamp_position(*position), actor.user)

    async def delete_preset(self, actor: Actor, name: str) -> None:
        del actor
        await asyncio.to_thread(self._registry.delete_preset, self.camera_id, name)

    async def put_tour(self, actor: Actor, name: str, steps: list[tuple[str, float]]) -> None:
        if not name or len(name) > 64:
            raise Invalid("a guard tour needs a name of 1 to 64 characters")
        if not steps:
            raise Invalid("a guard tour needs at least one step")
        if any(not 1 <= dwell <= 3600 for _, dwell in steps):
            raise Invalid("each step dwells between 1 s and 3600 s")
        await asyncio.to_thread(self._registry.put_tour, self.camera_id, name, steps, actor.user)

    async def delete_tour(self, actor: Actor, name: str) -> None:
        del actor
        if self._tour_name == name:
            await self._stop_tour_task()
        await asyncio.to_thread(self._registry.delete_tour, self.camera_id, name)

    async def start_tour(self, actor: Actor, name: str) -> None:
        tours = await asyncio.to_thread(self._registry.tours, self.camera_id)
        if name not in tours:
            raise NotFound(f"camera {self.camera_id} has no guard tour {name!r}")
        async with self._lock:
            self._require_driver()
            current = self.arbiter.session()
            if current is not None and current.holder != actor.user and actor.priority <= current.priority:
                raise PtzBusy(self.arbiter.describe(current))
            await self._stop_tour_task()
            self.arbiter.release(actor.user, force=True)
            self.arbiter.claim(actor.user, self._settings.ptz_tour_priority, tour=name)
            self._tour_name = name
            self._tour = asyncio.create_task(self._run_tour(actor.user, name, tours[name]))
            await self._save_session()

    async def stop_tour(self, actor: Actor) -> None:
        async with self._lock:
            session = self.arbiter.session()
            if session is None or not session.tour:
                return
            if actor.priority < session.priority and actor.user != session.holder:
                raise PtzBusy(self.arbiter.describe(session))
            await self._stop_tour_task()
            await self._save_session()

    async def _stop_tour_task(self) -> None:
        task, name = self._tour, self._tour_name
        self._tour, self._tour_name = None, ""
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if name:
            self.arbiter.end_tour(name)

    def _tour_holds(self, user: str, name: str) -> bool:
        session = self.arbiter.session()
        return session is not None and session.holder == user and session.tour == name

    async def _run_tour(self, user: str, name: str, steps: list[tuple[str, float]]) -> None:
        log.info("guard tour started", camera=self.camera_id, tour=name, by=user)
        try:
            # A tour taken over from another replica starts before the driver has connected here.
            deadline = time.monotonic() + ARRIVAL_TIMEOUT_S
            while not self._connected and time.monotonic() < deadline:
                await asyncio.sleep(FAST_POLL_S)
            while True:
                for preset, dwell in steps:
                    if not self._tour_holds(user, name):
                        return
                    presets = await asyncio.to_thread(self._registry.presets, self.camera_id)
                    if preset not in presets:
                        log.warning("guard tour preset gone; tour stopped", camera=self.camera_id, tour=name)
                        return
                    await self._drive(self.driver.absolute_move(*presets[preset]))
                    await self._wait_arrival()
                    await asyncio.sleep(dwell)
        except PtzError as exc:
            log.warning("guard tour stopped by a PTZ failure", camera=self.camera_id, tour=name, reason=str(exc))
        finally:
            if self._tour is asyncio.current_task() and not self._closing:
                self._tour, self._tour_name = None, ""
                self.arbiter.end_tour(name)
                await self._save_session()

    async def _wait_arrival(self) -> None:
        deadline = time.monotonic() + ARRIVAL_TIMEOUT_S
        await asyncio.sleep(FAST_POLL_S * 2)
        while time.monotonic() < deadline:
            snap = self.snapshot
            if snap is not None and not snap.moving:
                return
            await asyncio.sleep(FAST_POLL_S)
