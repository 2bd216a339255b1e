"""Validation of the time ranges users ask for: the reasons a request is refused, in words.

Rules, checked against the archive's Clock:
- the start must be before the end;
- no wider than CSU_MAX_QUERY_RANGE_HOURS;
- not in the future (a small tolerance absorbs clock differences between gateway and archive);
- not wholly past the camera's retention. A clip or an extraction may not even start before it
  (`strict`): it would claim footage that no longer exists; a listing or timeline is clipped to it.
"""

from dataclasses import dataclass

from services.common.timefmt import HOUR_US, iso_seconds

FUTURE_TOLERANCE_US = 10_000_000


class RangeError(ValueError):
    """The request's range is refused; the message says why (shown to the user)."""


@dataclass(frozen=True)
class CheckedRange:
    start_us: int
    end_us: int


def check_range(
    start_us: int,
    end_us: int,
    now_us: int,
    cutoff_us: int,
    retention_days: int,
    max_hours: float,
    strict: bool,
) -> CheckedRange:
    if start_us >= end_us:
        raise RangeError("start must be before end")
    if end_us - start_us > max_hours * HOUR_US:
        raise RangeError(f"the range is wider than the maximum of {max_hours:g} hours")
    if start_us > now_us + FUTURE_TOLERANCE_US:
        raise RangeError(f"the range starts in the future ({iso_seconds(start_us)}; it is now {iso_seconds(now_us)})")
    if strict and end_us > now_us + FUTURE_TOLERANCE_US:
        raise RangeError(f"the range ends in the future ({iso_seconds(end_us)}; it is now {iso_seconds(now_us)})")
    if end_us <= cutoff_us or (strict and start_us < cutoff_us):
        raise RangeError(
            f"the range reaches beyond the camera's {retention_days}-day retention: nothing before "
            f"{iso_seconds(cutoff_us)} is kept"
        )
    return CheckedRange(max(start_us, cutoff_us), min(end_us, now_us + FUTURE_TOLERANCE_US))
