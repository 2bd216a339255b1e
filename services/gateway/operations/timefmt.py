"""Times as the operations modules show them: ISO 8601 UTC in the API, Europe/Paris in documents,
mails and daily statistics (a "day" of the city's reports is a Paris day)."""

from datetime import UTC, date, datetime, time, timedelta

from fastapi import HTTPException

from services.common.clock import from_us, to_us

# Re-exported for the modules that still import them from here (compliance, compliance_pdf,
# retention, routes/room); everything else imports services.common.timefmt itself.
from services.common.timefmt import PARIS as PARIS
from services.common.timefmt import iso as iso

# Instants outside these bounds are refused as input: they are typing mistakes, and converting
# them between zones can overflow.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


def paris(us: int) -> str:
    """'25/11/2026 21:10' in Paris time, for people."""
    return f"{from_us(us).astimezone(PARIS):%d/%m/%Y %H:%M}"


def checked_us(name: str, moment: datetime) -> int:
    """An aware datetime from a request, as microseconds; 422 when it is out of any sensible range."""
    if moment.tzinfo is None:
        raise HTTPException(422, f"{name} has no time zone: add Z or an offset such as +01:00")
    if not EARLIEST <= moment <= LATEST:
        raise HTTPException(422, f"{name} must be between 2000 and 2100")
    return to_us(moment)


def paris_day(us: int) -> str:
    return from_us(us).astimezone(PARIS).date().isoformat()


def paris_day_bounds(first: date, last: date) -> tuple[int, int]:
    """[start of `first`, end of `last`) in Paris, as microseconds (days have 23 to 25 hours)."""
    start = datetime.combine(first, time(0), PARIS)
    end = datetime.combine(last + timedelta(days=1), time(0), PARIS)
    return to_us(start), to_us(end)
