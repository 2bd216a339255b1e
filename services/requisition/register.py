"""The register of extractions (cahier des extractions): what the CSU's paper notebook held, as an
append-only, hash-chained and signed record.

Entries: extraction, requisition_received, approval, handover, purge, refusal, cancellation,
closure. Each entry's hash links it to the previous one (services/common/hashchain.py, the same
design as the audit trail), and each entry is signed with the deployment's Ed25519 key over the
canonical JSON of the whole entry (fields, previous hash and own hash): a changed, removed or
inserted entry breaks the chain, and an entry re-signed by anyone without the key is detected.

Entries are appended inside the caller's database transaction, with the chain head locked, so a
state change and its register entry are committed together or not at all, and concurrent
writers take turns (the chain never forks).

Signing each entry stops a forgery without the key, not a register cut short (its last entries
deleted, the head moved back) nor a rewrite by someone holding the key. So the register is also
anchored like the audit trail (services/common/anchoring.py): checkpoints at a fixed cadence, a
missing one being a failure, and the head published every few minutes to the object-locked
anchors bucket; verify reports the first entry it can no longer vouch for.
Design: docs/design/audit.md
"""

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, select
from sqlmodel import Session, col

from services.common.anchoring import (
    Anchors,
    AnchorStore,
    Cadence,
    ChainCheck,
    Checkpoint,
    due_checkpoint,
    newest_stored,
    stored,
)
from services.common.hashchain import GENESIS, Verdict, canonical_json, link_hash
from services.common.signing import Keyring, Signer, fingerprint
from services.requisition.models import RegisterCheckpoint, RegisterEntry, RegisterHead

CHAIN = "register"
DEFAULT_CADENCE = Cadence.of(100, 5.0)

KINDS = (
    "extraction",
    "requisition_received",
    "approval",
    "handover",
    "purge",
    "refusal",
    "cancellation",
    "closure",
)


def key_fingerprint(signer: Signer) -> str:
    """SHA-256 of the raw public key, hex (the verifier prints it in groups of four)."""
    return fingerprint(signer.public_key)


def hashed_fields(entry: RegisterEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "time_us": entry.time_us,
        "kind": entry.kind,
        "request_id": entry.request_id,
        "request_number": entry.request_number,
        "actor": entry.actor,
        "payload": json.loads(entry.payload_json),
    }


def signed_bytes(entry: RegisterEntry) -> bytes:
    """What the signature covers: the entry's fields, its previous hash and its own hash."""
    return canonical_json(
        hashed_fields(entry) | {"prev_hash": entry.prev_hash, "entry_hash": entry.entry_hash}
    ).encode()


def append(
    s: Session,
    signer: Signer,
    *,
    time_us: int,
    kind: str,
    request_id: str,
    request_number: str,
    actor: str,
    payload: dict[str, Any],
    cadence: Cadence = DEFAULT_CADENCE,
) -> RegisterEntry:
    """Add an entry in the session's transaction (the caller commits), with the checkpoint due by
    the cadence (anchoring.py), if one is."""
    if kind not in KINDS:
        raise ValueError(f"unknown register entry kind {kind!r}")
    head = s.execute(select(RegisterHead).where(col(RegisterHead.id) == 1).with_for_update()).scalar_one()
    entry = RegisterEntry(
        seq=head.seq + 1,
        time_us=time_us,
        kind=kind,
        request_id=request_id,
        request_number=request_number,
        actor=actor,
        payload_json=canonical_json(payload),
        prev_hash=head.entry_hash,
        entry_hash="",
        signature="",
        key_fingerprint=key_fingerprint(signer),
    )
    entry.entry_hash = link_hash(head.entry_hash, hashed_fields(entry))
    entry.signature = signer.sign(signed_bytes(entry))
    head.seq, head.entry_hash = entry.seq, entry.entry_hash
    s.add(entry)
    s.add(head)
    last = newest_stored(s, RegisterCheckpoint, CHAIN)
    # The signing time is the entry's own: the register's entries are written as they happen.
    due = due_checkpoint(signer, CHAIN, entry.seq, entry.entry_hash, time_us, last, cadence, time_us)
    if due is not None:
        s.add(RegisterCheckpoint.of(due))
    return entry


