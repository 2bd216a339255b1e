"""Signed checkpoints and published heads: what keeps a hash chain honest against whoever can write
its database. One mechanism for the three chains: the audit trail, the register of extractions and
the segment ledger.

Objective
---------
Those three records must hold against someone who can write the database: who saw and did what,
what footage left and to whom, what footage was stored and its SHA-256. Each is a hash chain
(hashchain.py): an entry's hash covers the previous one, so a changed entry breaks every later
link — unless whoever changed it recomputes the links forward, which takes no secret. A probe of the
platform (issue 23) did exactly that to the audit trail: change one entry's actor, recompute the
links, update the head, delete the checkpoints in between; verification said ok. The objective: a
rewrite or a truncation is reported, naming the first entry that can no longer be vouched for and
why — by the platform, and by an auditor holding only an export and the deployment's public keys.

Background
----------
- A link carries no key; a signature does. The deployment's Ed25519 key (signing.py) is a Secret
  the database's users do not hold. But signatures kept in the database can be deleted, and a
  verifier that checks "the checkpoints that exist" is satisfied by none at all.
- Whoever holds the key AND the database (a compromised gateway pod) can re-sign anything stored in
  the database. Only a copy out of their reach contradicts them.
- S3 object lock in compliance mode (MinIO implements it) makes an object version impossible to
  delete or change until a date, for every credential, the bucket owner's and MinIO's root user
  included. JetStream can refuse deletes and purges of a stream's messages (deny_delete,
  deny_purge), but an account that manages streams can still delete the stream or edit the flags.

Design
------
1. Checkpoints at a fixed cadence. A checkpoint signs the chain's name, an entry's seq and hash, the
   signing time and the cadence in force (`Checkpoint.statement`, canonical JSON). One is due at
   every entry whose seq is a multiple of `every_entries`, and at the first entry whose time is
   `every_s` or more after the previous checkpoint's signing time (`Cadence.due`). The writer
   decides in the transaction that appends the entry, from what the verifier reads too (the entry's
   time, the previous checkpoint's signed time and cadence), so the verifier knows where checkpoints
   must be: a missing one is a failure. Extra checkpoints (the head signed every `every_s`, at a
   clean stop, before an export) are allowed anywhere. Each checkpoint carries, signed, the cadence
   it was made under and the next one is due by it: changing the settings never makes earlier
   checkpoints look missing.
2. The signed head published outside the database. Every `every_s` the service that owns a chain
   signs its head (if it moved) and writes the newest checkpoint to the anchors bucket
   (CSU_BUCKET_ANCHORS, made with object lock) as `<chain>/<seq:020d>-<entry hash>.json`, retained
   in compliance mode for CSU_ANCHOR_RETAIN_DAYS (`AnchorStore`). The name carries the claim, so a
   verification reads the bucket's listing — 1,000 names a request: three years of 5-minute heads
   is about 320 requests — and fetches only what contradicts the database, to check its signature.
   Versions hidden by a later delete or overwrite are listed too (`retained_keys`).
3. One verifier (`ChainCheck`) for the three chains. Each chain recomputes its own entries' hashes
   and links and hands every entry to it; it checks the checkpoints (a trusted key, the signature,
   the hash), the cadence (a missing checkpoint), and the published heads (another hash at the same
   seq: a rewrite; a head past the chain's end: a truncation). It reports the first entry it can no
   longer vouch for: an entry whose own hash is wrong is named exactly; a rewrite that kept its
   links is only seen at the next signature or published head, and then the entry after the last
   one a valid signature or head still covers is named: the change lies between the two.
4. Exports carry the same statements (the audit export's trailer), and an auditor runs the same
   verifier offline on them (`csuctl audit verify --export`).

Caveats
-------
- The newest entries, appended since the last checkpoint (fewer than `every_entries`, at most
  `every_s` old while the service runs), are signed by nothing yet: someone with database write
  access can change them unseen. The window is the cadence (100 entries, 5 minutes by default).
- Someone with database write access can append forged entries at the end, and the next checkpoint
  signs them. Appending hides nothing already written: that is the guarantee, not more.
- Someone holding both the signing key and the database can rewrite what was not yet published
  (the last `every_s`), and can stop the publishing: verify then reports the newest published
  head's time, which an auditor compares with the time of the export.
- The local-directory store cannot lock (objectstore/local.py): on `make run` the published heads
  stand against an edit of the database, not against someone who can edit the data folder.
- A published head is only as old as its lock: past CSU_ANCHOR_RETAIN_DAYS it may be deleted
  (and the entries it vouched for have been purged by then).

Alternatives
------------
- JetStream with deny_delete/deny_purge: whoever manages NATS (ops, who also manage the database)
  can delete the stream; it would hold three years of heads; and an auditor's offline check cannot
  reach it. Object lock in compliance mode binds even MinIO's root user.
- Signing every entry (the register does): it stops forgery without the key, but neither a
  truncation nor someone holding the key; the head still has to be published.
- An RFC 3161 timestamping authority: the closed network reaches none.
Design: docs/design/audit.md
"""

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Self

