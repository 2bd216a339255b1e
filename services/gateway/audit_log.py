"""The audit trail: written from JetStream into a hash chain, searched, exported and verified.

Writing: one durable JetStream consumer ("audit-writer") feeds every gateway replica; each event
is appended in a transaction that locks the chain head, so replicas take turns and the chain never
forks. An event is acked only after its entry is committed, and an event seen twice (redelivery)
is recorded once.

Verifying: recompute every hash from the first kept entry; the first entry whose hash does not
match (changed, inserted or removed entries all show) is reported. Signed checkpoints pin the
chain head every CHECKPOINT_EVERY entries with the deployment's Ed25519 key, so rewriting the
whole chain from some point on is detected too.
"""

import asyncio
import json
from collections.abc import Callable

from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import FetchTimeoutError
from sqlalchemy import Engine, delete, func, select
from sqlmodel import Session as DbSession

from services.common import bus, subjects
from services.common.clock import Clock, to_us
from services.common.hashchain import Verdict, link_hash
from services.common.log import get_logger
from services.common.pb.csu.v1.audit_pb2 import AuditEvent
from services.common.signing import Keyring, Signer, verify
from services.gateway.models import AuditCheckpoint, AuditEntry, AuditHead

log = get_logger(__name__)
CHECKPOINT_EVERY = 100
PURGE_ACTION = "audit.purge"
_HASHED = (
    "seq",
    "event_id",
    "time_us",
    "actor",
    "role",
    "origin_ip",
    "partner",
    "action",
    "target",
    "justification",
    "recipient",
    "outcome",
    "details_json",
)


def entry_hash(prev_hash: str, entry: AuditEntry) -> str:
    return link_hash(prev_hash, {name: getattr(entry, name) for name in _HASHED})


def _text(value: str) -> str:
    # PostgreSQL refuses NUL in text; one such event (a probing request's path, say) must not stall
    # the whole trail behind it. The escape keeps it visible to auditors.
    return value.replace("\x00", "\\x00")


def append(engine: Engine, events: list[AuditEvent], signer: Signer | None, clock: Clock) -> int:
    """Append events to the chain in one transaction; returns how many were new."""
    added = 0
    with DbSession(engine) as s, s.begin():
        head = s.execute(select(AuditHead).where(AuditHead.id == 1).with_for_update()).scalar_one()
        known = set(
            s.execute(select(AuditEntry.event_id).where(AuditEntry.event_id.in_([e.id for e in events]))).scalars()
        )
        for event in events:
            if event.id in known:
                continue
            known.add(event.id)
            entry = AuditEntry(
                seq=head.seq + 1,
                event_id=event.id,
                time_us=event.time_us,
                actor=_text(event.actor),
                role=_text(event.role),
                origin_ip=_text(event.origin_ip),
                partner=_text(event.partner),
                action=_text(event.action),
                target=_text(event.target),
                justification=_text(event.justification),
                recipient=_text(event.recipient),
                outcome=_text(event.outcome) or "ok",
                details_json=_text(event.details_json) or "{}",
                prev_hash=head.entry_hash,
                entry_hash="",
            )
            entry.entry_hash = entry_hash(head.entry_hash, entry)
            s.add(entry)
            head.seq, head.entry_hash = entry.seq, entry.entry_hash
            added += 1
            if signer is not None and entry.seq % CHECKPOINT_EVERY == 0:
                s.add(_checkpoint(entry, signer, clock))
        s.add(head)
    return added


def _checkpoint(entry: AuditEntry, signer: Signer, clock: Clock) -> AuditCheckpoint:
    return AuditCheckpoint(
        seq=entry.seq,
        entry_hash=entry.entry_hash,
        signed_us=to_us(clock.now()),
        signature=signer.sign(f"{entry.seq}:{entry.entry_hash}".encode()),
        public_key=signer.public_pem(),
    )


