"""The signing key in use, in the audit trail: a key changed outside `csuctl keys rotate` shows too.

`csuctl keys rotate` records its rotation (old and new fingerprints) before it happens. In
Kubernetes the key is rotated another way: a new Secret and a restart (deploy/helm/csu/README.md),
which nothing on the platform sees being done. So at every start the gateway compares the key it
loaded with the last key the trail names (a `keys.rotate` entry's new key, or an earlier
`keys.in_use` entry) and, when they differ or the trail names none, records `keys.in_use` with the
previous fingerprint. Auditors then find every key that signed the register, the checkpoints and
the statements, and from when, in the trail itself.

The trail is written asynchronously (JetStream, then the audit writer): a rotation event still on
its way when the gateway starts can be followed by a `keys.in_use` naming the key it replaced. That
entry is redundant, never wrong: it says which key this gateway signs with, from then on.
"""

import asyncio
import json
from dataclasses import dataclass

from nats.js import JetStreamContext
from sqlalchemy import Engine, select
from sqlmodel import Session as DbSession
from sqlmodel import col

from services.common import audit
from services.common.clock import Clock
from services.common.log import get_logger
from services.common.signing import Signer
from services.gateway.identity.models import AuditEntry

log = get_logger(__name__)

IN_USE_ACTION = "keys.in_use"
ROTATE_ACTION = "keys.rotate"  # recorded by csuctl keys rotate
TARGET = "signing-key"


def rotation_details(key_file: str, old_fingerprint: str, new_fingerprint: str) -> dict[str, str]:
    """The details of a `keys.rotate` entry (csuctl writes them, the history below reads them)."""
    return {"key_file": key_file, "old_fingerprint": old_fingerprint, "new_fingerprint": new_fingerprint}


@dataclass(frozen=True)
class KeyInUse:
    """One key the trail names as the signing key, from the entry that names it."""

    fingerprint: str
    since_us: int
    # ROTATE_ACTION (put in place by `csuctl keys rotate`) or IN_USE_ACTION (found at a gateway start).
    action: str
    actor: str
    previous_fingerprint: str


def _key_in_use(entry: AuditEntry) -> KeyInUse:
    details = json.loads(entry.details_json or "{}")
    if entry.action == ROTATE_ACTION:
        fingerprint, previous = details.get("new_fingerprint", ""), details.get("old_fingerprint", "")
    else:
        fingerprint, previous = details.get("fingerprint", ""), details.get("previous_fingerprint", "")
    return KeyInUse(fingerprint, entry.time_us, entry.action, entry.actor, previous)


def key_history(engine: Engine) -> list[KeyInUse]:
    """Every signing key the trail names, oldest first: what signed the register, and from when."""
    query = (
        select(AuditEntry)
        .where(col(AuditEntry.action).in_((IN_USE_ACTION, ROTATE_ACTION)))
        .order_by(col(AuditEntry.seq))
    )
    with DbSession(engine) as s:
        return [_key_in_use(entry) for entry in s.execute(query).scalars()]


def recorded_fingerprint(engine: Engine) -> str | None:
    """The fingerprint of the signing key the trail last says is in use (None: it names none)."""
    # A handful of entries over the platform's life (one per rotation or changed Secret): reading
    # them all keeps one reader of what the trail says about keys.
    history = key_history(engine)
    return history[-1].fingerprint if history else None


def mismatch(history: list[KeyInUse], fingerprint: str) -> str | None:
    """A finding when this gateway signs with another key than the trail's last, else None.

    Another gateway replica signing with another key: a Secret not rolled out everywhere.
    """
    if not history or history[-1].fingerprint == fingerprint:
        return None
    return f"audit trail: this gateway signs with key {fingerprint}, the trail last names {history[-1].fingerprint}"


async def record_key_in_use(js: JetStreamContext, prefix: str, engine: Engine, signer: Signer, clock: Clock) -> bool:
    """Record the key this gateway signs with unless the trail already names it; True if recorded."""
    previous = await asyncio.to_thread(recorded_fingerprint, engine)
    if previous == signer.fingerprint:
        return False
    if previous is not None:
        log.warning("signing key differs from the one the audit trail names", previous=previous, now=signer.fingerprint)
    await audit.record(
        js,
        prefix,
        clock,
        actor="system",
        role="",
        action=IN_USE_ACTION,
        target=TARGET,
        details={"fingerprint": signer.fingerprint, "previous_fingerprint": previous or ""},
    )
    return True