from prometheus_client import Counter, Gauge
from sqlalchemy import BigInteger
from sqlmodel import Field, Session, SQLModel, col, select

from services.common.clock import Clock
from services.common.hashchain import Verdict, canonical_json
from services.common.log import get_logger
from services.common.objectstore import ObjectStore
from services.common.signing import Keyring, Signer
from services.common.timefmt import iso

log = get_logger(__name__)

STATEMENT_FORMAT = "csu-checkpoint/1"
_ANCHOR_NAME = re.compile(r"^(?P<chain>[a-z]+)/(?P<seq>\d{20})-(?P<hash>[0-9a-f]{64})\.json$")

# The round run as a service stops (sign and publish the head) is cut off after this long.
FINAL_ROUND_S = 8.0
PUBLISHED = Gauge("csu_chain_anchor_published_seq", "Seq of the newest head published outside the database", ["chain"])
PUBLISH_FAILURES = Counter(
    "csu_chain_anchor_failures_total", "Rounds that could not sign or publish a chain's head", ["chain"]
)


@dataclass(frozen=True)
class Cadence:
    """Where checkpoints must be: every `every_entries` entries, and `every_s` after the last one."""

    every_entries: int
    # 0: no time rule (the audit trail's checkpoints signed before the cadence existed).
    every_s: int

    @classmethod
    def of(cls, every_entries: int, every_minutes: float) -> "Cadence":
        return cls(every_entries, max(1, round(every_minutes * 60)))

    def due(self, seq: int, time_us: int, last_signed_us: int | None) -> str | None:
        """Why a checkpoint is due at this entry, or None. `last_signed_us`: the signing time of the
        last checkpoint before it (None: none known, the time rule waits for the first)."""
        if self.every_entries and seq % self.every_entries == 0:
            return f"every {self.every_entries} entries"
        if self.every_s and last_signed_us is not None and time_us - last_signed_us >= self.every_s * 1_000_000:
            return f"{_duration(self.every_s)} after the previous checkpoint"
        return None


