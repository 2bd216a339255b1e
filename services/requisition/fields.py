"""Checks on the text fields of requests: every refusal names the field and the problem."""

import re
from datetime import date

from services.common.refusals import Invalid

_SINGLE = re.compile(r"[\x00-\x1f\x7f]")
_MULTI = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def line(name: str, value: str, max_length: int, required: bool = True) -> str:
    """One line of text (names, references): no control characters, surrounding spaces dropped."""
    value = (value or "").strip()
    if required and not value:
        raise Invalid(f"{name} is required")
    if len(value) > max_length:
        raise Invalid(f"{name} is longer than {max_length} characters")
    if _SINGLE.search(value):
        raise Invalid(f"{name} must be one line of text without control characters")
    return value


def text(name: str, value: str, max_length: int, required: bool = True, min_length: int = 1) -> str:
    """Free text (reasons, notes): line breaks allowed, other control characters not."""
    value = (value or "").strip()
    if required and len(value) < min_length:
        raise Invalid(f"{name} is required" + (f" (at least {min_length} characters)" if min_length > 1 else ""))
    if len(value) > max_length:
        raise Invalid(f"{name} is longer than {max_length} characters")
    if _MULTI.search(value):
        raise Invalid(f"{name} must be text without control characters")
    return value


def choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise Invalid(f"{name} must be one of: {', '.join(allowed)} (got {value!r})")
    return value


def iso_date(name: str, value: str) -> date:
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise Invalid(f"{name} must be a date written YYYY-MM-DD (got {value!r})") from None
