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
"""

import json
from typing import Any

from sqlalchemy import Engine, select
from sqlmodel import Session

from services.common.hashchain import GENESIS, Verdict, canonical_json, link_hash
from services.common.signing import Keyring, Signer, fingerprint
from services.requisition.models import RegisterEntry, RegisterHead

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
) -> RegisterEntry:
    """Add an entry in the session's transaction (the caller commits)."""
    if kind not in KINDS:
        raise ValueError(f"unknown register entry kind {kind!r}")
    head = s.execute(select(RegisterHead).where(RegisterHead.id == 1).with_for_update()).scalar_one()
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
    return entry


def verify_chain(engine: Engine, public_key_pem: Keyring | str, batch: int = 2000) -> Verdict:
    """Walk the whole register from the first entry: hashes, links, sequence and signatures.

    `public_key_pem` is the deployment's keyring (`Signer.keyring()`: current and retired keys) or
    one trusted key. Each entry is checked with the key its recorded fingerprint names, so entries
    signed before a key rotation still verify; a fingerprint outside the keyring is refused.
    """
    trusted = Keyring.of(public_key_pem)
    prev = GENESIS
    expected = 1
    count = 0
    with Session(engine) as s:
        while True:
            rows = list(
                s.execute(
                    select(RegisterEntry).where(RegisterEntry.seq >= expected).order_by(RegisterEntry.seq).limit(batch)
                ).scalars()
            )
            if not rows:
                break
            for entry in rows:
                count += 1
                if entry.seq != expected:
                    return Verdict(False, count, expected, f"entry {expected} is missing")
                if entry.prev_hash != prev:
                    return Verdict(False, count, entry.seq, f"entry {entry.seq} does not follow entry {entry.seq - 1}")
                try:
                    recomputed = link_hash(prev, hashed_fields(entry))
                except ValueError:
                    recomputed = ""
                if recomputed != entry.entry_hash:
                    return Verdict(False, count, entry.seq, f"entry {entry.seq} was changed: its hash does not match")
                if not trusted.verify(signed_bytes(entry), entry.signature, key_fingerprint=entry.key_fingerprint):
                    known = not entry.key_fingerprint or trusted.public_key_for(entry.key_fingerprint) is not None
                    problem = (
                        f"entry {entry.seq}'s signature is not the deployment key's"
                        if known
                        else f"entry {entry.seq} is signed by a key that is neither the deployment's nor a retired one"
                    )
                    return Verdict(False, count, entry.seq, problem)
                prev = entry.entry_hash
                expected += 1
        head = s.get(RegisterHead, 1)
        if head is not None and head.seq != expected - 1:
            return Verdict(False, count, expected, f"the register's head points to entry {head.seq}, past the last")
    return Verdict(True, count)


def entries(
    engine: Engine,
    *,
    after_seq: int = 0,
    limit: int = 500,
    start_us: int = 0,
    end_us: int = 0,
    request_id: str = "",
) -> list[RegisterEntry]:
    query = select(RegisterEntry).where(RegisterEntry.seq > after_seq)
    if start_us:
        query = query.where(RegisterEntry.time_us >= start_us)
    if end_us:
        query = query.where(RegisterEntry.time_us < end_us)
    if request_id:
        query = query.where(RegisterEntry.request_id == request_id)
    with Session(engine) as s:
        return list(s.execute(query.order_by(RegisterEntry.seq).limit(limit)).scalars())
