"""Shift boundaries of the journal's handover: local change times (Europe/Paris), across midnight
and daylight-saving changes."""

from datetime import UTC, datetime

from services.common.clock import to_us
from services.gateway.operations.journal import shift_bounds

CHANGES = "06:00,14:00,22:00"


def _utc(*args: int) -> int:
    return to_us(datetime(*args, tzinfo=UTC))


def test_day_shift_in_winter() -> None:
    # 25 Nov, 10:00 UTC = 11:00 Paris: the 06:00-14:00 shift (05:00-13:00 UTC).
    assert shift_bounds(CHANGES, _utc(2026, 11, 25, 10, 0)) == (_utc(2026, 11, 25, 5, 0), _utc(2026, 11, 25, 13, 0))


def test_night_shift_spans_midnight() -> None:
    # 26 Nov, 02:00 UTC = 03:00 Paris: the night shift that began at 22:00 Paris the day before.
    assert shift_bounds(CHANGES, _utc(2026, 11, 26, 2, 0)) == (_utc(2026, 11, 25, 21, 0), _utc(2026, 11, 26, 5, 0))


def test_a_change_instant_starts_the_next_shift() -> None:
    start, end = shift_bounds(CHANGES, _utc(2026, 11, 25, 13, 0))
    assert (start, end) == (_utc(2026, 11, 25, 13, 0), _utc(2026, 11, 25, 21, 0))


def test_night_shift_across_the_spring_change_is_one_hour_shorter() -> None:
    # 29 March 2026: clocks go from 02:00 to 03:00 Paris. Night shift 22:00 (CET) -> 06:00 (CEST).
    start, end = shift_bounds(CHANGES, _utc(2026, 3, 29, 1, 30))
    assert (start, end) == (_utc(2026, 3, 28, 21, 0), _utc(2026, 3, 29, 4, 0))
    assert end - start == 7 * 3600 * 1_000_000


def test_a_single_change_time_makes_24_hour_shifts() -> None:
    start, end = shift_bounds("07:30", _utc(2026, 7, 1, 4, 0))  # 06:00 Paris (CEST)
    assert (start, end) == (_utc(2026, 6, 30, 5, 30), _utc(2026, 7, 1, 5, 30))
