"""The CSV escape against spreadsheet formulas (services/common/csvsafe.py): what it escapes, what
it leaves, and that it is reversible for every text."""

import csv
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common import csvsafe
from services.requisition import register_render
from services.requisition.models import RegisterEntry


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("=1+1", "'=1+1"),
        ('=HYPERLINK("http://x","y")', '\'=HYPERLINK("http://x","y")'),
        ("+33 1 23", "'+33 1 23"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("'quoted", "''quoted"),
        ("'", "''"),
        ("-0.5", "-0.5"),  # a plain number is no formula: coordinates stay numbers
        ("+12", "+12"),
        ("1e-3", "1e-3"),
        ("plain", "plain"),
        ("", ""),
        (7, 7),
        (None, None),
    ],
)
def test_escape(value: object, written: object) -> None:
    assert csvsafe.escape(value) == written


@given(st.text())
def test_unescape_undoes_escape(value: str) -> None:
    assert csvsafe.unescape(csvsafe.escape(value)) == value


@given(st.text())
def test_an_escaped_cell_never_starts_a_formula(value: str) -> None:
    cell = csvsafe.escape(value)
    assert cell[:1] not in csvsafe.FORMULA_START or csvsafe._NUMBER.fullmatch(cell)


def test_the_register_csv_is_escaped() -> None:
    entry = RegisterEntry(
        seq=1, time_us=0, kind="creation", request_id="r1", request_number="=1+1", actor="@evil",
        payload_json="{}", prev_hash="0", entry_hash="1", signature="s", key_fingerprint="k",
    )  # fmt: skip
    table = list(csv.DictReader(io.StringIO(register_render.to_csv([entry]).decode())))
    assert (table[0]["request_number"], table[0]["actor"]) == ("'=1+1", "'@evil")