def checkpoint_now(engine: Engine, signer: Signer, clock: Clock) -> AuditCheckpoint | None:
    """Sign the current head (at shutdown and on demand), unless it is already signed."""
    with DbSession(engine) as s, s.begin():
        head = s.execute(select(AuditHead).where(AuditHead.id == 1)).scalar_one()
        if head.seq == 0 or s.get(AuditCheckpoint, head.seq) is not None:
            return None
        entry = s.get(AuditEntry, head.seq)
        checkpoint = _checkpoint(entry, signer, clock)
        s.add(checkpoint)
        return checkpoint


def purge_expired(engine: Engine, clock: Clock, retention_days: int) -> tuple[int, int] | None:
    """Delete entries older than the trail's retention; returns (count, last purged seq) or None.

    Only whole leading runs are removed, so the chain stays verifiable from the first kept entry.
    The caller records the purge in the trail itself.
    """
    before_us = to_us(clock.now()) - retention_days * 86_400_000_000
    with DbSession(engine) as s, s.begin():
        last = s.execute(
            select(AuditEntry.seq).where(AuditEntry.time_us < before_us).order_by(AuditEntry.seq.desc()).limit(1)
        ).scalar()
        if last is None:
            return None
        count = s.execute(select(func.count()).select_from(AuditEntry).where(AuditEntry.seq <= last)).scalar_one()
        s.execute(delete(AuditEntry).where(AuditEntry.seq <= last))
        s.execute(delete(AuditCheckpoint).where(AuditCheckpoint.seq < last))
        return count, last


def entry_count(engine: Engine) -> int:
    """How many entries the trail keeps (what a verification walks)."""
    with DbSession(engine) as s:
        return s.execute(select(func.count()).select_from(AuditEntry)).scalar_one()


def verify_chain(
    engine: Engine,
    trusted_public_key: Keyring | str | None = None,
    batch: int = 5000,
    progress: Callable[[int], None] | None = None,
) -> Verdict:
    """Walk the kept chain; `progress(n)` is told after each batch of n entries.

    Checkpoints are checked with the trusted keys (`Signer.keyring()`: the deployment's current and
    retired keys, so a key rotation keeps older checkpoints valid): the public key stored with a
    checkpoint only selects which trusted key to use, and one outside the keyring is refused. With
    no trusted key given, the stored key itself is used (it then proves the chain unchanged since
    signing, not who signed).
    """
    trusted = Keyring.of(trusted_public_key) if trusted_public_key is not None else None
    with DbSession(engine) as s:
        # The head first: the walk stops there, so entries the writer appends meanwhile (committed
        # with a newer head) are neither half-read nor mistaken for a head pointing past the chain.
        head = s.get(AuditHead, 1)
        last = head.seq if head is not None else None
        checkpoints = {c.seq: c for c in s.execute(select(AuditCheckpoint)).scalars()}
        prev: str | None = None
        expected_seq: int | None = None
        count = 0
        after = 0
        while True:
            query = select(AuditEntry).where(AuditEntry.seq > after)
            if last is not None:
                query = query.where(AuditEntry.seq <= last)
            rows = list(s.execute(query.order_by(AuditEntry.seq).limit(batch)).scalars())
            if not rows:
                break
            for entry in rows:
                count += 1
                if prev is None:
                    prev = entry.prev_hash  # the first kept entry anchors the walk (older ones expired)
                    expected_seq = entry.seq
                    if entry.seq > 1 and not _purge_recorded(s, entry.seq - 1):
                        # Entries before it may only be gone through a recorded retention purge.
                        return Verdict(
                            False,
                            count,
                            entry.seq - 1,
                            f"entries up to {entry.seq - 1} are missing and no purge of them is recorded",
                        )
                if entry.seq != expected_seq:
                    return Verdict(False, count, expected_seq, f"entry {expected_seq} is missing")
                if entry.prev_hash != prev or entry_hash(prev, entry) != entry.entry_hash:
                    return Verdict(False, count, entry.seq, f"entry {entry.seq} does not match its hash chain")
                checkpoint = checkpoints.get(entry.seq)
                if checkpoint is not None:
                    problem = _checkpoint_problem(checkpoint, entry, trusted)
                    if problem:
                        return Verdict(False, count, entry.seq, problem)
                prev = entry.entry_hash
                expected_seq = entry.seq + 1
            after = rows[-1].seq
            if progress is not None:
                progress(len(rows))
        if last is not None and count and last != expected_seq - 1:
            return Verdict(False, count, last, "the chain head points past the last entry")
        return Verdict(True, count)