def checkpoint_now(
    engine: Engine, signer: Signer, now_us: int, cadence: Cadence = DEFAULT_CADENCE
) -> Checkpoint | None:
    """Sign the register's head (every few minutes and as the service stops) unless it is signed."""
    with Session(engine) as s, s.begin():
        head = s.execute(select(RegisterHead).where(col(RegisterHead.id) == 1).with_for_update()).scalar_one()
        if head.seq == 0 or s.get(RegisterCheckpoint, head.seq) is not None:
            return None
        checkpoint = Checkpoint.sign(signer, CHAIN, head.seq, head.entry_hash, now_us, cadence)
        s.add(RegisterCheckpoint.of(checkpoint))
        return checkpoint


def newest_checkpoint(engine: Engine) -> Checkpoint | None:
    with Session(engine) as s:
        return newest_stored(s, RegisterCheckpoint, CHAIN)


def verify_anchored(engine: Engine, keyring: Keyring, anchors: AnchorStore, cadence: Cadence) -> Verdict:
    """verify_chain with the heads published outside the database (StoreUnavailable: unreadable)."""
    return verify_chain(engine, keyring, anchors=lambda: anchors.read(CHAIN), cadence=cadence)


def verify_chain(
    engine: Engine,
    public_key_pem: Keyring | str,
    batch: int = 2000,
    anchors: Callable[[], Anchors] | None = None,
    cadence: Cadence = DEFAULT_CADENCE,
) -> Verdict:
    """Walk the whole register from the first entry: hashes, links, sequence and signatures, the
    checkpoints at their cadence and, given `anchors`, the heads published outside the database.

    `public_key_pem` is the deployment's keyring (`Signer.keyring()`: current and retired keys) or
    one trusted key. Each entry is checked with the key its recorded fingerprint names, so entries
    signed before a key rotation still verify; a fingerprint outside the keyring is refused.
    """
    trusted = Keyring.of(public_key_pem)
    published = anchors() if anchors is not None else None  # first: see anchoring.py's ChainCheck
    prev = GENESIS
    expected = 1
    with Session(engine) as s:
        check = ChainCheck(CHAIN, trusted, cadence, stored(s, RegisterCheckpoint, CHAIN), published)
        head = s.get(RegisterHead, 1)
        last = head.seq if head is not None else 0
        while True:
            rows = list(
                s.execute(
                    select(RegisterEntry)
                    .where(col(RegisterEntry.seq) >= expected, col(RegisterEntry.seq) <= last)
                    .order_by(col(RegisterEntry.seq))
                    .limit(batch)
                ).scalars()
            )
            if not rows:
                break
            for entry in rows:
                if entry.seq != expected:
                    return check.broken(expected, f"entry {expected} is missing")
                if entry.prev_hash != prev:
                    return check.broken(entry.seq, f"entry {entry.seq} does not follow entry {entry.seq - 1}")
                try:
                    recomputed = link_hash(prev, hashed_fields(entry))
                except ValueError:
                    recomputed = ""
                if recomputed != entry.entry_hash:
                    return check.broken(entry.seq, f"entry {entry.seq} was changed: its hash does not match")
                if not trusted.verify(signed_bytes(entry), entry.signature, key_fingerprint=entry.key_fingerprint):
                    known = not entry.key_fingerprint or trusted.public_key_for(entry.key_fingerprint) is not None
                    problem = (
                        f"entry {entry.seq}'s signature is not the deployment key's"
                        if known
                        else f"entry {entry.seq} is signed by a key that is neither the deployment's nor a retired one"
                    )
                    return check.broken(entry.seq, problem)
                verdict = check.entry(entry.seq, entry.entry_hash, entry.time_us)
                if verdict is not None:
                    return verdict
                prev = entry.entry_hash
                expected += 1
        if last != expected - 1:
            return check.broken(expected, f"the register's head points to entry {last}, past the last")
    return check.finish(expected - 1 if expected > 1 else None)


def entries(
    engine: Engine,
    *,
    after_seq: int = 0,
    limit: int = 500,
    start_us: int = 0,
    end_us: int = 0,
    request_id: str = "",
) -> list[RegisterEntry]:
    query = select(RegisterEntry).where(col(RegisterEntry.seq) > after_seq)
    if start_us:
        query = query.where(col(RegisterEntry.time_us) >= start_us)
    if end_us:
        query = query.where(col(RegisterEntry.time_us) < end_us)
    if request_id:
        query = query.where(col(RegisterEntry.request_id) == request_id)
    with Session(engine) as s:
        return list(s.execute(query.order_by(col(RegisterEntry.seq)).limit(limit)).scalars())
