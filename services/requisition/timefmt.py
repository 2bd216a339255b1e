"""Times in documents: UTC inside (integer microseconds), ISO 8601 in files, Europe/Paris for people."""

from datetime import date

from services.common.clock import from_us
from services.common.timefmt import PARIS


def utc(us: int) -> str:
    """'2026-11-25T20:10:05.123Z'."""
    return from_us(us).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def paris(us: int) -> str:
    """'2026-11-25T21:10:05.123+01:00': Paris time, unambiguous (with its offset)."""
    return from_us(us).astimezone(PARIS).isoformat(timespec="milliseconds")


def paris_human(us: int | None) -> str:
    """'25/11/2026 21:10:05' (Paris), for printed documents."""
    if us is None:
        return "—"
    return f"{from_us(us).astimezone(PARIS):%d/%m/%Y %H:%M:%S}"


def both(us: int) -> dict[str, str]:
    return {"utc": utc(us), "paris": paris(us)}


def paris_year(us: int) -> int:
    return from_us(us).astimezone(PARIS).year


def paris_date(us: int) -> date:
    return from_us(us).astimezone(PARIS).date()