def _duration(seconds: int) -> str:
    return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} s"


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement: entry `seq` of `chain` had hash `entry_hash` when signed at `signed_us`."""

    chain: str
    seq: int
    entry_hash: str
    signed_us: int
    cadence: Cadence
    signature: str
    # The signing key's fingerprint ("": unknown, any trusted key may have signed).
    key_fingerprint: str
    # The audit trail's first checkpoints signed "seq:hash" only (neither time nor cadence).
    legacy: bool = False

    def _signed_fields(self) -> dict[str, object]:
        return {
            "chain": self.chain,
            "seq": self.seq,
            "entry_hash": self.entry_hash,
            "signed_us": self.signed_us,
            "every_entries": self.cadence.every_entries,
            "every_s": self.cadence.every_s,
        }

    def statement(self) -> bytes:
        """The bytes the signature covers."""
        if self.legacy:
            return f"{self.seq}:{self.entry_hash}".encode()
        return canonical_json({"format": STATEMENT_FORMAT, **self._signed_fields()}).encode()

    @classmethod
    def sign(
        cls, signer: Signer, chain: str, seq: int, entry_hash: str, signed_us: int, cadence: Cadence
    ) -> "Checkpoint":
        unsigned = cls(chain, seq, entry_hash, signed_us, cadence, "", signer.fingerprint)
        return cls(chain, seq, entry_hash, signed_us, cadence, signer.sign(unsigned.statement()), signer.fingerprint)

    def problem(self, keyring: Keyring) -> str | None:
        """Why this checkpoint vouches for nothing (the key, the signature), or None."""
        if self.key_fingerprint and keyring.public_key_for(self.key_fingerprint) is None:
            return "is signed by a key the deployment does not trust"
        if not keyring.verify(self.statement(), self.signature, key_fingerprint=self.key_fingerprint):
            return "does not match its signature"
        return None

    def to_json(self) -> dict[str, object]:
        """As anchors and exports carry it (from_json reads it back)."""
        document = self._signed_fields() | {"signature": self.signature, "key_fingerprint": self.key_fingerprint}
        if self.legacy:
            document["legacy"] = True
        return document

    @classmethod
    def from_json(cls, document: Mapping[str, object]) -> "Checkpoint":
        """ValueError for anything that is not a checkpoint."""
        try:
            fields = {name: document[name] for name in ("chain", "entry_hash", "signature", "key_fingerprint")}
            numbers = {name: document[name] for name in ("seq", "signed_us", "every_entries", "every_s")}
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a checkpoint: {exc}") from exc
        if not all(isinstance(v, str) for v in fields.values()) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in numbers.values()
        ):
            raise ValueError("not a checkpoint: a field has the wrong type")
        return cls(
            chain=str(fields["chain"]),
            seq=int(numbers["seq"]),  # type: ignore[call-overload]
            entry_hash=str(fields["entry_hash"]),
            signed_us=int(numbers["signed_us"]),  # type: ignore[call-overload]
            cadence=Cadence(int(numbers["every_entries"]), int(numbers["every_s"])),  # type: ignore[call-overload]
            signature=str(fields["signature"]),
            key_fingerprint=str(fields["key_fingerprint"]),
            legacy=document.get("legacy") is True,
        )


class CheckpointColumns(SQLModel):
    """The columns of a chain's checkpoint table (the register's, the segment ledger's): each
    service declares its own table with these, `class X(CheckpointColumns, table=True)`."""

    seq: int = Field(primary_key=True, sa_type=BigInteger, sa_column_kwargs={"autoincrement": False})
    entry_hash: str = Field(max_length=64)
    signed_us: int = Field(sa_type=BigInteger)
    signature: str = Field(max_length=128)
    key_fingerprint: str = Field(max_length=64)
    every_entries: int
    every_s: int

    def checkpoint(self, chain: str) -> Checkpoint:
        cadence = Cadence(self.every_entries, self.every_s)
        return Checkpoint(
            chain, self.seq, self.entry_hash, self.signed_us, cadence, self.signature, self.key_fingerprint
        )

    @classmethod
    def of(cls, checkpoint: Checkpoint) -> Self:
        return cls(
            seq=checkpoint.seq,
            entry_hash=checkpoint.entry_hash,
            signed_us=checkpoint.signed_us,
            signature=checkpoint.signature,
            key_fingerprint=checkpoint.key_fingerprint,
            every_entries=checkpoint.cadence.every_entries,
            every_s=checkpoint.cadence.every_s,
        )


def newest_stored(s: Session, table: type[CheckpointColumns], chain: str) -> Checkpoint | None:
    """The latest checkpoint of a chain's table (what the next one is due after)."""
    row = s.exec(select(table).order_by(col(table.seq).desc()).limit(1)).first()
    return row.checkpoint(chain) if row is not None else None


