"""The archive's local spool (data_dir/spool/archive): segments on their way to the object store.

    <id>.mp4 / <id>.open / <id>.json   a segment being written or waiting to be stored (segmenter.py);
                                       an `.open` left by a crash is salvaged at start (salvage.py)
    pending/<id>.json                  stored in the object store, not yet indexed or announced
    unproved/<id>.json                 deleted unstored at the legal maximum while the database was
                                       away: the description its deletion proof is still owed for

The spool is bounded (CSU_ARCHIVE_SPOOL_MAX_BYTES): when the store is away, segments wait here and
leave in order when it returns. Its usage counts every segment file (open ones included); past
the limit the archive stops recording (the lost time is a "storage_outage" gap) rather than fill
the disk, and past 80 % it raises an alarm.
Design: docs/design/reliability.md
"""

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from services.archive.segmenter import ClosedSegment

ALARM_FRACTION = 0.8
# The alarm re-arms once usage falls back below this, so a spool hovering at 80 % raises it once.
REARM_FRACTION = 0.6
# Past the limit recording pauses; it resumes once the spool has drained below this fraction.
RESUME_FRACTION = 0.9


@dataclass(frozen=True)
class Pending:
    segment_id: str
    key: str
    # False: the object is stored but its index row is not written yet (the database was away).
    indexed: bool


class Spool:
    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.pending_dir = root / "pending"
        self.unproved_dir = root / "unproved"
        for folder in (root, self.pending_dir, self.unproved_dir):
            folder.mkdir(parents=True, exist_ok=True)

    def usage(self) -> int:
        total = 0
        with os.scandir(self.root) as entries:
            for entry in entries:
                if entry.is_file(follow_symlinks=False):
                    try:
                        total += entry.stat(follow_symlinks=False).st_size
                    except FileNotFoundError:
                        continue  # stored and removed while we counted
        return total

    def fraction(self) -> float:
        return self.usage() / self.max_bytes

    def closed(self) -> list[ClosedSegment]:
        """The closed segments waiting to be stored, oldest first."""
        found = []
        for path in self.root.glob("*.json"):
            try:
                found.append(ClosedSegment.load(path))
            except FileNotFoundError:
                continue  # stored and removed while we listed
        return sorted(found, key=lambda s: s.start_us)

    def discard(self, seg: ClosedSegment) -> None:
        seg.media_path(self.root).unlink(missing_ok=True)
        seg.description_path(self.root).unlink(missing_ok=True)

    # -- deleted at retention, deletion proof owed (the database was away) -----------------

    def add_unproved(self, seg: ClosedSegment, deleted_us: int) -> None:
        path = self.unproved_dir / f"{seg.id}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"segment": asdict(seg), "deleted_us": deleted_us}))
        tmp.replace(path)

    def unproved(self) -> list[tuple[ClosedSegment, int]]:
        """(segment, when it was deleted) for each deletion whose proof is not written yet."""
        found = []
        for path in sorted(self.unproved_dir.glob("*.json")):
            try:
                document = json.loads(path.read_text())
                found.append((ClosedSegment(**document["segment"]), int(document["deleted_us"])))
            except (OSError, ValueError, TypeError, KeyError):
                continue
        return found

    def drop_unproved(self, segment_id: str) -> None:
        (self.unproved_dir / f"{segment_id}.json").unlink(missing_ok=True)

    # -- stored but not yet indexed/announced ------------------------------------------------

    def add_pending(self, segment_id: str, key: str, indexed: bool) -> None:
        path = self.pending_dir / f"{segment_id}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"segment_id": segment_id, "key": key, "indexed": indexed}))
        tmp.replace(path)

    def pending(self) -> list[Pending]:
        found = []
        for path in sorted(self.pending_dir.glob("*.json")):
            try:
                found.append(Pending(**json.loads(path.read_text())))
            except (OSError, ValueError, TypeError):
                continue
        return found

    def drop_pending(self, segment_id: str) -> None:
        (self.pending_dir / f"{segment_id}.json").unlink(missing_ok=True)

    # -- what a previous run left ------------------------------------------------------------

    def open_markers(self) -> list[Path]:
        """Markers of segments that were being written when the previous run died.

        A marker beside its segment's description is one a crash left between the two writes: the
        segment closed, the marker goes."""
        found = []
        for marker in sorted(self.root.glob("*.open")):
            if (self.root / f"{marker.stem}.json").exists():
                marker.unlink(missing_ok=True)
            else:
                found.append(marker)
        return found


class SpoolMonitor:
    """Watches the spool's usage: the 80 % alarm (once per crossing) and the full/paused state."""

    def __init__(self, spool: Spool, on_alarm: Callable[[float], Awaitable[object]]) -> None:
        self._spool = spool
        self._on_alarm = on_alarm
        self.alarmed = False
        self.full = False
        self.usage = 0

    async def check(self) -> float:
        """Measure now; returns the fraction of the limit in use."""
        self.usage = await asyncio.to_thread(self._spool.usage)
        fraction = self.usage / self._spool.max_bytes
        if fraction >= ALARM_FRACTION and not self.alarmed:
            self.alarmed = True
            await self._on_alarm(fraction)
        elif fraction < REARM_FRACTION:
            self.alarmed = False
        if fraction >= 1.0:
            self.full = True
        elif fraction < RESUME_FRACTION:
            self.full = False
        return fraction
