"""PTZ arbitration through the gateway with real accounts and a simulated PTZ camera in ingest:
priorities by role, the 409 naming the holder, idle timeout, supervisor reservation, admin release,
presets and a guard tour that an operator preempts, and the audit trail of every command."""

import json

import httpx
import pytest

from tests.support.platform import Platform, wait_for

pytestmark = pytest.mark.e2e
CAMERA = "ptz-parvis"
PERIMETER = {
    "type": "Polygon",
    "coordinates": [[[4.80, 45.75], [4.86, 45.75], [4.86, 45.78], [4.80, 45.78], [4.80, 45.75]]],
}


def detail(response: httpx.Response) -> str:
    return json.dumps(response.json().get("detail"), ensure_ascii=False)


def test_ptz_arbitration_presets_tours_and_audit(platform: Platform) -> None:
    platform.env["CSU_PTZ_IDLE_TIMEOUT_S"] = "4"
    platform.start(["ingest", "masking", "gateway"])  # masking: the commissioning gate
    admin = platform.admin()
    assert admin.put(
        "/api/v1/authorisations/PREF-PTZ",
        json={
            "decision_date": "2026-01-15",
            "expiry_date": "2031-01-14",
            "purposes": ["voie publique"],
            "max_retention_days": 15,
            "recipients": ["police nationale"],
            "perimeter": PERIMETER,
        },
    ).is_success
    created = admin.post(
        "/api/v1/cameras",
        json={
            "id": CAMERA,
            "name": "Parvis (PTZ)",
            "main_url": f"simptz://{CAMERA}?width=352&height=288&fps=6",
            "ptz_driver": "simulated",
            "position": {"lat": 45.76, "lon": 4.83},
            "groups": ["centre"],
            "profile": {"width": 352, "height": 288, "fps": 6},
            "authorisation_ref": "PREF-PTZ",
            "state": "commissioning",
        },
    )
    assert created.status_code == 201, created.text
    statement = {"text": "Checked on site: no window, garden or entrance of a home is in view."}
    supervisor_all = platform.client("supervisor")
    assert supervisor_all.post(f"/api/v1/cameras/{CAMERA}/no-private-area-statement", json=statement).is_success
    in_service = admin.post(f"/api/v1/cameras/{CAMERA}/state", json={"state": "in_service"})
    assert in_service.status_code == 200, in_service.text
    operator, colleague = platform.client("operator", ["centre"]), platform.client("operator", ["*"])
    police, supervisor = platform.client("police_nationale", ["centre"]), platform.client("supervisor", ["centre"])
    url = f"/api/v1/cameras/{CAMERA}/ptz"
    state = wait_for(lambda: (s := operator.get(url)).status_code == 200 and s.json()["position"] and s.json(), 60,
                     "the PTZ driver connected")  # fmt: skip
    assert state["session"] is None and state["your_priority"] == 50

    moved = operator.post(f"{url}/move", json={"kind": "absolute", "pan": 0.5, "tilt": 0.1, "zoom": 0.3})
    assert moved.status_code == 200, moved.text
    assert moved.json()["session"]["holder"] == "operator-centre" and moved.json()["session"]["priority"] == 50
    wait_for(lambda: abs(operator.get(url).json()["position"]["pan"] - 0.5) < 0.01, 20, "the camera at pan 0.5")

    # Equal priority is refused with the holder's name; higher priority takes over.
    busy = colleague.post(f"{url}/move", json={"kind": "stop"})
    assert busy.status_code == 409
    assert "held by operator-centre (priority 50" in detail(busy) and "s left)" in detail(busy)
    assert police.post(f"{url}/move", json={"kind": "relative", "pan": -0.2}).json()["session"]["holder"] == (
        "police-nationale-centre"
    )
    assert "held by police-nationale-centre (priority 60" in detail(operator.post(f"{url}/move", json={"kind": "stop"}))

    # Idle timeout: after 4 s without a command, anyone may take it.
    wait_for(lambda: operator.get(url).json()["session"] is None, 20, "the idle session to end")
    assert colleague.post(f"{url}/move", json={"kind": "home"}).status_code == 200

    # A supervisor's reservation beats everyone below it and does not idle out; only an admin breaks it.
    assert operator.post(f"{url}/reserve", json={"duration_s": 60}).status_code == 403
    reserved = supervisor.post(f"{url}/reserve", json={"duration_s": 600})
    assert reserved.status_code == 200 and reserved.json()["session"]["reserved"] is True
    refused = police.post(f"{url}/move", json={"kind": "stop"})
    assert refused.status_code == 409 and "reserved by supervisor-centre (priority 80" in detail(refused)
    assert police.post(f"{url}/release").status_code == 403  # not the holder
    assert admin.get(url).status_code == 403  # admins administer, they do not steer
    released = admin.post(f"{url}/force-release")
    assert released.status_code == 200 and released.json()["session"] is None

    # Presets and a guard tour; an operator's command stops the tour.
    for name, pan in (("porte", -0.6), ("fontaine", 0.6)):
        put = supervisor.put(f"{url}/presets/{name}", json={"position": {"pan": pan, "tilt": 0.0, "zoom": 0.4}})
        assert put.status_code == 200, put.text
    bad_tour = supervisor.put(f"{url}/tours/ronde", json={"steps": [{"preset": "nulle-part", "dwell_s": 2}]})
    assert bad_tour.status_code == 422 and "unknown preset(s) nulle-part" in detail(bad_tour)
    tour = [{"preset": "porte", "dwell_s": 1}, {"preset": "fontaine", "dwell_s": 1}]
    assert supervisor.put(f"{url}/tours/ronde", json={"steps": tour}).status_code == 200
    started = supervisor.post(f"{url}/tours/ronde/start")
    assert started.status_code == 200, started.text
    assert started.json()["session"]["tour"] == "ronde" and started.json()["session"]["time_left_s"] is None
    pans = set()
    wait_for(lambda: pans.add(round(operator.get(url).json()["position"]["pan"], 1)) or {-0.6, 0.6} <= pans, 60,
             "the tour visiting both presets")  # fmt: skip
    taken = operator.post(f"{url}/move", json={"kind": "preset", "preset": "porte"})
    assert taken.status_code == 200 and taken.json()["session"]["holder"] == "operator-centre"
    assert taken.json()["session"]["tour"] == ""
    assert operator.post(f"{url}/move", json={"kind": "preset", "preset": "absent"}).status_code == 404

    # Every command is in the audit trail, refusals included, with who asked and what.
    auditor = platform.client("auditor")
    trail = wait_for(
        lambda: (
            (r := auditor.get("/api/v1/audit", params={"action": "ptz", "target": f"camera:{CAMERA}"}).json())
            and len([e for e in r if e["action"] == "ptz.move.refused"]) >= 3
            and r
        ),
        30,
        "the PTZ commands in the audit trail",
    )
    actions = {(e["actor"], e["action"]) for e in trail}
    assert {
        ("operator-centre", "ptz.move"),
        ("police-nationale-centre", "ptz.move"),
        ("operator-all", "ptz.move.refused"),
        ("supervisor-centre", "ptz.reserve"),
        ("admin", "ptz.force_release"),
        ("supervisor-centre", "ptz.tour.start"),
    } <= actions, actions
    refusal = next(e for e in trail if e["action"] == "ptz.move.refused" and e["actor"] == "operator-all")
    assert "held by operator-centre" in refusal["details"]["reason"] and refusal["outcome"] == "refused"
