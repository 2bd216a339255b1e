"""The segment ledger: every segment the index holds, in the order it was indexed, in one hash
chain anchored like the audit trail and the register (services/common/anchoring.py).

Why. Each segment's SHA-256 is chained per camera (`prev_sha256`), but that chain links content
hashes and carries no key: someone with write access to the database and the bucket can replace a
segment's bytes, put the new hash in its row and object metadata and in the next row's
`prev_sha256`, or delete a segment and relink the next one, and `verify` (verify.py) finds nothing.
The ledger copies each row's fields into an append-only chain whose checkpoints are signed at a
fixed cadence and whose head is published to the object-locked anchors bucket: a row changed or
removed after it was ledgered disagrees with the ledger, and a rewritten ledger disagrees with its
signatures and published heads. `check_camera` compares a camera's rows with the ledger (the
archive's Verify does it), `verify` walks the whole ledger (VerifyLedger, `csuctl segments
verify-ledger`).

Written after the fact. The archive's anchoring loop takes in the rows that appeared since its
last round (`append_new`, by `created_us` from a margin back, every LEDGER_EVERY_S) rather than the
recorder in its own transaction: rows are written by several paths (the recorder, the index row
deferred while the database was away, the start-up reconcile), all ending as a row in
archive_segments, and the loop takes them all in without any of them having to remember it. The
price: a row can be changed in the seconds before it is ledgered — inside the unsigned window
anyway (anchoring.py, caveats).

Removals. The sweeper deletes rows at retention (with deletion proofs) and the reconcile removes
rows whose object is gone (object_missing gaps); the ledger keeps their entries, and a ledgered
segment may be absent from the index only when its SHA-256 is in one of those records.
Purge: entries whose segment is gone and which were ledgered more than the legal maximum and two
days ago go as leading runs; the head records how far (`purged_through`).
Design: docs/design/audit.md
"""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine, delete, exists, func
from sqlmodel import Session, col, select

from services.archive import index
from services.archive.models import LedgerCheckpoint, LedgerEntry, LedgerHead, Segment
from services.archive.verify import Problem
from services.common.anchoring import (
    Anchors,
    AnchorStore,
    Cadence,
    ChainCheck,
    Checkpoint,
    due_checkpoint,
    keep_anchored,
    newest_stored,
    stored,
)
from services.common.clock import Clock, to_us
from services.common.hashchain import Verdict, link_hash
from services.common.log import get_logger
from services.common.objectstore import make_store
from services.common.settings import LEGAL_MAX_RETENTION_DAYS, Settings
from services.common.signing import Keyring, Signer
from services.common.timefmt import DAY_US

log = get_logger(__name__)

CHAIN = "segments"
DEFAULT_CADENCE = Cadence.of(100, 5.0)
# How often the anchoring loop takes new rows in (seconds).
LEDGER_EVERY_S = 5.0
# Rows are looked for from this long before the newest one ledgered: a row's created_us is taken
# before its transaction commits, so rows committed out of order within it are still found.
MARGIN_US = 10 * 60 * 1_000_000
PURGE_AFTER_US = (LEGAL_MAX_RETENTION_DAYS + 2) * DAY_US
# The fields of a row the ledger keeps and compares (created_us is when, not what).
FIELDS = (
    "camera_id",
    "stream",
    "start_us",
    "end_us",
    "object_key",
    "bytes",
    "sha256",
    "prev_sha256",
    "frames",
    "mask_version",
    "fully_masked",
)


def entry_hash(prev_hash: str, entry: LedgerEntry) -> str:
    fields = {name: getattr(entry, name) for name in ("seq", "segment_id", *FIELDS, "recorded_us")}
    return link_hash(prev_hash, fields)


