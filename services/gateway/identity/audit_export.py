"""The audit export: streamed from the database page by page, and verifiable offline from the file
alone with the deployment's public keys (`csuctl audit verify --export FILE`).

What an export holds. Every entry with every field its hash covers (event_id, time_us, the raw
details_json, prev_hash, entry_hash), each signed checkpoint right after the entry it signs, and
the heads published outside the database (anchoring.py) that bear on the exported entries: the
newest one within the range, every one that contradicts the database, and those past the chain's
end. The checkpoint before the first entry comes first (its time and cadence say where the next
one is due), and an `export` record ends the file (what was asked, the range, when).

Design choice: a trailer and interleaved records rather than a zip with a detached signature. The
chain carries its own signatures — the checkpoints, signed when the entries were written — so the
file needs no signature of its own: a signature made at export time would vouch for whatever the
database says at export time, rewritten or not. What makes the file checkable is that it carries
the statements signed back then, and streaming them next to their entries keeps the export a plain
CSV (or JSON) file that a spreadsheet still opens, written with the memory of one page.

- CSV: one row per entry (the console's columns, then `event_id`, `time_us`, `prev_hash`,
  `details_json`); a checkpoint or a published head is a row whose `seq` cell says `checkpoint`,
  `before` or `published` and whose `details` cell holds the signed statement (JSON); the last row's
  `seq` cell says `export`. A cell a spreadsheet would take for a formula is written escaped with
  a leading apostrophe (services/common/csvsafe.py): the verifier accepts a row as written or with
  that escape undone (older exports were written unescaped).
- JSON: {"format": ..., "entries": [one entry per line, with "checkpoint" and "published" inside
  the entry they sign], "before": ..., "published_past_end": [...], "export": {...}}.

The verifier reads the whole file into memory (about 1 kB an entry): a year of a busy trail is a
few hundred MB; export a time range to check a part.

What can be verified. An export of the whole trail, or of a time range, covers a contiguous run of
entries and ends on a signed checkpoint: one signed before the end of the range, or the head,
signed as the export starts. (A range therefore runs on past its end to the next checkpoint, at
most the cadence's N entries or M minutes.) An export filtered by actor, target or action is a
listing: its entries keep their hashes, but without the entries in between no chain can be
walked, and the verifier says so rather than vouching for it.
Design: docs/design/audit.md
"""

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select
from sqlmodel import Session as DbSession
from sqlmodel import col

from services.common import csvsafe
from services.common.anchoring import Anchors, Cadence, ChainCheck, Checkpoint, Claim
from services.common.clock import Clock, to_us
from services.common.hashchain import Verdict
from services.common.signing import Keyring, Signer
from services.common.timefmt import iso
from services.gateway.identity import audit_log
from services.gateway.identity.models import AuditCheckpoint, AuditEntry, AuditHead

FORMAT = "csu-audit-export/1"
PAGE = 1000
# The console's columns first (what people read), then what the hashes need.
FIELDS = [
    "seq",
    "time",
    *audit_log.TEXT_FIELDS,
    "details",
    "entry_hash",
    "event_id",
    "time_us",
    "prev_hash",
    "details_json",
]
# Record kinds in the CSV's seq column (entries have a number there).
CHECKPOINT, BEFORE, PUBLISHED, EXPORT = "checkpoint", "before", "published", "export"
_TEXT = audit_log.TEXT_FIELDS


@dataclass(frozen=True)
class Plan:
    """What one export covers, decided before the first byte goes out."""

    filters: dict[str, Any]
    # Entries in (after_seq, last_seq]; last_seq None: nothing to export.
    after_seq: int
    last_seq: int | None
    # No actor/target/action filter: a contiguous run that ends on a signed checkpoint.
    verifiable: bool
    before: Checkpoint | None
    exported_us: int
    anchors_note: str = ""

    def trailer(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "exported_at": iso(self.exported_us),
            "filters": self.filters,
            "first_seq": self.after_seq + 1 if self.last_seq is not None else None,
            "last_seq": self.last_seq,
            "verifiable": self.verifiable,
            "published_heads": self.anchors_note or "included",
        }


