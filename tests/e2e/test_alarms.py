"""The alarm list: Alarm events published on JetStream by other services are stored (even when
raised while the gateway is down), counted when repeated, shown to those habilitated for the camera,
pushed to consoles, acknowledged (audited); a burst of refused logins raises an alarm of its own."""

import json
import time

import httpx
import pytest

from services.gateway.operations.alarms import BURST_CHECK_S
from tests.e2e.test_bollards import console, raise_alarm
from tests.support.platform import Platform, wait_for

pytestmark = pytest.mark.e2e


def _alarms(client: httpx.Client, **params: object) -> list[dict]:
    answer = client.get("/api/v1/alarms", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_alarms_are_stored_counted_filtered_pushed_and_acknowledged(platform: Platform) -> None:
    platform.start(["ingest", "gateway"])
    maintenance = platform.client("maintenance")
    north = platform.client("operator", groups=("north",))  # not habilitated for the demo cameras
    clerk = platform.client("clerk")

    with console(platform, maintenance) as screen:
        raise_alarm(platform, kind="camera.offline", source="ingest", camera_id="demo-1", message="demo-1 is offline")
        pushed = json.loads(screen.recv(timeout=60))
        assert pushed["type"] == "alarm.raised" and pushed["camera_id"] == "demo-1" and pushed["count"] == 1
        offline_id = pushed["alarm_id"]

        raise_alarm(platform, kind="camera.offline", source="ingest", camera_id="demo-1", message="still offline")
        assert json.loads(screen.recv(timeout=60))["count"] == 2
        raise_alarm(platform, kind="archive.spool_high", source="archive", message="spool 85 % full")
        spool = json.loads(screen.recv(timeout=60))
        assert spool["kind"] == "archive.spool_high" and spool["camera_id"] == ""

        listed = _alarms(maintenance)
        assert [(a["kind"], a["count"]) for a in listed] == [("archive.spool_high", 1), ("camera.offline", 2)]
        assert listed[1]["id"] == offline_id and listed[1]["message"] == "still offline"
        # Habilitation by camera group: the north operator sees the camera-less alarm only.
        assert [a["kind"] for a in _alarms(north)] == ["archive.spool_high"]
        # Another district's alarm answers as one that does not exist (same status, same words).
        unknown = north.get("/api/v1/alarms/999999")
        for hidden in (
            north.get(f"/api/v1/alarms/{offline_id}"),
            north.post(f"/api/v1/alarms/{offline_id}/ack", json={}),
        ):
            assert hidden.status_code == unknown.status_code == 404, hidden.text
            assert hidden.json()["detail"] == unknown.json()["detail"].replace("999999", str(offline_id))
        assert clerk.get("/api/v1/alarms").status_code == 403
        assert [a["kind"] for a in _alarms(maintenance, camera_id="demo-1")] == ["camera.offline"]
        assert [a["kind"] for a in _alarms(maintenance, kind="archive")] == ["archive.spool_high"]

        # Acknowledging: audited, pushed, once.
        assert maintenance.post(f"/api/v1/alarms/{offline_id}/ack", json={"note": "x"}).status_code == 422
        assert maintenance.post("/api/v1/alarms/999999/ack", json={}).status_code == 404
        acked = maintenance.post(f"/api/v1/alarms/{offline_id}/ack", json={"comment": "technicien prévenu"})
        assert acked.status_code == 200, acked.text
        assert acked.json()["state"] == "acknowledged" and acked.json()["acked_by"] == "maintenance-all"
        pushed = json.loads(screen.recv(timeout=60))
        assert pushed["type"] == "alarm.acknowledged" and pushed["alarm_id"] == offline_id
        again = maintenance.post(f"/api/v1/alarms/{offline_id}/ack", json={})
        assert again.status_code == 409 and "already acknowledged by maintenance-all" in again.json()["detail"]
        assert [a["kind"] for a in _alarms(maintenance)] == ["archive.spool_high"]

        # The next occurrence after an acknowledgement is a new alarm.
        raise_alarm(platform, kind="camera.offline", source="ingest", camera_id="demo-1", message="offline again")
        reopened = json.loads(screen.recv(timeout=60))
        assert reopened["alarm_id"] != offline_id and reopened["count"] == 1

    # Raised while every gateway is down: listed once the gateway is back (durable consumer).
    gateway = platform.processes["gateway"]
    gateway.stop()
    raise_alarm(
        platform,
        kind="authorisation.expired",
        source="ingest",
        camera_id="demo-2",
        message="demo-2 stopped recording: authorisation PREF-1 expired",
    )
    gateway.start()
    gateway.wait_ready(60)
    expired = wait_for(
        lambda: [a for a in _alarms(maintenance, state="all") if a["kind"] == "authorisation.expired"],
        60,
        "the alarm raised while the gateway was down",
    )
    assert expired[0]["camera_id"] == "demo-2" and expired[0]["count"] == 1
    # Nothing was counted twice across the restart.
    assert sorted((a["kind"], a["count"], a["state"]) for a in _alarms(maintenance, state="all")) == [
        ("archive.spool_high", 1, "open"),
        ("authorisation.expired", 1, "open"),
        ("camera.offline", 1, "open"),
        ("camera.offline", 2, "acknowledged"),
    ]

    auditor = platform.client("auditor")
    acks = wait_for(
        lambda: auditor.get("/api/v1/audit", params={"action": "alarm.acknowledge"}).json(), 30, "the audited ack"
    )
    assert acks[0]["actor"] == "maintenance-all" and acks[0]["target"] == f"alarm:{offline_id}"
    assert acks[0]["details"]["comment"] == "technicien prévenu"


def test_a_burst_of_refused_logins_raises_an_alarm(platform: Platform) -> None:
    # Refusals for unknown accounts are summarised per address (refusals.py): a short window
    # brings the summary within the test's wait.
    platform.env |= {
        "CSU_FAILED_LOGIN_BURST_COUNT": "4",
        "CSU_FAILED_LOGIN_BURST_MINUTES": "5",
        "CSU_REFUSAL_AUDIT_WINDOW_S": "2",
    }
    platform.start(["ingest", "gateway"])
    maintenance = platform.client("maintenance")
    anonymous = httpx.Client(base_url=platform.gateway, timeout=30)
    for n in range(3):
        refused = anonymous.post("/api/v1/auth/login", json={"username": f"ghost-{n}", "password": "guessing-123"})
        assert refused.status_code == 401
    # Below the threshold: once the refusals are in the trail, a whole round of the watch raises nothing.
    auditor = platform.client("auditor")
    wait_for(
        lambda: (
            sum(
                e["details"].get("count", 1)
                for e in auditor.get("/api/v1/audit", params={"action": "auth.login"}).json()
                if e["outcome"] == "refused"
            )
            >= 3
        ),
        30,
        "the refused logins in the audit trail",
    )
    time.sleep(BURST_CHECK_S + 5)  # an absence: it can only be observed by letting the watch run
    assert not [a for a in _alarms(maintenance) if a["kind"] == "auth.failed_logins_burst"]
    anonymous.post("/api/v1/auth/login", json={"username": "maintenance-all", "password": "wrong-password-1"})
    burst = wait_for(
        lambda: [a for a in _alarms(maintenance) if a["kind"] == "auth.failed_logins_burst"],
        90,
        "the failed logins burst alarm",
    )
    assert burst[0]["source"] == "gateway" and burst[0]["camera_id"] == ""
    assert "4 refused logins in the last 5 min" in burst[0]["message"] and "127.0.0.1" in burst[0]["message"]
    # What was typed as a user name (sometimes a password) is for auditors only, not the alarm list.
    assert "ghost" not in burst[0]["message"]