def _checkpoint_problem(checkpoint: AuditCheckpoint, entry: AuditEntry, trusted: Keyring | None) -> str | None:
    signed = f"{checkpoint.seq}:{checkpoint.entry_hash}".encode()
    if trusted is None:
        valid = verify(checkpoint.public_key, signed, checkpoint.signature)
    else:
        if checkpoint.public_key.strip() and not trusted.trusts(checkpoint.public_key):
            return f"the checkpoint at entry {entry.seq} is signed by a key the deployment does not trust"
        valid = trusted.verify(signed, checkpoint.signature, public_key_pem=checkpoint.public_key)
    if checkpoint.entry_hash != entry.entry_hash or not valid:
        return f"the signed checkpoint at entry {entry.seq} does not match"
    return None


def _purge_recorded(s: DbSession, through_seq: int) -> bool:
    purges = s.execute(select(AuditEntry.details_json).where(AuditEntry.action == PURGE_ACTION)).scalars()
    return any(json.loads(details).get("through_seq") == through_seq for details in purges)


class AuditWriter:
    """Consumes <prefix>.events.audit and appends to the chain until stopped."""

    DURABLE = "audit-writer"

    def __init__(self, js: JetStreamContext, prefix: str, engine: Engine, signer: Signer | None, clock: Clock) -> None:
        self._js = js
        self._prefix = prefix
        self._engine = engine
        self._signer = signer
        self._clock = clock

    async def run(self) -> None:
        subject = subjects.event(self._prefix, "audit")
        config = ConsumerConfig(
            durable_name=self.DURABLE,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            filter_subject=subject,
            ack_wait=30,
            max_ack_pending=10_000,
        )
        sub = await self._js.pull_subscribe(
            subject, durable=self.DURABLE, stream=subjects.events_stream(self._prefix), config=config
        )
        try:
            while True:
                try:
                    messages = await sub.fetch(200, timeout=1)
                except (FetchTimeoutError, NatsTimeoutError):
                    continue  # nothing to write for now
                except Exception as exc:  # noqa: BLE001 - NATS away: wait and fetch again
                    log.warning("audit fetch failed", error=str(exc))
                    await asyncio.sleep(1)
                    continue
                events = [AuditEvent.FromString(m.data) for m in messages]
                while True:
                    try:
                        await asyncio.to_thread(append, self._engine, events, self._signer, self._clock)
                        break
                    except Exception as exc:  # noqa: BLE001 - database away: keep the events unacked, retry
                        log.warning("audit append failed, retrying", error=str(exc))
                        await asyncio.sleep(1)
                for message in messages:
                    await message.ack()
        finally:
            await bus.release(sub)


def search(
    engine: Engine,
    *,
    actor: str | None = None,
    target: str | None = None,
    action: str | None = None,
    start_us: int | None = None,
    end_us: int | None = None,
    after_seq: int = 0,
    limit: int = 500,
) -> list[AuditEntry]:
    """Entries matching every given filter, in chain order; `action` matches a prefix ("ptz" finds "ptz.move")."""
    query = select(AuditEntry).where(AuditEntry.seq > after_seq)
    if actor:
        query = query.where(AuditEntry.actor == actor)
    if target:
        query = query.where(AuditEntry.target == target)
    if action:
        query = query.where((AuditEntry.action == action) | AuditEntry.action.startswith(action + "."))
    if start_us is not None:
        query = query.where(AuditEntry.time_us >= start_us)
    if end_us is not None:
        query = query.where(AuditEntry.time_us < end_us)
    with DbSession(engine) as s:
        return list(s.execute(query.order_by(AuditEntry.seq).limit(limit)).scalars())