def stored(s: Session, table: type[CheckpointColumns], chain: str) -> dict[int, Checkpoint]:
    """Every checkpoint of a chain's table, by seq."""
    return {row.seq: row.checkpoint(chain) for row in s.exec(select(table))}


# -- heads published outside the database ------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """What a published head says, from its name: entry `seq` had `entry_hash`."""

    seq: int
    entry_hash: str
    # Where it was published (the object's key), for the report.
    where: str
    # Its signed statement(s) when already at hand (an export); None: fetched from the store.
    statements: tuple[bytes, ...] | None = None


class Anchors:
    """A chain's published heads as a verifier reads them: claims by seq, statements on demand."""

    def __init__(
        self, chain: str, claims: Iterable[Claim], fetch: Callable[[Claim], list[bytes]], foreign: Iterable[str] = ()
    ) -> None:
        self.chain = chain
        self._fetch = fetch
        self.by_seq: dict[int, list[Claim]] = {}
        for claim in claims:
            self.by_seq.setdefault(claim.seq, []).append(claim)
        # Objects under the chain's prefix that are no head at all: named in the verdict.
        self.foreign: list[str] = list(foreign)

    def at(self, seq: int) -> list[Claim]:
        return self.by_seq.get(seq, [])

    def beyond(self, seq: int) -> list[Claim]:
        """Claims past seq, newest first."""
        return [c for s in sorted((s for s in self.by_seq if s > seq), reverse=True) for c in self.by_seq[s]]

    def fetch(self, claim: Claim) -> list[bytes]:
        """The claim's signed statement(s), as published (every retained version)."""
        return list(claim.statements) if claim.statements is not None else self._fetch(claim)

    def signed(self, claim: Claim, keyring: Keyring) -> Checkpoint | None:
        """The claim's statement if the deployment signed it and it says what its name says; else
        None, and the claim is noted as foreign (written by someone else)."""
        for data in self.fetch(claim):
            try:
                checkpoint = Checkpoint.from_json(json.loads(data))
            except ValueError:
                continue
            if (
                checkpoint.chain == self.chain
                and checkpoint.seq == claim.seq
                and checkpoint.entry_hash == claim.entry_hash
                and checkpoint.problem(keyring) is None
            ):
                return checkpoint
        self.foreign.append(claim.where)
        return None


class AnchorStore:
    """The anchors bucket (object lock): publishes checkpoints and reads them back as Anchors."""

    def __init__(self, store: ObjectStore, retain_days: int, clock: Clock) -> None:
        self.store = store
        self.retain_days = retain_days
        self.clock = clock

    def ensure(self) -> None:
        """The bucket, made with object lock (ObjectLockMissing when it exists without)."""
        self.store.ensure_bucket(object_lock=True)

    @staticmethod
    def key(checkpoint: Checkpoint) -> str:
        return f"{checkpoint.chain}/{checkpoint.seq:020d}-{checkpoint.entry_hash}.json"

    def publish(self, checkpoint: Checkpoint) -> bool:
        """Write the checkpoint, locked; False when it was already there."""
        key = self.key(checkpoint)
        if self.store.get_retained(key):
            return False
        until = self.clock.now() + timedelta(days=self.retain_days)
        self.store.put_retained(key, json.dumps(checkpoint.to_json(), sort_keys=True).encode(), until)
        return True

    def read(self, chain: str, after_seq: int = 0) -> Anchors:
        """Every head of the chain published past after_seq (names only: statements are fetched
        when a claim contradicts the database)."""
        claims: list[Claim] = []
        foreign: list[str] = []
        start = f"{chain}/{after_seq:020d}" if after_seq > 0 else ""
        for key in self.store.retained_keys(f"{chain}/", start_after=start):
            match = _ANCHOR_NAME.fullmatch(key)
            if match is None or match["chain"] != chain:
                foreign.append(key)
                continue
            claims.append(Claim(int(match["seq"]), match["hash"], key))
        return Anchors(chain, claims, lambda claim: self.store.get_retained(claim.where), foreign)


