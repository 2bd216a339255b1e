"""Keeping the complete fragments of a segment whose writing stopped: a crash, or a camera handed over.

A segment is a fragmented MP4 (fmp4.py, one fragment per GOP, 1-2 s): `ftyp`, an empty `moov`,
then `moof` + `mdat` pairs, each written whole when the next keyframe arrives. So whatever stopped
the writing, the file is its header and N complete fragments, plus at most the part of one
fragment that was being written when the process died. Truncated to the last complete `mdat`,
it is a valid MP4 of everything but that fragment in flight: a crash loses at most one fragment,
and the frames of that fragment are still in the masked-frame buffer (intake.py) for the next run.

`fmp4.scan` finds the complete fragments and their timing; `salvage` truncates, hashes what is
kept and describes it as a closed segment from the `.open` marker written when the segment opened.
Design: docs/design/reliability.md
"""

import hashlib
import json
import struct
from pathlib import Path

from services.archive.segmenter import ClosedSegment
from services.common.fmp4 import scan
from services.common.log import get_logger

log = get_logger(__name__)
HASH_CHUNK = 1024 * 1024


def salvage(spool: Path, marker: Path) -> ClosedSegment | None:
    """Keep the complete fragments of the segment an `.open` marker names; None when there are none.

    The media file is truncated to its last complete fragment and described (`<id>.json`) like a
    segment closed normally, then the marker goes: from here on it is an ordinary closed segment.
    """
    segment_id = marker.stem
    media = spool / f"{segment_id}.mp4"
    try:
        opened = json.loads(marker.read_text())
        with media.open("r+b") as file:
            found = scan(file)
            if found.fragments == 0:
                raise ValueError("no complete fragment")
            file.truncate(found.complete_bytes)
            file.flush()
            file.seek(0)
            digest = hashlib.sha256()
            while chunk := file.read(HASH_CHUNK):
                digest.update(chunk)
        start_us = int(opened["start_us"])
        seg = ClosedSegment(
            id=segment_id,
            camera_id=str(opened["camera_id"]),
            stream=str(opened["stream"]),
            start_us=start_us,
            end_us=start_us + found.end_ticks * 1_000_000 // found.timescale,
            bytes=found.complete_bytes,
            sha256=digest.hexdigest(),
            frames=found.frames,
            mask_version=str(opened.get("mask_version", "")),
            fully_masked=bool(opened.get("fully_masked", False)),
        )
    except (OSError, ValueError, KeyError, TypeError, struct.error) as exc:
        log.warning("unfinished segment had nothing to keep", segment=segment_id, error=str(exc))
        media.unlink(missing_ok=True)
        marker.unlink(missing_ok=True)
        return None
    seg.save_description(spool)
    marker.unlink(missing_ok=True)
    log.warning(
        "unfinished segment kept up to its last complete fragment",
        camera=seg.camera_id,
        segment=segment_id,
        fragments=found.fragments,
        seconds=round((seg.end_us - seg.start_us) / 1e6, 3),
    )
    return seg
