"""Alarms about partners' conventions: one a month before a convention ends (time to sign its
renewal), one when it has ended (the partner's users are refused from then on, security.py).

Raised like every other alarm (an `Alarm` event on `<prefix>.events.alarm.raised`, stored and shown
by the alarm consumer, popped up on the consoles). Each is raised once per convention: the partner
row remembers the last one, claimed with a conditional update so two replicas never raise it twice.
Checked when a convention is recorded and then every CHECK_S.
"""

import asyncio

from services.common import bus
from services.common.clock import from_us, to_us
from services.common.log import get_logger
from services.common.pb.csu.v1.events_pb2 import Alarm as AlarmEvent
from services.gateway.backends import Backends
from services.gateway.identity.federation import partners

log = get_logger(__name__)
CHECK_S = 600.0
KIND_EXPIRING = "partner.convention_expiring"
KIND_EXPIRED = "partner.convention_expired"


def _message(partner: partners.Partner, status: str) -> str:
    day = f"{from_us(partner.convention_expires_us or 0):%Y-%m-%d %H:%M} UTC"
    if status == partners.CONVENTION_EXPIRING:
        return (
            f"the convention {partner.convention_ref} with partner {partner.id} ({partner.name}) expires on {day}: "
            "have it renewed, access stops at its expiry"
        )
    return (
        f"the convention {partner.convention_ref} with partner {partner.id} ({partner.name}) expired on {day}: "
        "the partner's access has stopped"
    )


async def check(b: Backends) -> int:
    """Raise the alarms due now; how many were raised."""
    assert b.js is not None
    now_us = to_us(b.clock.now())
    raised = 0
    for partner in await asyncio.to_thread(partners.all_partners, b.engine):
        status = partners.convention_status(partner, now_us)
        if not partner.active or status not in (partners.CONVENTION_EXPIRING, partners.CONVENTION_EXPIRED):
            continue
        if partner.convention_notice == status:
            continue
        before = partner.convention_notice
        if not await asyncio.to_thread(partners.claim_notice, b.engine, partner, before, status):
            continue
        event = AlarmEvent(
            kind=KIND_EXPIRING if status == partners.CONVENTION_EXPIRING else KIND_EXPIRED,
            source="gateway",
            message=_message(partner, status),
            raised_us=now_us,
        )
        try:
            await bus.publish_event(b.js, b.settings.nats_prefix, "alarm.raised", event.SerializeToString())
        except Exception:
            # Not raised after all: give the claim back so the next round raises it.
            await asyncio.to_thread(partners.claim_notice, b.engine, partner, status, before)
            raise
        log.warning("partner convention", partner=partner.id, status=status)
        raised += 1
    return raised


async def watch(b: Backends, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await check(b)
        except Exception as exc:  # noqa: BLE001 - database or NATS away: next round
            log.warning("partner conventions not checked", error=str(exc) or type(exc).__name__)
        try:
            await asyncio.wait_for(stop.wait(), CHECK_S)
        except TimeoutError:
            pass
