"""The archive's local spool (data_dir/spool/archive): segments on their way to the object store.

    <id>.mp4 / <id>.open / <id>.json   a segment being written or waiting to be stored (segmenter.py)
    pending/<id>.json                  stored in the object store, not yet indexed or announced
    unproved/<id>.json                 deleted unstored at the legal maximum while the database was
                                       away: the description its deletion proof is still owed for
    state/stopped.json                 written at a clean stop: each camera's last recorded instant

The spool is bounded (CSU_ARCHIVE_SPOOL_MAX_BYTES): when the store is away, segments wait here and
leave in order when it returns. Its usage counts every segment file (open ones included); past
the limit the archive stops recording (the lost time is a "storage_outage" gap) rather than fill
the disk, and past 80 % it raises an alarm.
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


@dataclass(frozen=True)
class OrphanMarker:
    """A segment that was open when the previous run died: its recording was lost."""

    segment_id: str
    camera_id: str
    stream: str
    start_us: int


class Spool:
    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.pending_dir = root / "pending"
        self.unproved_dir = root / "unproved"
        self.state_dir = root / "state"
        for folder in (root, self.pending_dir, self.unproved_dir, self.state_dir):
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

    def take_orphan_markers(self) -> list[OrphanMarker]:
        """Open-segment markers whose segment never closed (the process died), then removed."""
        orphans = []
        for marker in self.root.glob("*.open"):
            segment_id = marker.stem
            if not (self.root / f"{segment_id}.json").exists():
                try:
                    data = json.loads(marker.read_text())
                    orphans.append(OrphanMarker(segment_id, data["camera_id"], data["stream"], int(data["start_us"])))
                except (OSError, ValueError, KeyError):
                    pass
            marker.unlink(missing_ok=True)
        return orphans

    def write_stopped(self, last_us: dict[tuple[str, str], int], stopped_us: int) -> None:
        document = {"stopped_us": stopped_us, "cameras": [[c, s, t] for (c, s), t in last_us.items()]}
        path = self.state_dir / "stopped.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(document))
        tmp.replace(path)

    def take_stopped(self) -> list[tuple[str, str, int]]:
        """(camera, stream, last recorded instant) of the previous clean stop, then forgotten."""
        path = self.state_dir / "stopped.json"
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError):
            return []
        finally:
            path.unlink(missing_ok=True)
        return [(c, s, int(t)) for c, s, t in document.get("cameras", [])]


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
