"""Checking a camera's recordings against its hash chain and the object store.

Walks the index in chain order and reports:
- "missing": a row whose object is gone, or a chain link (a prev_sha256) that no row, no deletion
  proof and no recorded loss accounts for — a segment removed from both the store and the index;
- "altered": an object whose bytes do not hash to the index's SHA-256;
- "unexpected": an object under the camera's keys that the index does not know;
- "chain": a row whose prev_sha256 is another known segment than its predecessor (reordering).

The first link of the chain may point to a segment the retention sweeper deleted: its hash is in a
deletion proof, which is what makes the deletion legitimate. Every object is read in full to
hash it: limit the range for a quick check.
"""

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import Engine

from services.archive import index
from services.archive.models import Segment
from services.archive.reconcile import hour_prefixes
from services.common.objectstore import ObjectNotFound, ObjectStore


@dataclass(frozen=True)
class Problem:
    kind: str
    segment_id: str = ""
    object_key: str = ""
    expected_sha256: str = ""
    actual_sha256: str = ""
    detail: str = ""


@dataclass
class Report:
    camera_id: str
    segments_checked: int = 0
    objects_checked: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _hash(store: ObjectStore, key: str) -> str:
    digest = hashlib.sha256()
    for chunk in store.iter_chunks(key):
        digest.update(chunk)
    return digest.hexdigest()


def verify_chain(
    engine: Engine,
    store: ObjectStore,
    camera_id: str,
    stream: str = "main",
    start_us: int | None = None,
    end_us: int | None = None,
    pending_keys: Iterable[str] = (),
) -> Report:
    report = Report(camera_id)
    swept = index.deleted_hashes(engine, camera_id, stream)
    lost = index.lost_hashes(engine, camera_id, stream)
    previous: Segment | None = index.predecessor(engine, camera_id, stream, start_us) if start_us else None
    seen: set[str] = {previous.sha256} if previous else set()
    rows: list[Segment] = []
    for row in index.chain(engine, camera_id, stream, start_us, end_us):
        rows.append(row)
        report.segments_checked += 1
        _check_link(report, row, previous, swept, lost, seen)
        seen.add(row.sha256)
        previous = row
        try:
            actual = _hash(store, row.object_key)
        except ObjectNotFound:
            report.problems.append(
                Problem(
                    "missing", row.id, row.object_key, row.sha256, "", "indexed, but the object is not in the store"
                )
            )
            continue
        report.objects_checked += 1
        if actual != row.sha256:
            report.problems.append(
                Problem("altered", row.id, row.object_key, row.sha256, actual, "the object's bytes changed")
            )
    _unexpected(engine, store, report, camera_id, start_us, end_us, set(pending_keys))
    return report


def _check_link(
    report: Report, row: Segment, previous: Segment | None, swept: set[str], lost: set[str], seen: set[str]
) -> None:
    if previous is not None and row.prev_sha256 == previous.sha256:
        return
    if previous is None and (row.prev_sha256 == "" or row.prev_sha256 in swept):
        return  # the chain's first link: a new camera, or what follows the swept segments
    if row.prev_sha256 in lost:
        detail = "its predecessor was lost (recorded as an object_missing gap)"
        report.problems.append(Problem("missing", row.id, row.object_key, row.prev_sha256, "", detail))
    elif row.prev_sha256 in seen or row.prev_sha256 in swept:
        detail = f"chained to {row.prev_sha256[:12]}..., not to its predecessor"
        report.problems.append(Problem("chain", row.id, row.object_key, row.prev_sha256, "", detail))
    else:
        detail = "the segment before it is gone from the index and the store, with no deletion proof"
        report.problems.append(Problem("missing", row.id, row.object_key, row.prev_sha256, "", detail))


def _unexpected(
    engine: Engine,
    store: ObjectStore,
    report: Report,
    camera_id: str,
    start_us: int | None,
    end_us: int | None,
    pending: set[str],
) -> None:
    if start_us is not None and end_us is not None:
        prefixes = hour_prefixes(camera_id, start_us, end_us)
    else:
        prefixes = [f"cam/{camera_id}/"]
    for prefix in prefixes:
        keys = [info.key for info in store.list(prefix)]
        for i in range(0, len(keys), 1000):
            batch = keys[i : i + 1000]
            known = index.by_key(engine, batch)
            for key in batch:
                if key not in known and key not in pending:
                    report.problems.append(Problem("unexpected", "", key, detail="an object the index does not know"))
