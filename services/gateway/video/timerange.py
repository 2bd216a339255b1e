"""Times from requests: ISO 8601 with an explicit zone, validated before any backend call."""

from datetime import UTC, datetime, timedelta

from fastapi import HTTPException

from services.common.clock import to_us

# Instants outside these bounds are refused as input: they are typing mistakes, and converting
# them between zones can overflow.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


def parse_instant(name: str, value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise HTTPException(
            400, f"{name}={value!r} is not an ISO 8601 date-time (e.g. 2026-11-25T21:10:00+01:00)"
        ) from exc
    if moment.tzinfo is None:
        raise HTTPException(400, f"{name}={value!r} has no time zone: add Z or an offset such as +01:00")
    return moment


def parse_range(
    start: str | None, end: str | None, now: datetime, retention_days: int, default_span: timedelta
) -> tuple[int, int]:
    """[start, end) in microseconds. Missing bounds default to the span ending now."""
    end_at = parse_instant("end", end) if end else now
    start_at = parse_instant("start", start) if start else end_at - default_span
    if start_at >= end_at:
        raise HTTPException(400, "start must be before end")
    retention = timedelta(days=retention_days)
    if end_at - start_at > retention:
        raise HTTPException(
            400,
            f"the range spans {(end_at - start_at).days} days, wider than the camera's {retention_days}-day retention",
        )
    return to_us(start_at), to_us(end_at)


def checked_us(name: str, moment: datetime) -> int:
    """An aware datetime from a request body (parsed by pydantic), as microseconds; 422 when it has
    no zone or is out of any sensible range."""
    if moment.tzinfo is None:
        raise HTTPException(422, f"{name} has no time zone: add Z or an offset such as +01:00")
    if not EARLIEST <= moment <= LATEST:
        raise HTTPException(422, f"{name} must be between 2000 and 2100")
    return to_us(moment)
