"""Console notifications: what must pop up on an operator's screen now (an intercom call that brings
up the bollard's camera, a new or acknowledged alarm).

A notification is published on core NATS, `<prefix>.gateway.console.<kind>` (inside the gateway's
own subjects, which its NATS user may publish and read), so that every gateway replica hears it and
passes it to the consoles connected to it. It is perishable on purpose, like a frame: what it
announces is stored first (the call, the alarm) and listed by the API, so a console that was away
catches up by listing, not by replaying pop-ups.

Each message carries the groups of its camera, so a replica decides who may see it without a call
to ingest per message and per console.
"""

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from weakref import WeakKeyDictionary

from nats.aio.client import Client
from nats.aio.msg import Msg

from services.common.clock import to_us
from services.common.log import get_logger
from services.common.timefmt import iso
from services.gateway.backends import Backends
from services.gateway.identity.security import ALL_GROUPS, Principal
from services.gateway.operations.access import role_refusal

log = get_logger(__name__)
# A console this far behind is disconnected (it reconnects and lists what it missed).
QUEUE_SIZE = 200
# Who may see which kind of notification: (actions, city staff only).
AUDIENCE: dict[str, tuple[tuple[str, ...], bool]] = {
    "bollard.call": (("live",), True),
    "alarm.raised": (("camera_health",), False),
    "alarm.acknowledged": (("camera_health",), False),
}
CONSOLE_ACTIONS = ("live", "camera_health")


def subject(prefix: str, kind: str = ">") -> str:
    return f"{prefix}.gateway.console.{kind}"


@dataclass(eq=False)  # identity: listeners live in a set
class Listener:
    principal: Principal
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    overflowed: asyncio.Event = field(default_factory=asyncio.Event)


def visible(principal: Principal, message: dict[str, Any]) -> bool:
    actions, city_staff = AUDIENCE.get(message.get("type", ""), ((), True))
    if not actions:
        return False
    if city_staff and (principal.role == "police_nationale" or principal.partner):
        return False
    if not message.get("camera_id"):
        return role_refusal(principal, actions) is None
    groups = message.get("groups") or []
    if ALL_GROUPS in principal.camera_groups:
        groups = [ALL_GROUPS]
    return any(principal.may(a, groups) for a in actions)


class ConsoleHub:
    """One per gateway process: the NATS subscription and the consoles connected here."""

    def __init__(self) -> None:
        self._listeners: set[Listener] = set()
        self._subscription: Any = None

    async def start(self, nc: Client, prefix: str) -> None:
        if self._subscription is None:
            self._subscription = await nc.subscribe(subject(prefix), cb=self._on_message)

    async def stop(self) -> None:
        if self._subscription is not None:
            try:
                await self._subscription.unsubscribe()
            except Exception:  # noqa: BLE001 - NATS is going away anyway
                pass
            self._subscription = None

    async def _on_message(self, msg: Msg) -> None:
        try:
            message = json.loads(msg.data)
        except ValueError:
            log.warning("malformed console notification dropped", subject=msg.subject)
            return
        self.deliver(message)

    def deliver(self, message: dict[str, Any]) -> None:
        for listener in list(self._listeners):
            if not visible(listener.principal, message):
                continue
            try:
                listener.queue.put_nowait(message)
            except asyncio.QueueFull:
                listener.overflowed.set()

    @contextmanager
    def listen(self, principal: Principal) -> Iterator[Listener]:
        listener = Listener(principal)
        self._listeners.add(listener)
        try:
            yield listener
        finally:
            self._listeners.discard(listener)

    @property
    def started(self) -> bool:
        return self._subscription is not None


_HUBS: "WeakKeyDictionary[Backends, ConsoleHub]" = WeakKeyDictionary()


def hub(b: Backends) -> ConsoleHub:
    if b not in _HUBS:
        _HUBS[b] = ConsoleHub()
    return _HUBS[b]


async def publish(b: Backends, kind: str, camera_id: str, groups: list[str], body: dict[str, Any]) -> bool:
    """Announce to every console allowed to see it; False when NATS is away (the fact is stored anyway)."""
    message = {"type": kind, "camera_id": camera_id, "groups": groups, "time": iso(to_us(b.clock.now()))} | body
    if b.nats is None or not b.nats.is_connected:
        log.warning("console notification not published: NATS not connected", kind=kind)
        return False
    try:
        await b.nats.publish(subject(b.settings.nats_prefix, kind), json.dumps(message).encode())
    except Exception as exc:  # noqa: BLE001 - a lost pop-up is listed anyway
        log.warning("console notification not published", kind=kind, error=str(exc) or type(exc).__name__)
        return False
    return True
