"""Text fields of the operations' request bodies.

Registers are read by people and printed in reports and mails: control characters are refused
(a NUL cannot even be stored by PostgreSQL, a line break in a name would forge a mail header),
surrounding spaces are dropped, and a field that is only spaces is empty.
"""

import re
from typing import Annotated

from pydantic import AfterValidator, StringConstraints

from services.common import csvsafe

_SINGLE = re.compile(r"[\x00-\x1f\x7f]")
_MULTI = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _single_line(value: str) -> str:
    if _SINGLE.search(value):
        raise ValueError("must be one line of text without control characters")
    return value


def _multi_line(value: str) -> str:
    if _MULTI.search(value):
        raise ValueError("must be text without control characters")
    return value


def line(max_length: int, min_length: int = 1) -> type[str]:
    return Annotated[  # type: ignore[return-value]
        str,
        StringConstraints(strip_whitespace=True, min_length=min_length, max_length=max_length),
        AfterValidator(_single_line),
    ]


def text(max_length: int, min_length: int = 1) -> type[str]:
    return Annotated[  # type: ignore[return-value]
        str,
        StringConstraints(strip_whitespace=True, min_length=min_length, max_length=max_length),
        AfterValidator(_multi_line),
    ]


CAMERA_ID = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]

# Row ids are SQL INTEGERs: larger numbers in a request are refused (422) before any query.
MAX_ID = 2_147_483_647


def csv_cell(value: object) -> object:
    """A value for a CSV that auditors open in a spreadsheet: no formula (services/common/csvsafe.py)."""
    if value is None:
        return ""
    return csvsafe.escape(value)