# -- the verifier shared by the three chains -----------------------------------------------------


class ChainCheck:
    """Walks alongside a chain's own verification (which checks each entry's hash and link, then
    calls `entry`), checking its checkpoints, their cadence and its published heads."""

    def __init__(
        self,
        chain: str,
        keyring: Keyring,
        default_cadence: Cadence,
        checkpoints: Mapping[int, Checkpoint],
        anchors: Anchors | None = None,
        before: Checkpoint | None = None,
    ) -> None:
        """`checkpoints`: the chain's checkpoints by seq; `before`: the last one before the first
        entry walked (its time and cadence say where the next is due). The cadence before any
        checkpoint is known is the first checkpoint's, or the settings' when there is none."""
        self.chain = chain
        self.keyring = keyring
        self.checkpoints = checkpoints
        self.anchors = anchors
        self.count = 0
        self.first_seq: int | None = None
        self.vouched: int | None = None
        self.anchored: int | None = None
        self._last = before if before is not None and before.problem(keyring) is None else None
        valid = (checkpoints[seq] for seq in sorted(checkpoints) if checkpoints[seq].problem(keyring) is None)
        first = self._last if self._last is not None else next(valid, None)
        self._cadence = first.cadence if first is not None else default_cadence

    def broken(self, seq: int, problem: str) -> Verdict:
        """The entry itself is wrong (its hash, its link, its place): named exactly."""
        return Verdict(False, self.count + 1, seq, problem, self.vouched, self.anchored)

    def _unvouched(self, problem: str) -> Verdict:
        seq = self.vouched + 1 if self.vouched is not None else self.first_seq
        return Verdict(
            False,
            self.count,
            seq,
            f"entries from {seq} on can no longer be vouched for: {problem}",
            self.vouched,
            self.anchored,
        )

    def entry(self, seq: int, entry_hash: str, time_us: int) -> Verdict | None:
        """One more entry whose own hash and link are right; a Verdict when something is wrong."""
        self.count += 1
        if self.first_seq is None:
            self.first_seq = seq
        # The published heads first: a checkpoint re-signed by whoever holds the key does not
        # outweigh a head published, and locked, before the rewrite.
        if self.anchors is not None:
            for claim in self.anchors.at(seq):
                if claim.entry_hash == entry_hash:
                    continue
                published = self.anchors.signed(claim, self.keyring)
                if published is not None:
                    return self._unvouched(
                        f"the head published outside the database at {iso(published.signed_us)} ({claim.where}) "
                        f"says entry {seq} had hash {published.entry_hash[:16]}…, the database's chain has "
                        f"{entry_hash[:16]}… (rewritten at or before entry {seq})"
                    )
        checkpoint = self.checkpoints.get(seq)
        due = self._cadence.due(seq, time_us, self._last.signed_us if self._last is not None else None)
        if checkpoint is not None:
            problem = checkpoint.problem(self.keyring)
            if problem is not None:
                return Verdict(
                    False, self.count, seq, f"the checkpoint at entry {seq} {problem}", self.vouched, self.anchored
                )
            if checkpoint.entry_hash != entry_hash:
                return self._unvouched(
                    f"the signed checkpoint at entry {seq} does not match the chain (rewritten at or before it)"
                )
            self._last, self._cadence, self.vouched = checkpoint, checkpoint.cadence, seq
        elif due is not None:
            return self._unvouched(f"the checkpoint due at entry {seq} ({due}) is missing")
        if self.anchors is not None and any(c.entry_hash == entry_hash for c in self.anchors.at(seq)):
            self.vouched = self.anchored = seq
        return None

    def finish(self, last_seq: int | None) -> Verdict:
        """After the last entry (`last_seq`, None for an empty chain): truncation, foreign heads."""
        end = last_seq if last_seq is not None else 0
        past = [seq for seq in self.checkpoints if seq > end]
        if past:
            # The writer commits a checkpoint with its entry: one past the end outlived its entries.
            return Verdict(
                False,
                self.count,
                end + 1,
                f"the chain ends at entry {end}, but a signed checkpoint names entry {min(past)}: entries were removed",
                self.vouched,
                self.anchored,
            )
        if self.anchors is not None:
            for claim in self.anchors.beyond(end):
                published = self.anchors.signed(claim, self.keyring)
                if published is not None:
                    return Verdict(
                        False,
                        self.count,
                        end + 1,
                        f"the chain ends at entry {end}, but the head published outside the database at "
                        f"{iso(published.signed_us)} ({claim.where}) says it reached entry {published.seq}: "
                        f"entries {end + 1}-{published.seq} were removed",
                        self.vouched,
                        self.anchored,
                    )
            if self.anchors.foreign:
                shown = ", ".join(self.anchors.foreign[:3])
                return Verdict(
                    False,
                    self.count,
                    None,
                    f"the chain is intact, but {len(self.anchors.foreign)} object(s) among its published heads "
                    f"were not signed by the deployment or do not say what their name says: {shown}",
                    self.vouched,
                    self.anchored,
                )
        return Verdict(True, self.count, None, None, self.vouched, self.anchored)


