"""CSV cells a spreadsheet cannot run: the one escape every CSV the platform writes goes through.

A cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return is taken for a formula by
spreadsheets (CSV injection: `=HYPERLINK(...)`, `=cmd|' /C calc'!A0`); it is written with a leading
apostrophe, which spreadsheets show as text. A plain number (`-0.5`, `+33`) is no formula and stays
as is, so coordinates stay numbers.

The escape is reversible, so what the platform reads back (`csuctl cameras import`, the audit
export's verifier) is what it wrote: a cell that itself starts with an apostrophe gets a second
one, and `unescape` removes one apostrophe exactly when `escape` added it. For every text v,
unescape(escape(v)) == v.
"""

import re
from collections.abc import Iterable, Mapping
from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
APOSTROPHE = "'"
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def escape(value: Any) -> Any:
    """The cell as written; non-text values (numbers, None) pass unchanged."""
    if not isinstance(value, str) or not value:
        return value
    if value[0] == APOSTROPHE or (value[0] in FORMULA_START and not _NUMBER.fullmatch(value)):
        return APOSTROPHE + value
    return value


def unescape(value: str) -> str:
    """The cell as it was before `escape`."""
    if len(value) > 1 and value[0] == APOSTROPHE and (value[1] in FORMULA_START or value[1] == APOSTROPHE):
        return value[1:]
    return value


def row(values: Mapping[str, Any]) -> dict[str, Any]:
    """A csv.DictWriter row with every cell escaped."""
    return {k: escape(v) for k, v in values.items()}


def cells(values: Iterable[Any]) -> list[Any]:
    """A csv.writer row with every cell escaped."""
    return [escape(v) for v in values]