def plan(
    engine: Engine,
    signer: Signer,
    clock: Clock,
    cadence: Cadence,
    *,
    start_us: int | None,
    end_us: int | None,
    listing: dict[str, str | None],
) -> Plan:
    """The range of an export. A verifiable one ends on a signed checkpoint: the first at or after
    the last entry of the range, or the head, signed now."""
    filters = {k: v for k, v in listing.items() if v} | {
        k: iso(v) for k, v in (("start", start_us), ("end", end_us)) if v is not None
    }
    verifiable = not any(listing.values())
    with DbSession(engine) as s:
        query = select(func.min(AuditEntry.seq))
        if start_us is not None:
            query = query.where(col(AuditEntry.time_us) >= start_us)
        first = s.execute(query).scalar()
        query = select(func.max(AuditEntry.seq))
        if end_us is not None:
            query = query.where(col(AuditEntry.time_us) < end_us)
        last = s.execute(query).scalar()
    if first is None or last is None or last < first:
        return Plan(filters, 0, None, verifiable, None, to_us(clock.now()))
    if verifiable:
        closing = _closing_checkpoint(engine, last)
        if closing is None:
            signed = audit_log.checkpoint_now(engine, signer, clock, cadence)
            closing = signed.seq if signed is not None else _closing_checkpoint(engine, last)
        last = closing if closing is not None else last
    with DbSession(engine) as s:
        row = s.execute(
            select(AuditCheckpoint)
            .where(col(AuditCheckpoint.seq) < first)
            .order_by(col(AuditCheckpoint.seq).desc())
            .limit(1)
        ).scalar()
        before = audit_log.as_checkpoint(row) if row is not None else None
    return Plan(filters, first - 1, last, verifiable, before, to_us(clock.now()))


def _closing_checkpoint(engine: Engine, last: int) -> int | None:
    with DbSession(engine) as s:
        head = s.get(AuditHead, 1)
        query = select(func.min(AuditCheckpoint.seq)).where(col(AuditCheckpoint.seq) >= last)
        if head is not None:
            query = query.where(col(AuditCheckpoint.seq) <= head.seq)
        return s.execute(query).scalar()


@dataclass
class Row:
    """One exported entry with the statements that follow it."""

    entry: AuditEntry
    checkpoint: Checkpoint | None = None
    published: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def page(
    engine: Engine, plan: Plan, after: int, search: dict[str, Any], anchors: Anchors | None, keep: int | None
) -> list[Row]:
    """The next page of rows after seq `after` (a listing goes through the trail's search with
    `search`'s filters); `keep`: the seq of the published head to carry even though it agrees with
    the database (the newest one in the range: it vouches for all before it)."""
    if plan.last_seq is None:
        return []
    if plan.verifiable:
        with DbSession(engine) as s:
            entries = list(
                s.execute(
                    select(AuditEntry)
                    .where(col(AuditEntry.seq) > max(after, plan.after_seq), col(AuditEntry.seq) <= plan.last_seq)
                    .order_by(col(AuditEntry.seq))
                    .limit(PAGE)
                ).scalars()
            )
            if not entries:
                return []
            checkpoints = {
                c.seq: audit_log.as_checkpoint(c)
                for c in s.execute(
                    select(AuditCheckpoint).where(
                        AuditCheckpoint.seq >= entries[0].seq, AuditCheckpoint.seq <= entries[-1].seq
                    )
                ).scalars()
            }
    else:
        entries = [e for e in audit_log.search(engine, after_seq=after, limit=PAGE, **search) if e.seq <= plan.last_seq]
        checkpoints = {}
    rows = []
    for entry in entries:
        row = Row(entry, checkpoints.get(entry.seq))
        if anchors is not None:
            for claim in anchors.at(entry.seq):
                if claim.entry_hash != entry.entry_hash or entry.seq == keep:
                    row.published += [(claim.where, d) for d in _statements(anchors, claim)]
        rows.append(row)
    return rows