def append_new(engine: Engine, signer: Signer, clock: Clock, cadence: Cadence, limit: int = 2000) -> int:
    """Take in the segment rows not ledgered yet (at most `limit`), with the checkpoints due."""
    with Session(engine) as s, s.begin():
        head = s.exec(select(LedgerHead).where(LedgerHead.id == 1).with_for_update()).one()
        new = list(
            s.exec(
                select(Segment)
                .where(Segment.created_us >= head.watermark_us - MARGIN_US)
                .where(~exists().where(col(LedgerEntry.segment_id) == Segment.id))
                .order_by(col(Segment.created_us), col(Segment.start_us))
                .limit(limit)
            )
        )
        last = newest_stored(s, LedgerCheckpoint, CHAIN)
        now_us = to_us(clock.now())
        for row in new:
            entry = LedgerEntry(
                seq=head.seq + 1,
                segment_id=row.id,
                **{name: getattr(row, name) for name in FIELDS},
                recorded_us=now_us,
                prev_hash=head.entry_hash,
                entry_hash="",
            )
            entry.entry_hash = entry_hash(head.entry_hash, entry)
            s.add(entry)
            head.seq, head.entry_hash = entry.seq, entry.entry_hash
            head.watermark_us = max(head.watermark_us, row.created_us)
            due = due_checkpoint(signer, CHAIN, entry.seq, entry.entry_hash, now_us, last, cadence, now_us)
            if due is not None:
                s.add(LedgerCheckpoint.of(due))
                last = due
        s.add(head)
    return len(new)


def checkpoint_now(engine: Engine, signer: Signer, clock: Clock, cadence: Cadence) -> Checkpoint | None:
    """Sign the ledger's head (every few minutes, as the archive stops) unless it is signed."""
    with Session(engine) as s, s.begin():
        head = s.exec(select(LedgerHead).where(LedgerHead.id == 1).with_for_update()).one()
        if head.seq == 0 or s.get(LedgerCheckpoint, head.seq) is not None:
            return None
        checkpoint = Checkpoint.sign(signer, CHAIN, head.seq, head.entry_hash, to_us(clock.now()), cadence)
        s.add(LedgerCheckpoint.of(checkpoint))
        return checkpoint


def newest_checkpoint(engine: Engine) -> Checkpoint | None:
    with Session(engine) as s:
        return newest_stored(s, LedgerCheckpoint, CHAIN)


def purge(engine: Engine, clock: Clock) -> int:
    """Delete the leading entries whose segment is gone and that were ledgered past the legal
    maximum and two days; their checkpoints but the last go too. Returns how many entries went."""
    cutoff_us = to_us(clock.now()) - PURGE_AFTER_US
    with Session(engine) as s, s.begin():
        head = s.exec(select(LedgerHead).where(LedgerHead.id == 1).with_for_update()).one()
        # The first entry that must stay: still indexed, or ledgered too recently.
        kept = s.exec(
            select(func.min(LedgerEntry.seq)).where(
                (col(LedgerEntry.recorded_us) >= cutoff_us) | exists().where(col(Segment.id) == LedgerEntry.segment_id)
            )
        ).one()
        through = (kept - 1) if kept is not None else head.seq
        if through <= head.purged_through:
            return 0
        gone = s.exec(delete(LedgerEntry).where(col(LedgerEntry.seq) <= through))
        s.exec(delete(LedgerCheckpoint).where(col(LedgerCheckpoint.seq) < through))
        head.purged_through = through
        s.add(head)
        return int(gone.rowcount or 0)


@dataclass
class LedgerReport:
    """The ledger's chain (verdict) and how the index compares with it (problems)."""

    verdict: Verdict
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.verdict.ok and not self.problems


class _Removals:
    """Whether a ledgered segment's absence from the index is accounted for: its deletion proof, its
    recorded loss, or its camera's retention (a loss's gap record goes with the footage's retention,
    the ledger's entry 32 days after it was ledgered)."""

    def __init__(self, engine: Engine, now_us: int, retention_days: Callable[[str], int]) -> None:
        self._engine = engine
        self._now_us = now_us
        self._retention_days = retention_days
        self._known: dict[tuple[str, str], set[str]] = {}

    def accounted(self, entry: LedgerEntry) -> bool:
        days = min(self._retention_days(entry.camera_id), LEGAL_MAX_RETENTION_DAYS)
        if entry.start_us < self._now_us - days * DAY_US:
            return True
        key = (entry.camera_id, entry.stream)
        if key not in self._known:
            self._known[key] = index.deleted_hashes(self._engine, *key) | index.lost_hashes(self._engine, *key)
        return entry.sha256 in self._known[key]


