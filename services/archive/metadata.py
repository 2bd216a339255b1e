"""A segment object's user metadata: everything needed to rebuild its index row from the object
alone (the reconcile after a database outage or a crash relies on it)."""

from collections.abc import Mapping

from services.archive.keys import segment_key
from services.archive.models import Segment
from services.archive.segmenter import ClosedSegment

REQUIRED = ("segment-id", "camera-id", "stream", "start-us", "end-us", "sha256", "frames", "mask-version")


def object_metadata(seg: ClosedSegment, prev_sha256: str) -> dict[str, str]:
    return {
        "segment-id": seg.id,
        "camera-id": seg.camera_id,
        "stream": seg.stream,
        "start-us": str(seg.start_us),
        "end-us": str(seg.end_us),
        "sha256": seg.sha256,
        "prev-sha256": prev_sha256,
        "frames": str(seg.frames),
        "mask-version": seg.mask_version,
        "fully-masked": "1" if seg.fully_masked else "0",
    }


def row_for(seg: ClosedSegment, key: str, prev_sha256: str, created_us: int) -> Segment:
    return Segment(
        id=seg.id,
        camera_id=seg.camera_id,
        stream=seg.stream,
        start_us=seg.start_us,
        end_us=seg.end_us,
        object_key=key,
        bytes=seg.bytes,
        sha256=seg.sha256,
        frames=seg.frames,
        mask_version=seg.mask_version,
        fully_masked=seg.fully_masked,
        created_us=created_us,
        prev_sha256=prev_sha256,
    )


def row_from_metadata(key: str, size: int, metadata: Mapping[str, str] | None, created_us: int) -> Segment:
    """The index row an object describes; ValueError when its metadata is not a segment's.

    The key must be the one the metadata implies: an object copied or planted under another
    name is not one of our segments.
    """
    meta = dict(metadata or {})
    missing = [name for name in REQUIRED if not meta.get(name)]
    if missing:
        raise ValueError(f"{key}: metadata lacks {', '.join(missing)}")
    try:
        start_us, end_us, frames = int(meta["start-us"]), int(meta["end-us"]), int(meta["frames"])
    except ValueError as exc:
        raise ValueError(f"{key}: malformed metadata: {exc}") from exc
    if key != segment_key(meta["camera-id"], start_us):
        raise ValueError(f"{key}: the key does not match the metadata's camera and start")
    return Segment(
        id=meta["segment-id"],
        camera_id=meta["camera-id"],
        stream=meta["stream"],
        start_us=start_us,
        end_us=end_us,
        object_key=key,
        bytes=size,
        sha256=meta["sha256"],
        frames=frames,
        mask_version=meta["mask-version"],
        fully_masked=meta.get("fully-masked") == "1",
        created_us=created_us,
        prev_sha256=meta.get("prev-sha256", ""),
    )