def _statements(anchors: Anchors, claim: Claim) -> list[dict[str, Any]]:
    found = []
    for data in anchors.fetch(claim):
        try:
            found.append(json.loads(data))
        except ValueError:
            continue  # not JSON: nothing an auditor could check
    return found


def past_end(anchors: Anchors | None, plan: Plan) -> list[tuple[str, dict[str, Any]]]:
    """Heads published past the export's last entry, when that entry is the chain's head: they say
    the chain once went further (a truncation)."""
    if anchors is None or plan.last_seq is None:
        return []
    return [(c.where, d) for c in anchors.beyond(plan.last_seq) for d in _statements(anchors, c)]


def newest_claim(anchors: Anchors | None, plan: Plan) -> int | None:
    if anchors is None or plan.last_seq is None:
        return None
    within = [seq for seq in anchors.by_seq if plan.after_seq < seq <= plan.last_seq]
    return max(within, default=None)


# -- writing ------------------------------------------------------------------------------------


def entry_fields(entry: AuditEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "time": iso(entry.time_us),
        **{name: getattr(entry, name) for name in _TEXT},
        "details": json.loads(entry.details_json or "{}"),
        "entry_hash": entry.entry_hash,
        "event_id": entry.event_id,
        "time_us": entry.time_us,
        "prev_hash": entry.prev_hash,
        "details_json": entry.details_json,
    }


class CsvWriter:
    """Rows to CSV text, a chunk per call (the response streams them)."""

    def __init__(self) -> None:
        self._buffer = io.StringIO()
        self._csv = csv.DictWriter(self._buffer, fieldnames=FIELDS)

    def _take(self) -> str:
        text = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return text

    def header(self) -> str:
        self._csv.writeheader()
        return self._take()

    def statement(self, kind: str, document: dict[str, Any], target: str = "") -> None:
        cells = {"seq": kind, "target": target, "details": json.dumps(document, sort_keys=True)}
        self._csv.writerow(csvsafe.row(cells))

    def rows(self, rows: list[Row], before: Checkpoint | None = None) -> str:
        if before is not None:
            self.statement(BEFORE, before.to_json())
        for row in rows:
            fields = entry_fields(row.entry)
            # Escaped against spreadsheet formulas; the verifier reads a cell as written or unescaped.
            self._csv.writerow(csvsafe.row(fields | {"details": json.dumps(fields["details"], ensure_ascii=False)}))
            if row.checkpoint is not None:
                self.statement(CHECKPOINT, row.checkpoint.to_json())
            for where, document in row.published:
                self.statement(PUBLISHED, document, where)
        return self._take()

    def end(self, plan: Plan, past: list[tuple[str, dict[str, Any]]]) -> str:
        for where, document in past:
            self.statement(PUBLISHED, document, where)
        self.statement(EXPORT, plan.trailer())
        return self._take()


class JsonWriter:
    """Rows to JSON text, one entry per line (the verifier reads it line by line)."""

    def __init__(self) -> None:
        self._first = True

    def header(self) -> str:
        return json.dumps({"format": FORMAT})[:-1] + ',\n"entries": [\n'

    def rows(self, rows: list[Row], before: Checkpoint | None = None) -> str:
        lines = []
        for row in rows:
            document = entry_fields(row.entry)
            if row.checkpoint is not None:
                document["checkpoint"] = row.checkpoint.to_json()
            if row.published:
                document["published"] = [{"where": w, "statement": d} for w, d in row.published]
            lines.append(("" if self._first else ",\n") + json.dumps(document, ensure_ascii=False))
            self._first = False
        return "".join(lines)

    def end(self, plan: Plan, past: list[tuple[str, dict[str, Any]]]) -> str:
        tail = {
            "before": plan.before.to_json() if plan.before is not None else None,
            "published_past_end": [{"where": w, "statement": d} for w, d in past],
            "export": plan.trailer(),
        }
        return "\n],\n" + json.dumps(tail, ensure_ascii=False)[1:] + "\n"


