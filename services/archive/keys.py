"""Object keys of recorded segments: cam/<id>/<YYYY>/<MM>/<DD>/<HH>/<start>.mp4 (UTC).

Grouping by hour keeps listings of any hour cheap and lets deletion proofs be written per camera
and hour; the start in the file name (basic ISO 8601, microseconds) sorts keys in time order.
Design: docs/design/time.md
"""

from services.common.clock import from_us


def segment_key(camera_id: str, start_us: int) -> str:
    start = from_us(start_us)
    return f"cam/{camera_id}/{start:%Y/%m/%d/%H}/{start:%Y%m%dT%H%M%S.%fZ}.mp4"
