"""The audit trail: written from JetStream into a hash chain, searched, exported and verified.

Writing: one durable JetStream consumer ("audit-writer") feeds every gateway replica; each event
is appended in a transaction that locks the chain head, so replicas take turns and the chain never
forks. An event is acked only after its entry is committed, and an event seen twice (redelivery)
is recorded once.

Verifying: recompute every hash from the first kept entry; the first entry whose hash does not
match (changed, inserted or removed entries all show) is reported. Signed checkpoints at a fixed
cadence (every N entries, and M minutes after the previous one: a missing one is a failure) and
the heads published outside the database (the anchors bucket, and every export) show a rewrite of
the chain from some entry on, links recomputed or not, and a truncation: services/common/anchoring.py
is the design, shared with the register and the segment ledger.
Design: docs/design/audit.md
"""

import asyncio
import functools
import json
from collections.abc import Callable

from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import FetchTimeoutError
from sqlalchemy import Engine, delete, func, select
from sqlmodel import Session as DbSession
from sqlmodel import col

from services.common import bus, subjects
from services.common.anchoring import Anchors, AnchorStore, Cadence, ChainCheck, Checkpoint, due_checkpoint
from services.common.clock import Clock, to_us
from services.common.hashchain import Verdict, link_hash
from services.common.log import get_logger
from services.common.pb.csu.v1.audit_pb2 import AuditEvent
from services.common.signing import Keyring, Signer, fingerprint
from services.common.timefmt import DAY_US
from services.gateway.identity.models import AuditCheckpoint, AuditEntry, AuditHead

log = get_logger(__name__)
CHAIN = "audit"
# The cadence of the checkpoints signed before it was a setting (they signed "seq:hash" only).
CHECKPOINT_EVERY = 100
DEFAULT_CADENCE = Cadence.of(CHECKPOINT_EVERY, 5.0)
PURGE_ACTION = "audit.purge"
# An entry's text fields, as the writer stores them and exports show them.
TEXT_FIELDS = ("actor", "role", "origin_ip", "partner", "action", "target", "justification", "recipient", "outcome")
_HASHED = ("seq", "event_id", "time_us", *TEXT_FIELDS, "details_json")


def entry_hash(prev_hash: str, entry: AuditEntry) -> str:
    return link_hash(prev_hash, {name: getattr(entry, name) for name in _HASHED})


def _text(value: str) -> str:
    # PostgreSQL refuses NUL in text; one such event (a probing request's path, say) must not stall
    # the whole trail behind it. The escape keeps it visible to auditors.
    return value.replace("\x00", "\\x00")