def _compare(entry: LedgerEntry, row: Segment | None, removals: _Removals) -> Problem | None:
    """How the index's row differs from what was ledgered (None: it does not)."""
    if row is None:
        if removals.accounted(entry):
            return None
        detail = (
            f"ledger entry {entry.seq}: segment of {entry.camera_id} at {entry.start_us} is gone from the index "
            "with no deletion proof or recorded loss"
        )
        return Problem("ledger", entry.segment_id, entry.object_key, entry.sha256, "", detail)
    changed = [name for name in FIELDS if getattr(row, name) != getattr(entry, name)]
    if not changed:
        return None
    detail = f"ledger entry {entry.seq}: the index's row changed since it was ledgered ({', '.join(changed)})"
    return Problem("ledger", entry.segment_id, row.object_key, entry.sha256, row.sha256, detail)


def verify(
    engine: Engine,
    keyring: Keyring,
    now_us: int,
    retention_days: Callable[[str], int],
    cadence: Cadence = DEFAULT_CADENCE,
    anchors: Callable[[], Anchors] | None = None,
    batch: int = 2000,
) -> LedgerReport:
    """Walk the ledger (hashes, links, checkpoints at their cadence, published heads) and compare
    every entry with the index; the index's rows older than the ledger's reach must be in it.
    `retention_days(camera)`: the camera's retention (the archive's RetentionPolicy.days_for)."""
    published = anchors() if anchors is not None else None  # first: see anchoring.py's ChainCheck
    removals = _Removals(engine, now_us, retention_days)
    problems: list[Problem] = []
    with Session(engine) as s:
        checkpoints = stored(s, LedgerCheckpoint, CHAIN)
        head = s.exec(select(LedgerHead).where(LedgerHead.id == 1)).one()
        before = max((seq for seq in checkpoints if seq <= head.purged_through), default=None)
        check = ChainCheck(
            CHAIN,
            keyring,
            cadence,
            {seq: c for seq, c in checkpoints.items() if seq > head.purged_through},
            published,
            checkpoints[before] if before is not None else None,
        )
        prev: str | None = None
        expected = head.purged_through + 1
        while True:
            entries = list(
                s.exec(
                    select(LedgerEntry)
                    .where(LedgerEntry.seq >= expected, LedgerEntry.seq <= head.seq)
                    .order_by(col(LedgerEntry.seq))
                    .limit(batch)
                )
            )
            if not entries:
                break
            rows = {
                r.id: r for r in s.exec(select(Segment).where(col(Segment.id).in_([e.segment_id for e in entries])))
            }
            for entry in entries:
                if entry.seq != expected:
                    return LedgerReport(check.broken(expected, f"entry {expected} is missing"), problems)
                prev = entry.prev_hash if prev is None else prev
                if entry.prev_hash != prev or entry_hash(prev, entry) != entry.entry_hash:
                    return LedgerReport(
                        check.broken(entry.seq, f"entry {entry.seq} does not match its hash chain"), problems
                    )
                verdict = check.entry(entry.seq, entry.entry_hash, entry.recorded_us)
                if verdict is not None:
                    return LedgerReport(verdict, problems)
                problem = _compare(entry, rows.get(entry.segment_id), removals)
                if problem is not None:
                    problems.append(problem)
                prev, expected = entry.entry_hash, entry.seq + 1
        if expected - 1 != head.seq:
            return LedgerReport(check.broken(expected, f"the ledger's head points to entry {head.seq}, past the last"))
        verdict = check.finish(head.seq if head.seq > head.purged_through else None)
        reach = head.watermark_us - MARGIN_US
        unledgered = s.exec(
            select(Segment)
            .where(Segment.created_us < reach)
            .where(~exists().where(col(LedgerEntry.segment_id) == Segment.id))
            .order_by(col(Segment.created_us))
            .limit(100)
        )
        for row in unledgered:
            detail = "in the index, but not in the ledger although older than what the ledger took in"
            problems.append(Problem("ledger", row.id, row.object_key, "", row.sha256, detail))
    return LedgerReport(verdict, problems)


