"""The platform's one way of writing times and counting days.

Inside, every instant is an integer of microseconds since the Unix epoch, UTC (the envelope's
unit, see clock.py): no zone to get wrong, exact arithmetic, and a day is a fixed DAY_US. What
leaves through an API is ISO 8601 in UTC with a "Z" (what browsers, jq and the partners' tools all
read). What people read (on-screen text, documents, daily statistics) is Europe/Paris, where a
calendar day has 23 to 25 hours: count such days with PARIS, never with DAY_US.

The ISO writers differ on purpose, each kept for the outputs that already promise its form:
`iso` (microseconds when there are any) for the HTTP API and the CLI, `iso_if_set` for protobuf
fields where 0 means "unset", `iso_seconds` for messages people read in an error, `paris_minute`
for mails and printed lines, `paris_day` for the city's daily statistics. `paris_stamp` is the date
and time every image carries (burned in by masking, the segments' text track).
Design: docs/design/time.md
"""

from datetime import date, datetime, time, timedelta
from typing import overload
from zoneinfo import ZoneInfo

from services.common.clock import from_us, to_us

# 24 hours of UTC: retention periods, deadlines, query windows and settings' bounds, not Paris
# calendar days. DAY_S for what counts in seconds (settings, capacity sums), DAY_US for instants.
DAY_S = 86_400
HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US
PARIS = ZoneInfo("Europe/Paris")


@overload
def iso(us: int) -> str: ...
@overload
def iso(us: None) -> None: ...
@overload
def iso(us: int | None) -> str | None: ...
def iso(us: int | None) -> str | None:
    """'2026-11-25T20:10:05.123456Z', or '2026-11-25T20:10:05Z' on a whole second; None stays None."""
    return from_us(us).isoformat().replace("+00:00", "Z") if us is not None else None


def iso_if_set(us: int) -> str | None:
    """As `iso`, with None for 0: a protobuf time field left unset reads 0, not the year 1970."""
    return iso(us) if us else None


def iso_seconds(us: int) -> str:
    """'2026-11-25T20:10:05Z': truncated to the second, for messages a person reads."""
    return from_us(us).strftime("%Y-%m-%dT%H:%M:%SZ")


def paris_minute(us: int) -> str:
    """'25/11/2026 21:10' in Paris time, for people (mails, printed declarations)."""
    return f"{from_us(us).astimezone(PARIS):%d/%m/%Y %H:%M}"


def paris_day(us: int) -> str:
    """'2026-11-25': the Paris calendar day of an instant, the unit of the city's daily statistics."""
    return from_us(us).astimezone(PARIS).date().isoformat()


def paris_day_bounds(first: date, last: date) -> tuple[int, int]:
    """[start of `first`, end of `last`) in Paris, as microseconds (days have 23 to 25 hours)."""
    start = datetime.combine(first, time(0), PARIS)
    end = datetime.combine(last + timedelta(days=1), time(0), PARIS)
    return to_us(start), to_us(end)


def paris_stamp(us: int) -> str:
    """'2026-12-07 15:04:05 CET': Paris time to the second, with the zone's abbreviation (CET/CEST)
    so the hour repeated when summer time ends is not ambiguous."""
    local = from_us(us - us % 1_000_000).astimezone(PARIS)
    return f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()}"
