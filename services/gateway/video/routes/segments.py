"""Segment bytes, with HTTP range requests so a browser's <video> can seek."""

import re
from collections import OrderedDict

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.responses import StreamingResponse

from services.common.pb.csu.v1 import archive_pb2
from services.gateway.backends import RPC_TIMEOUT_S, BackendsDep, rpc_errors
from services.gateway.identity.security import Principal, audit, authenticate, authorize, check_playback_window
from services.gateway.streams import Relay

router = APIRouter(prefix="/api/v1", tags=["segments"])
# ASCII digits (\d takes "²", which int() refuses), and no more than a byte count can have: a range
# that is not this is ignored, as RFC 9110 allows, and the whole body is sent.
_RANGE = re.compile(r"^bytes=([0-9]{0,18})-([0-9]{0,18})$")


def parse_byte_range(header: str, size: int) -> tuple[int, int] | None:
    """The [first, last] bytes a single-range header asks for; None to send everything."""
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None  # multi-range or another unit: RFC 9110 lets us answer with the whole body
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # suffix: the last N bytes
        n = int(last)
        if n == 0:
            raise HTTPException(416, "empty suffix range", headers={"Content-Range": f"bytes */{size}"})
        return max(0, size - n), size - 1
    start = int(first)
    stop = min(int(last), size - 1) if last else size - 1
    if start >= size or stop < start:
        raise HTTPException(
            416, f"range not satisfiable for {size} bytes", headers={"Content-Range": f"bytes */{size}"}
        )
    return start, stop


# A browser's <video> fetches one segment in many range requests: the consultation is recorded
# once per session and segment, not once per request.
_AUDITED: OrderedDict[tuple[str, str], None] = OrderedDict()
_AUDITED_MAX = 10_000


@router.get("/segments/{segment_id}/content", response_class=StreamingResponse)
async def segment_content(
    request: Request,
    segment_id: str,
    b: BackendsDep,
    _: Principal = Depends(authenticate),  # first: strangers learn nothing, not even whether it exists
    justification: str = Query(min_length=5, max_length=500, description="Why this footage is viewed (audited)"),
    range_header: str | None = Header(None, alias="Range"),
) -> StreamingResponse:
    async with rpc_errors("archive"):
        segment = await b.archive.GetSegment(
            archive_pb2.GetSegmentRequest(segment_id=segment_id), timeout=RPC_TIMEOUT_S
        )
    principal = await authorize(request, "playback", segment.camera_id)
    check_playback_window(principal, segment.start_us, b.clock.now())
    key = (principal.token, segment_id)
    if key not in _AUDITED:
        await audit(
            principal,
            "playback.segment",
            f"camera:{segment.camera_id}",
            justification=justification,
            details={"segment": segment_id, "start_us": segment.start_us, "end_us": segment.end_us},
        )
    size = segment.bytes
    wanted = parse_byte_range(range_header, size) if range_header else None
    first, last = wanted if wanted else (0, size - 1)
    headers = {"Accept-Ranges": "bytes", "Content-Length": str(last - first + 1), "Cache-Control": "no-store"}
    if wanted:
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    relay = Relay(
        b.archive.ReadSegment(
            archive_pb2.ReadSegmentRequest(segment_id=segment_id, offset=first, length=last - first + 1)
        ),
        "archive",
        b.settings.stream_stall_s,
    )
    # Read the first chunk before answering, so a missing object (or an archive that does not
    # answer: 504) is a clean error status rather than a response that breaks off after its headers.
    head = await relay.first(rpc_errors("archive"))
    # Remembered once the archive answered: a consultation that failed is audited again when retried.
    _AUDITED[key] = None
    while len(_AUDITED) > _AUDITED_MAX:
        _AUDITED.popitem(last=False)
    return StreamingResponse(
        relay.body(head), status_code=206 if wanted else 200, media_type="video/mp4", headers=headers
    )