def check_camera(
    engine: Engine,
    now_us: int,
    retention_days: Callable[[str], int],
    camera_id: str,
    stream: str,
    start_us: int | None = None,
    end_us: int | None = None,
) -> list[Problem]:
    """A camera's rows against the ledger (the archive's per-camera Verify): a row changed or removed
    since it was ledgered. Whether the ledger itself is intact is `verify`'s to say."""
    removals = _Removals(engine, now_us, retention_days)
    problems: list[Problem] = []
    with Session(engine) as s:
        query = select(LedgerEntry).where(LedgerEntry.camera_id == camera_id, LedgerEntry.stream == stream)
        if start_us is not None:
            query = query.where(LedgerEntry.start_us >= start_us)
        if end_us is not None:
            query = query.where(LedgerEntry.start_us < end_us)
        entries = list(s.exec(query.order_by(col(LedgerEntry.start_us))))
        for i in range(0, len(entries), 1000):
            part = entries[i : i + 1000]
            rows = {r.id: r for r in s.exec(select(Segment).where(col(Segment.id).in_([e.segment_id for e in part])))}
            problems += [p for e in part if (p := _compare(e, rows.get(e.segment_id), removals)) is not None]
    return problems


@dataclass(frozen=True)
class Book:
    """What the archive's ledger work needs, built once (main, the tests' harness)."""

    engine: Engine
    signer: Signer
    clock: Clock
    cadence: Cadence
    anchors: AnchorStore

    @classmethod
    def from_settings(cls, settings: Settings, engine: Engine, clock: Clock) -> "Book":
        """SigningKeyError without CSU_SIGNING_KEY_FILE: the archive signs its ledger, and refuses to
        start unable to."""
        return cls(
            engine,
            Signer.from_file(settings.signing_key_file),
            clock,
            Cadence.of(settings.chain_checkpoint_entries, settings.chain_checkpoint_minutes),
            AnchorStore(make_store(settings, settings.bucket_anchors), settings.anchor_retain_days, clock),
        )

    def ensure_anchors(self) -> None:
        self.anchors.ensure()

    def take_in(self) -> int:
        """Every new row, in batches."""
        count = 0
        while (added := append_new(self.engine, self.signer, self.clock, self.cadence)) > 0:
            count += added
        return count

    def round(self) -> None:
        """Before the head is signed and published: the new rows, and the purge."""
        self.take_in()
        purge(self.engine, self.clock)

    def sign_head(self) -> Checkpoint | None:
        return checkpoint_now(self.engine, self.signer, self.clock, self.cadence)

    def newest(self) -> Checkpoint | None:
        return newest_checkpoint(self.engine)

    def verify(self, retention_days: Callable[[str], int]) -> LedgerReport:
        """The whole ledger against the index, its checkpoints and its published heads
        (StoreUnavailable: the anchors bucket cannot be read)."""
        now_us = to_us(self.clock.now())
        anchors = self.anchors
        return verify(
            self.engine, self.signer.keyring(), now_us, retention_days, self.cadence, lambda: anchors.read(CHAIN)
        )


async def run(book: Book, every_s: float, stop: asyncio.Event) -> None:
    """The archive's ledger loop until stop: new rows every LEDGER_EVERY_S; the head signed and
    published every `every_s` (anchoring.keep_anchored), and once more as the archive stops."""

    async def taking_in() -> None:
        while not stop.is_set():
            try:
                await asyncio.to_thread(book.take_in)
            except Exception as exc:  # noqa: BLE001 - the database is away: next round
                log.warning("segments not ledgered yet", error=str(exc) or type(exc).__name__)
            try:
                await asyncio.wait_for(stop.wait(), LEDGER_EVERY_S)
            except TimeoutError:
                pass

    async def before_signing() -> None:
        await asyncio.to_thread(book.round)

    await asyncio.gather(
        taking_in(),
        keep_anchored(CHAIN, book.sign_head, book.newest, book.anchors, every_s, stop, before_round=before_signing),
    )
