"""The camera registry through the gateway, with real accounts: who sees positions, rules as HTTP
errors, secrets never shown, CSV import of 128 cameras in one call, audit of every change."""

import csv
import io
import json

import httpx
import pytest

from tests.support.platform import Platform, wait_for
from tests.support.servers import free_port

pytestmark = pytest.mark.e2e

PERIMETER = {
    "type": "Polygon",
    "coordinates": [[[4.80, 45.75], [4.86, 45.75], [4.86, 45.78], [4.80, 45.78], [4.80, 45.75]]],
}
AUTHORISATION = {
    "decision_date": "2026-01-15",
    "expiry_date": "2031-01-14",
    "purposes": ["protection des bâtiments publics", "régulation du trafic"],
    "max_retention_days": 15,
    "recipients": ["police municipale", "police nationale"],
    "perimeter": PERIMETER,
}


def camera(camera_id: str, **overrides: object) -> dict:
    return {
        "id": camera_id,
        "name": "Rue de la République",
        "main_url": f"rtsp://viewer:Secr3t-{camera_id}@127.0.0.1:{free_port()}/h264",
        "position": {"lat": 45.76, "lon": 4.83, "view_direction_deg": 270},
        "groups": ["centre"],
        "profile": {"width": 1920, "height": 1080, "fps": 12.5},
        "retention_days": 15,
        "authorisation_ref": "PREF-69-2026-001",
        "state": "commissioning",
    } | overrides


def detail(response: httpx.Response) -> str:
    return json.dumps(response.json()["detail"], ensure_ascii=False)


