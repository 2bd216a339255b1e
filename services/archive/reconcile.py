"""Making the index and the object store agree again after a crash or a database outage.

For the given cameras and window, both ways:
- an object without an index row (stored, then the process died or the database was away) is
  indexed from its metadata, after checking that its bytes hash to what the metadata says;
  an object whose metadata is not a segment's, or whose bytes do not match, is left alone and
  logged: it is "unexpected" for `verify`, never silently adopted;
- an index row whose object is missing loses its row (no row may point to nothing), and the loss
  is written down as an "object_missing" gap whose detail names the segment and its hash, so the
  timeline shows it and `verify` still accounts for the broken chain link.

The caller runs the retention sweeper first: rows past retention are the sweeper's (with proof).
"""

import hashlib
from dataclasses import dataclass, field

from sqlalchemy import Engine

from services.archive import index
from services.archive.metadata import row_from_metadata
from services.archive.models import Gap, Segment
from services.common.clock import from_us
from services.common.log import get_logger
from services.common.objectstore import ObjectInfo, ObjectNotFound, ObjectStore
from services.common.subjects import STREAMS
from services.common.timefmt import HOUR_US

log = get_logger(__name__)


@dataclass
class ReconcileReport:
    indexed: list[str] = field(default_factory=list)
    removed: list[Segment] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


def hour_prefixes(camera_id: str, start_us: int, end_us: int) -> list[str]:
    """The key prefixes of every UTC hour overlapping [start_us, end_us)."""
    prefixes = []
    hour = start_us - start_us % HOUR_US
    while hour < end_us:
        prefixes.append(f"cam/{camera_id}/{from_us(hour):%Y/%m/%d/%H}/")
        hour += HOUR_US
    return prefixes


def object_sha256(store: ObjectStore, key: str) -> str:
    digest = hashlib.sha256()
    for chunk in store.iter_chunks(key):
        digest.update(chunk)
    return digest.hexdigest()


def reconcile(
    engine: Engine, store: ObjectStore, camera_ids: list[str], start_us: int, end_us: int, now_us: int
) -> ReconcileReport:
    report = ReconcileReport()
    # Whole hours on both sides, so the listing and the index query cover the same segments.
    low = start_us - start_us % HOUR_US
    high = end_us - end_us % HOUR_US + HOUR_US
    for camera_id in camera_ids:
        objects: dict[str, ObjectInfo] = {}
        for prefix in hour_prefixes(camera_id, low, high):
            objects.update((info.key, info) for info in store.list(prefix))
        rows = {row.object_key: row for stream in STREAMS for row in index.chain(engine, camera_id, stream, low, high)}
        for key in sorted(objects.keys() - rows.keys()):
            _adopt(engine, store, key, camera_id, now_us, report)
        for key in sorted(rows.keys() - objects.keys()):
            if store.exists(key):  # listed before it was written: not missing
                continue
            row = rows[key]
            index.delete_rows(engine, [row.id])
            index.add_gap(
                engine,
                Gap(
                    camera_id=row.camera_id,
                    stream=row.stream,
                    start_us=row.start_us,
                    end_us=row.end_us,
                    reason="object_missing",
                    detail=f"segment {row.id} sha256 {row.sha256} was indexed but its object is gone",
                    created_us=now_us,
                ),
            )
            report.removed.append(row)
            log.error("indexed segment has no object: row removed, gap recorded", key=key, segment=row.id)
    return report


def _adopt(engine: Engine, store: ObjectStore, key: str, camera_id: str, now_us: int, report: ReconcileReport) -> None:
    try:
        info = store.stat(key)
        row = row_from_metadata(key, info.size, info.metadata, now_us)
        if row.camera_id != camera_id:
            raise ValueError(f"{key}: metadata names camera {row.camera_id!r}")
        actual = object_sha256(store, key)
        if actual != row.sha256:
            raise ValueError(f"{key}: bytes hash to {actual}, metadata says {row.sha256}")
    except ObjectNotFound:
        return
    except ValueError as exc:
        log.error("object not adopted into the index", key=key, reason=str(exc))
        report.refused.append(key)
        return
    if index.insert(engine, row):
        report.indexed.append(key)
        log.warning("stored segment indexed by reconcile", key=key, segment=row.id)
