"""services.common.timefmt: the exact strings the API, the CLI and error messages already promise."""

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from services.common.clock import to_us
from services.common.timefmt import (
    DAY_S,
    DAY_US,
    HOUR_US,
    PARIS,
    iso,
    iso_if_set,
    iso_seconds,
    paris_day,
    paris_day_bounds,
    paris_minute,
)

ROOT = Path(__file__).resolve().parents[2]
WHOLE = to_us(datetime(2026, 11, 25, 20, 10, 5, tzinfo=UTC))


def test_iso_is_utc_with_z_and_microseconds_only_when_there_are_some() -> None:
    assert iso(WHOLE) == "2026-11-25T20:10:05Z"
    assert iso(WHOLE + 123_456) == "2026-11-25T20:10:05.123456Z"
    assert iso(WHOLE + 1) == "2026-11-25T20:10:05.000001Z"
    assert iso(0) == "1970-01-01T00:00:00Z"
    assert iso(None) is None
    assert datetime.fromisoformat(iso(WHOLE + 7)) == datetime(2026, 11, 25, 20, 10, 5, 7, tzinfo=UTC)


def test_iso_if_set_reads_protobufs_zero_as_unset() -> None:
    assert iso_if_set(0) is None
    assert iso_if_set(WHOLE + 500_000) == "2026-11-25T20:10:05.500000Z"
    # Before 1970 is still a time, not "unset".
    assert iso_if_set(-1_000_000) == "1969-12-31T23:59:59Z"


def test_iso_seconds_truncates_rather_than_rounds() -> None:
    assert iso_seconds(WHOLE) == "2026-11-25T20:10:05Z"
    assert iso_seconds(WHOLE + 999_999) == "2026-11-25T20:10:05Z"


def test_day_and_hour_lengths() -> None:
    assert HOUR_US == 3_600_000_000
    assert DAY_US == 86_400_000_000 == to_us(datetime(1970, 1, 2, tzinfo=UTC))
    assert DAY_S == 86_400 == timedelta(days=1).total_seconds()


def test_paris_minute_and_day_are_those_of_the_wall_clock_in_paris() -> None:
    assert paris_minute(WHOLE) == "25/11/2026 21:10"  # UTC+1 in winter
    assert paris_minute(to_us(datetime(2026, 7, 15, 22, 30, 59, tzinfo=UTC))) == "16/07/2026 00:30"  # UTC+2
    # 23:30 UTC on 25 November is already the 26th in Paris: the day a daily statistic counts it in.
    assert paris_day(to_us(datetime(2026, 11, 25, 23, 30, tzinfo=UTC))) == "2026-11-26"
    assert paris_day(to_us(datetime(2026, 11, 25, 22, 59, 59, tzinfo=UTC))) == "2026-11-25"


def test_paris_day_bounds_follow_the_clock_changes() -> None:
    start, end = paris_day_bounds(date(2026, 3, 29), date(2026, 3, 29))
    assert start == to_us(datetime(2026, 3, 28, 23, tzinfo=UTC))
    assert end - start == 23 * HOUR_US  # the clocks go forward
    start, end = paris_day_bounds(date(2026, 10, 24), date(2026, 10, 25))
    assert end - start == 49 * HOUR_US  # a day of 24 hours, then one of 25


def test_paris_follows_summer_time() -> None:
    winter = datetime(2026, 1, 15, 12, tzinfo=UTC).astimezone(PARIS)
    summer = datetime(2026, 7, 15, 12, tzinfo=UTC).astimezone(PARIS)
    assert winter.utcoffset() == timedelta(hours=1) and summer.utcoffset() == timedelta(hours=2)
    # 29 March 2026, the clocks go forward: a Paris day of 23 hours, hence never DAY_US for Paris days.
    start = datetime(2026, 3, 29, tzinfo=PARIS)
    end = datetime(2026, 3, 30, tzinfo=PARIS)
    assert to_us(end) - to_us(start) == 23 * HOUR_US


def test_no_service_writes_its_own_copy() -> None:
    """The zone, the ISO-with-Z writer and the day's length exist once; a copy would drift from the others."""
    copies = {
        "the Paris zone": re.compile(r'ZoneInfo\(\s*"Europe/Paris"\s*\)'),
        "an ISO-with-Z writer": re.compile(r'isoformat\([^)]*\)\s*\.replace\(\s*"\+00:00",\s*"Z"\s*\)'),
        "a day in microseconds": re.compile(r"\b86_?400_?000_?000\b"),
        "a day in seconds": re.compile(r"\b86_?400\b|\b24 ?\* ?3_?600\b|\b24 ?\* ?60 ?\* ?60\b"),
        "an hour in microseconds": re.compile(r"\b3_?600_?000_?000\b"),
    }
    requisition_ms = "services/requisition/timefmt.py"  # milliseconds, a different format on purpose
    found = []
    for path in sorted([*(ROOT / "services").rglob("*.py"), *(ROOT / "bench").rglob("*.py")]):
        name = str(path.relative_to(ROOT))
        if name in ("services/common/timefmt.py", requisition_ms):
            continue
        text = path.read_text(encoding="utf-8")
        found += [(name, what) for what, pattern in copies.items() if pattern.search(text)]
    assert found == []