def append(
    engine: Engine,
    events: list[AuditEvent],
    signer: Signer | None,
    clock: Clock,
    cadence: Cadence = DEFAULT_CADENCE,
) -> int:
    """Append events to the chain in one transaction; returns how many were new. With a signer,
    the checkpoints due by the cadence (anchoring.py) are signed in the same transaction."""
    added = 0
    with DbSession(engine) as s, s.begin():
        head = s.execute(select(AuditHead).where(col(AuditHead.id) == 1).with_for_update()).scalar_one()
        last = _newest_checkpoint(s)
        known = set(
            s.execute(
                select(col(AuditEntry.event_id)).where(col(AuditEntry.event_id).in_([e.id for e in events]))
            ).scalars()
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
            if signer is not None:
                now_us = to_us(clock.now())
                due = due_checkpoint(signer, CHAIN, entry.seq, entry.entry_hash, entry.time_us, last, cadence, now_us)
                if due is not None:
                    s.add(_row(due, signer))
                    last = due
        s.add(head)
    return added


def _row(checkpoint: Checkpoint, signer: Signer) -> AuditCheckpoint:
    return AuditCheckpoint(
        seq=checkpoint.seq,
        entry_hash=checkpoint.entry_hash,
        signed_us=checkpoint.signed_us,
        signature=checkpoint.signature,
        public_key=signer.public_pem(),
        every_entries=checkpoint.cadence.every_entries,
        every_s=checkpoint.cadence.every_s,
    )


@functools.lru_cache(maxsize=64)
def _key_id(public_key_pem: str) -> str:
    # Every checkpoint stores its PEM: a handful of distinct keys over the trail's life, parsed once.
    try:
        return fingerprint(public_key_pem) if public_key_pem.strip() else ""
    except ValueError:
        return "unreadable"  # in no keyring: reported as an untrusted key


def as_checkpoint(row: AuditCheckpoint) -> Checkpoint:
    """A stored checkpoint as anchoring.py checks it (the stored public key only names the key)."""
    key = _key_id(row.public_key)
    legacy = row.every_entries == 0
    cadence = Cadence(CHECKPOINT_EVERY, 0) if legacy else Cadence(row.every_entries, row.every_s)
    return Checkpoint(CHAIN, row.seq, row.entry_hash, row.signed_us, cadence, row.signature, key, legacy)


def _newest_checkpoint(s: DbSession) -> Checkpoint | None:
    row = s.execute(select(AuditCheckpoint).order_by(col(AuditCheckpoint.seq).desc()).limit(1)).scalar()
    return as_checkpoint(row) if row is not None else None


def newest_checkpoint(engine: Engine) -> Checkpoint | None:
    """The chain's latest checkpoint: what is published outside the database."""
    with DbSession(engine) as s:
        return _newest_checkpoint(s)


def checkpoint_now(
    engine: Engine, signer: Signer, clock: Clock, cadence: Cadence = DEFAULT_CADENCE
) -> Checkpoint | None:
    """Sign the current head (every few minutes, at shutdown, before an export), unless it is
    already signed. The head is locked: the writer's cadence decisions see this checkpoint."""
    with DbSession(engine) as s, s.begin():
        head = s.execute(select(AuditHead).where(col(AuditHead.id) == 1).with_for_update()).scalar_one()
        if head.seq == 0 or s.get(AuditCheckpoint, head.seq) is not None:
            return None
        checkpoint = Checkpoint.sign(signer, CHAIN, head.seq, head.entry_hash, to_us(clock.now()), cadence)
        s.add(_row(checkpoint, signer))
        return checkpoint


def purge_expired(engine: Engine, clock: Clock, retention_days: int) -> tuple[int, int] | None:
    """Delete entries older than the trail's retention; returns (count, last purged seq) or None.

    Only whole leading runs are removed, so the chain stays verifiable from the first kept entry.
    The caller records the purge in the trail itself.
    """
    before_us = to_us(clock.now()) - retention_days * DAY_US
    with DbSession(engine) as s, s.begin():
        last = s.execute(
            select(col(AuditEntry.seq))
            .where(col(AuditEntry.time_us) < before_us)
            .order_by(col(AuditEntry.seq).desc())
            .limit(1)
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
    anchors: Callable[[], Anchors] | None = None,
    cadence: Cadence = DEFAULT_CADENCE,
) -> Verdict:
    """Walk the kept chain; `progress(n)` is told after each batch of n entries.

    Checkpoints are checked with the trusted keys (`Signer.keyring()`: the deployment's current and
    retired keys, so a key rotation keeps older checkpoints valid): the public key stored with a
    checkpoint only selects which trusted key to use, and one outside the keyring is refused. With
    no trusted key given, the stored keys themselves are used (they then prove the chain unchanged
    since signing, not who signed). `anchors` reads the heads published outside the database
    (`AnchorStore.read`); `cadence` is where checkpoints are due before the first one says.
    """
    # Published heads, then checkpoints, then the head row: each read sees no more than the next,
    # so nothing the writer adds meanwhile looks like a head past the chain's end.
    published = anchors() if anchors is not None else None
    with DbSession(engine) as s:
        rows = {c.seq: c for c in s.execute(select(AuditCheckpoint)).scalars()}
        # The head next: the walk stops there, so entries the writer appends meanwhile (committed
        # with a newer head) are neither half-read nor mistaken for a head pointing past the chain.
        head = s.get(AuditHead, 1)
        last = head.seq if head is not None else None
        keyring = (
            Keyring.of(trusted_public_key)
            if trusted_public_key is not None
            else Keyring({r.public_key for r in rows.values() if r.public_key.strip()})
        )
        first_kept = s.execute(select(func.min(AuditEntry.seq))).scalar()
        before = max((seq for seq in rows if first_kept is not None and seq < first_kept), default=None)
        check = ChainCheck(
            CHAIN,
            keyring,
            cadence,
            {seq: as_checkpoint(row) for seq, row in rows.items() if before is None or seq > before},
            published,
            as_checkpoint(rows[before]) if before is not None else None,
        )
        prev: str | None = None
        expected_seq: int | None = None
        after = 0
        while True:
            query = select(AuditEntry).where(col(AuditEntry.seq) > after)
            if last is not None:
                query = query.where(col(AuditEntry.seq) <= last)
            entries = list(s.execute(query.order_by(col(AuditEntry.seq)).limit(batch)).scalars())
            if not entries:
                break
            for entry in entries:
                if prev is None:
                    prev = entry.prev_hash  # the first kept entry anchors the walk (older ones expired)
                    expected_seq = entry.seq
                    if entry.seq > 1 and not _purge_recorded(s, entry.seq - 1):
                        # Entries before it may only be gone through a recorded retention purge.
                        return check.broken(
                            entry.seq - 1, f"entries up to {entry.seq - 1} are missing and no purge of them is recorded"
                        )
                assert expected_seq is not None  # set with prev, just above
                if entry.seq != expected_seq:
                    return check.broken(expected_seq, f"entry {expected_seq} is missing")
                if entry.prev_hash != prev or entry_hash(prev, entry) != entry.entry_hash:
                    return check.broken(entry.seq, f"entry {entry.seq} does not match its hash chain")
                verdict = check.entry(entry.seq, entry.entry_hash, entry.time_us)
                if verdict is not None:
                    return verdict
                prev = entry.entry_hash
                expected_seq = entry.seq + 1
            after = entries[-1].seq
            if progress is not None:
                progress(len(entries))
        if last is not None and check.count and expected_seq is not None and last != expected_seq - 1:
            return check.broken(last, "the chain head points past the last entry")
        return check.finish(expected_seq - 1 if expected_seq is not None else None)


def verify_anchored(
    engine: Engine,
    keyring: Keyring,
    anchors: AnchorStore,
    cadence: Cadence,
    progress: Callable[[int], None] | None = None,
) -> Verdict:
    """The verification every door uses (API, csuctl, compliance report): the chain, its
    checkpoints and cadence, and the heads published outside the database. StoreUnavailable when
    the anchors bucket cannot be read: a verdict without them would vouch for less than it says."""
    return verify_chain(engine, keyring, progress=progress, anchors=lambda: anchors.read(CHAIN), cadence=cadence)


def _purge_recorded(s: DbSession, through_seq: int) -> bool:
    purges = s.execute(select(col(AuditEntry.details_json)).where(col(AuditEntry.action) == PURGE_ACTION)).scalars()
    return any(json.loads(details).get("through_seq") == through_seq for details in purges)


class AuditWriter:
    """Consumes <prefix>.events.audit and appends to the chain until stopped."""

    DURABLE = "audit-writer"

    def __init__(
        self,
        js: JetStreamContext,
        prefix: str,
        engine: Engine,
        signer: Signer | None,
        clock: Clock,
        cadence: Cadence = DEFAULT_CADENCE,
    ) -> None:
        self._js = js
        self._prefix = prefix
        self._engine = engine
        self._signer = signer
        self._clock = clock
        self._cadence = cadence

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
                        await asyncio.to_thread(append, self._engine, events, self._signer, self._clock, self._cadence)
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
    query = select(AuditEntry).where(col(AuditEntry.seq) > after_seq)
    if actor:
        query = query.where(col(AuditEntry.actor) == actor)
    if target:
        query = query.where(col(AuditEntry.target) == target)
    if action:
        query = query.where((col(AuditEntry.action) == action) | col(AuditEntry.action).startswith(action + "."))
    if start_us is not None:
        query = query.where(col(AuditEntry.time_us) >= start_us)
    if end_us is not None:
        query = query.where(col(AuditEntry.time_us) < end_us)
    with DbSession(engine) as s:
        return list(s.execute(query.order_by(col(AuditEntry.seq)).limit(limit)).scalars())