# -- reading and verifying (offline) -------------------------------------------------------------


class ExportError(ValueError):
    """The file is not an audit export this verifier can read."""


@dataclass
class Export:
    """What a verifier needs from an export, read from the file."""

    entries: list[list[AuditEntry]] = field(default_factory=list)  # per entry: the readings to try
    checkpoints: dict[int, Checkpoint] = field(default_factory=dict)
    before: Checkpoint | None = None
    published: list[Claim] = field(default_factory=list)
    trailer: dict[str, Any] | None = None
    unreadable: list[str] = field(default_factory=list)


def read(path: Path) -> Export:
    """An export, CSV or JSON (told apart by the first character)."""
    with path.open("r", encoding="utf-8", newline="") as f:
        first = f.read(1)
    if first == "{":
        return _read_json(path)
    return _read_csv(path)


def _statement(export: Export, kind: str, document: Any, where: str = "") -> None:
    if kind == PUBLISHED:
        if isinstance(document, dict):
            seq, entry_hash = document.get("seq"), document.get("entry_hash")
            if isinstance(seq, int) and isinstance(entry_hash, str):
                raw = json.dumps(document).encode()
                export.published.append(Claim(seq, entry_hash, where or "export", (raw,)))
                return
        export.unreadable.append(f"a published head ({where or 'no name'})")
        return
    try:
        checkpoint = Checkpoint.from_json(document)
    except ValueError:
        export.unreadable.append(f"a {kind} record")
        return
    if kind == BEFORE:
        export.before = checkpoint
    else:
        export.checkpoints[checkpoint.seq] = checkpoint


def _unescaped(value: str) -> str:
    return csvsafe.unescape(value)


def _entry(cells: dict[str, Any]) -> AuditEntry:
    return AuditEntry(
        seq=int(cells["seq"]),
        event_id=str(cells["event_id"]),
        time_us=int(cells["time_us"]),
        **{name: str(cells[name]) for name in _TEXT},
        details_json=str(cells["details_json"]),
        prev_hash=str(cells["prev_hash"]),
        entry_hash=str(cells["entry_hash"]),
    )