def due_checkpoint(
    signer: Signer,
    chain: str,
    seq: int,
    entry_hash: str,
    time_us: int,
    last: Checkpoint | None,
    cadence: Cadence,
    now_us: int,
) -> Checkpoint | None:
    """The checkpoint the writer must add with this entry (None: none due). The rule is the
    verifier's: the last checkpoint's cadence and signing time, the settings' cadence before any."""
    rule = last.cadence if last is not None else cadence
    if rule.due(seq, time_us, last.signed_us if last is not None else None) is None:
        return None
    return Checkpoint.sign(signer, chain, seq, entry_hash, now_us, cadence)


async def keep_anchored(
    chain: str,
    sign_head: Callable[[], Checkpoint | None],
    newest: Callable[[], Checkpoint | None],
    anchors: AnchorStore,
    interval_s: float,
    stop: asyncio.Event,
    before_round: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Until stop, then once more: sign the chain's head if it moved, and publish the newest
    checkpoint outside the database. Failures are logged and counted, and retried next round."""
    state: dict[str, object] = {"published": None, "prepared": False}

    async def one_round() -> None:
        if not state["prepared"]:
            await asyncio.to_thread(anchors.ensure)
            state["prepared"] = True
        if before_round is not None:
            await before_round()
        await asyncio.to_thread(sign_head)
        checkpoint = await asyncio.to_thread(newest)
        if checkpoint is not None and checkpoint.seq != state["published"]:
            await asyncio.to_thread(anchors.publish, checkpoint)
            state["published"] = checkpoint.seq
            PUBLISHED.labels(chain).set(checkpoint.seq)

    while True:
        stopping = stop.is_set()
        try:
            # The last round, as the service stops, must fit in its grace period (DEVELOPING).
            await (asyncio.wait_for(one_round(), FINAL_ROUND_S) if stopping else one_round())
        except Exception as exc:  # noqa: BLE001 - the database or the store is away: next round
            PUBLISH_FAILURES.labels(chain).inc()
            log.error("chain head not signed or published yet", chain=chain, error=str(exc) or type(exc).__name__)
        if stopping:
            return
        try:
            await asyncio.wait_for(stop.wait(), interval_s)
        except TimeoutError:
            pass