def test_registry_rules_positions_secrets_csv_and_audit(platform: Platform) -> None:
    platform.start(["ingest", "masking", "gateway"])  # masking: the commissioning gate
    admin = platform.admin()
    operator = platform.client("operator", ["centre"])
    maintenance = platform.client("maintenance", ["centre"])

    put = admin.put("/api/v1/authorisations/PREF-69-2026-001", json=AUTHORISATION)
    assert put.status_code == 200, put.text
    assert put.json()["status"] == "valid" and put.json()["perimeter"] == PERIMETER
    too_long = admin.put("/api/v1/authorisations/PREF-X", json=AUTHORISATION | {"expiry_date": "2031-06-01"})
    assert too_long.status_code == 422 and "at most 5 years" in detail(too_long)

    created = admin.post("/api/v1/cameras", json=camera("cam-rep"))
    assert created.status_code == 201, created.text
    assert "Secr3t" not in created.text and created.json()["main_source"].startswith("rtsp://***@127.0.0.1:")

    low = admin.post("/api/v1/cameras", json=camera("cam-low", profile={"width": 320, "height": 240, "fps": 25}))
    assert low.status_code == 422 and "below the arrêté du 3 août 2007 minimum" in detail(low)
    outside = admin.put(
        "/api/v1/cameras/cam-rep", json=camera("cam-rep", position={"lat": 45.90, "lon": 4.83}) | {"main_url": ""}
    )
    assert outside.status_code == 409 and "outside the perimeter of authorisation PREF-69-2026-001" in detail(outside)
    inside = admin.put(
        "/api/v1/cameras/cam-rep", json=camera("cam-rep", position={"lat": 45.77, "lon": 4.84}) | {"main_url": ""}
    )
    assert inside.status_code == 200 and inside.json()["position"]["lat"] == 45.77
    shrink = admin.put(
        "/api/v1/authorisations/PREF-69-2026-001",
        json=AUTHORISATION
        | {"perimeter": {"type": "Polygon", "coordinates": [[[4.0, 45.0], [4.1, 45.0], [4.1, 45.1], [4.0, 45.0]]]}},
    )
    assert shrink.status_code == 409 and "would leave camera(s) cam-rep outside" in detail(shrink)
    assert admin.delete("/api/v1/authorisations/PREF-69-2026-001").status_code == 409

    # Positions: "live" or "config" on the camera only; the maintenance role sees health, no position.
    assert operator.get("/api/v1/cameras/cam-rep").json()["position"]["lon"] == 4.84
    seen = maintenance.get("/api/v1/cameras/cam-rep")
    assert seen.status_code == 200 and seen.json()["position"] is None and seen.json()["main_source"] is None
    assert "4.84" not in maintenance.get("/api/v1/cameras").text
    assert maintenance.get("/api/v1/cameras.csv").status_code == 403
    assert maintenance.get("/api/v1/authorisations").status_code == 403
    outsider = platform.client("operator", ["other-district"])
    hidden, unknown = outsider.get("/api/v1/cameras/cam-rep"), outsider.get("/api/v1/cameras/cam-none")
    assert hidden.status_code == unknown.status_code == 404  # another district's camera: as an unknown one

    # An unreachable camera is offline with the reason; credentials never appear in it.
    status = wait_for(
        lambda: (c := operator.get("/api/v1/cameras/cam-rep").json())["status"] == "offline" and c, 60, "offline"
    )
    assert "Connection refused" in status["status_reason"] and "Secr3t" not in status["status_reason"]
    alarms = wait_for(
        lambda: [a for a in admin.get("/api/v1/alarms", params={"camera_id": "cam-rep"}).json()
                 if a["kind"] == "camera.offline"],
        30,
        "the camera-offline alarm",
    )  # fmt: skip
    assert "Connection refused" in alarms[0]["message"] and "Secr3t" not in alarms[0]["message"]

    # Lifecycle: into service only with approved masks or a supervisor's signed statement.
    gated = admin.post("/api/v1/cameras/cam-rep/state", json={"state": "in_service"})
    assert gated.status_code == 409 and "no approved privacy mask set" in detail(gated)
    statement = {"text": "Checked on site: no window, garden or entrance of a home is in view."}
    signed = platform.client("supervisor").post("/api/v1/cameras/cam-rep/no-private-area-statement", json=statement)
    assert signed.status_code == 201, signed.text
    assert admin.post("/api/v1/cameras/cam-rep/state", json={"state": "in_service"}).json()["state"] == "in_service"
    back = admin.post("/api/v1/cameras/cam-rep/state", json={"state": "commissioning"})
    assert back.status_code == 409 and "cannot go from in_service to commissioning" in detail(back)

    # CSV: 128 cameras in one call, then a file with errors changes nothing and names its lines.
    rows = [
        {
            "id": f"cam-{n:03d}",
            "name": f"Caméra {n}",
            "main_url": f"rtsp://u:pw{n}@10.9.{n // 200}.{n % 200 + 1}/s",
            "lat": f"{45.751 + 0.0002 * n:.6f}",
            "lon": "4.82",
            "groups": "centre",
            "width": "1280",
            "height": "720",
            "fps": "12",
            "retention_days": "15",
            "authorisation_ref": "PREF-69-2026-001",
            "state": "maintenance",  # not streamed: this test does not need 128 unreachable sources
        }
        for n in range(128)
    ]
    body = io.StringIO()
    writer = csv.DictWriter(body, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    headers = {"Content-Type": "text/csv"}
    imported = admin.post("/api/v1/cameras.csv", content=body.getvalue().encode(), headers=headers)
    assert imported.status_code == 200, imported.text
    assert imported.json() == {"created": 128, "updated": 0, "dry_run": False}
    assert len(operator.get("/api/v1/cameras").json()) == 129

    rows[3]["fps"] = "4"  # line 5
    rows[10]["lat"] = "46.5"  # line 12: outside the perimeter
    rows[20]["retention_days"] = "60"  # line 22
    rows.append(dict(rows[0], id="cam-new", name="Nouvelle", lat="not-a-number"))  # line 130
    rows.append(dict(rows[0], id="cam-svc", name="Sans masques", state="in_service"))  # line 131: not approved
    body = io.StringIO()
    writer = csv.DictWriter(body, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    refused = admin.post("/api/v1/cameras.csv", content=body.getvalue().encode(), headers=headers)
    assert refused.status_code == 422, refused.text
    errors = {e["line"]: e["message"] for e in refused.json()["detail"]["errors"]}
    assert set(errors) == {5, 12, 22, 130, 131}, errors
    assert "cannot go into service" in errors[131]
    assert "below the arrêté" in errors[5] and "outside the perimeter" in errors[12]
    assert errors[22].startswith("retention_days") and errors[130].startswith("lat")
    assert "nothing was imported" in refused.json()["detail"]["message"]
    assert len(operator.get("/api/v1/cameras").json()) == 129

    exported = admin.get("/api/v1/cameras.csv")
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    assert "Secr3t" not in exported.text and "pw7@" not in exported.text and "rtsp://***@10.9.0.8/s" in exported.text

    # Every change is in the audit trail, without the credentials.
    auditor = platform.client("auditor")
    trail = wait_for(
        lambda: (
            (r := auditor.get("/api/v1/audit", params={"action": "config"}).json())
            and {e["action"] for e in r} >= {"config.camera.create", "config.camera.update", "config.cameras.import"}
            and r
        ),
        30,
        "the configuration changes in the audit trail",
    )
    assert all(e["actor"] == "admin" for e in trail if e["outcome"] == "ok")
    assert any(e["action"] == "config.refused" and e["actor"] == "maintenance-centre" for e in trail)
    assert "Secr3t" not in json.dumps(trail)
    assert {e["target"] for e in trail} >= {"camera:cam-rep", "authorisation:PREF-69-2026-001", "cameras"}
    listed = auditor.get("/api/v1/authorisations").json()
    assert listed[0]["reference"] == "PREF-69-2026-001" and listed[0]["perimeter"] is None