def _read_csv(path: Path) -> Export:
    export = Export()
    with path.open("r", encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        missing = [name for name in ("seq", "event_id", "time_us", "prev_hash", "details_json", "entry_hash", *_TEXT)
                   if name not in (reader.fieldnames or [])]  # fmt: skip
        if missing:
            raise ExportError(f"not an audit export with hashes: no column {', '.join(missing)}")
        for cells in reader:
            kind = _unescaped(cells.get("seq") or "")
            if kind in (CHECKPOINT, BEFORE, PUBLISHED, EXPORT):
                try:
                    document = json.loads(_unescaped(cells.get("details") or ""))
                except ValueError:
                    export.unreadable.append(f"a {kind} record")
                    continue
                if kind == EXPORT:
                    export.trailer = document if isinstance(document, dict) else None
                else:
                    _statement(export, kind, document, _unescaped(cells.get("target") or ""))
                continue
            try:
                readings = [_entry(cells), _entry({k: _unescaped(v or "") for k, v in cells.items()})]
            except (ValueError, TypeError, KeyError):
                export.unreadable.append(f"the row of entry {kind!r}")
                continue
            export.entries.append(readings)
    return export


def _read_json(path: Path) -> Export:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ExportError(f"not JSON: {exc}") from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT or "entries" not in document:
        raise ExportError(f"not an audit export ({FORMAT}) with hashes")
    export = Export(trailer=document.get("export"))
    if document.get("before"):
        _statement(export, BEFORE, document["before"])
    for item in document["entries"]:
        try:
            export.entries.append([_entry(item)])
        except (ValueError, TypeError, KeyError):
            export.unreadable.append(f"the entry {item.get('seq') if isinstance(item, dict) else '?'}")
            continue
        if item.get("checkpoint"):
            _statement(export, CHECKPOINT, item["checkpoint"])
        for published in item.get("published") or []:
            _statement(export, PUBLISHED, published.get("statement"), published.get("where", ""))
    for published in document.get("published_past_end") or []:
        _statement(export, PUBLISHED, published.get("statement"), published.get("where", ""))
    return export


@dataclass(frozen=True)
class ExportVerdict:
    verdict: Verdict
    # False: a listing (filtered) or no entries: nothing could be vouched for as a chain.
    checkable: bool
    first_seq: int | None
    last_seq: int | None
    published_heads: int
    note: str = ""


def verify(export: Export, keyring: Keyring, default_cadence: Cadence = audit_log.DEFAULT_CADENCE) -> ExportVerdict:
    """Walk an export as verify_chain walks the database: hashes and links, the checkpoints at their
    cadence, the published heads; then the export must end on a signed checkpoint."""
    trailer = export.trailer or {}
    first = export.entries[0][0].seq if export.entries else None
    last = export.entries[-1][0].seq if export.entries else None
    heads = len(export.published)
    if trailer.get("verifiable") is False:
        note = f"a listing filtered by {', '.join(sorted(trailer.get('filters') or {}))}: export without filters"
        return ExportVerdict(Verdict(False, len(export.entries), None, note), False, first, last, heads, note)
    if not export.entries:
        return ExportVerdict(Verdict(False, 0, None, "the export holds no entry"), False, None, None, heads)
    anchors = Anchors(audit_log.CHAIN, export.published, lambda claim: [])
    check = ChainCheck(audit_log.CHAIN, keyring, default_cadence, export.checkpoints, anchors, export.before)
    prev = export.entries[0][0].prev_hash
    expected = export.entries[0][0].seq  # first
    for readings in export.entries:
        entry = next((r for r in readings if audit_log.entry_hash(prev, r) == r.entry_hash), readings[0])
        if entry.seq != expected:
            return _done(check.broken(expected, f"entry {expected} is missing from the export"), export)
        if entry.prev_hash != prev or audit_log.entry_hash(prev, entry) != entry.entry_hash:
            return _done(check.broken(entry.seq, f"entry {entry.seq} does not match its hash chain"), export)
        verdict = check.entry(entry.seq, entry.entry_hash, entry.time_us)
        if verdict is not None:
            return _done(verdict, export)
        prev, expected = entry.entry_hash, entry.seq + 1
    verdict = check.finish(last)
    if verdict.ok and check.vouched != last:
        after = check.vouched + 1 if check.vouched is not None else first
        verdict = Verdict(
            False,
            verdict.entries,
            after,
            f"entries from {after} on are vouched for by no signed checkpoint: the export was cut or its "
            "closing checkpoint removed",
            check.vouched,
            check.anchored,
        )
    if verdict.ok and export.unreadable:
        verdict = Verdict(
            False,
            verdict.entries,
            None,
            f"unreadable records: {', '.join(export.unreadable[:3])}",
            check.vouched,
            check.anchored,
        )
    return _done(verdict, export)


def _done(verdict: Verdict, export: Export) -> ExportVerdict:
    first = export.entries[0][0].seq if export.entries else None
    last = export.entries[-1][0].seq if export.entries else None
    trailer = export.trailer or {}
    note = "" if trailer.get("published_heads", "included") == "included" else str(trailer["published_heads"])
    return ExportVerdict(verdict, True, first, last, len(export.published), note)
