"""Who is in the viewing room now: agents record their shifts, visitors are checked in and out at
the door against a declaration the prefecture has validated, and the room's list follows."""

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.support.platform import Platform, wait_for

pytestmark = pytest.mark.e2e


def _declare(admin: httpx.Client, name: str) -> dict:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    declared = admin.post(
        "/api/v1/visitors",
        json={
            "name": name,
            "organisation": "Préfecture de la Moselle",
            "role": "visitor",
            "purpose": "Contrôle de la salle",
            "expected_start": start.isoformat(),
            "expected_end": (start + timedelta(hours=2)).isoformat(),
        },
    )
    assert declared.status_code == 201, declared.text
    return declared.json()


def _inside(client: httpx.Client) -> list[tuple[str, str]]:
    answer = client.get("/api/v1/room/now")
    assert answer.status_code == 200, answer.text
    return [(p["kind"], p["name"]) for p in answer.json()]


def test_agents_and_visitors_at_the_door(platform: Platform) -> None:
    platform.start(["ingest", "gateway"])
    admin = platform.admin()
    agent = platform.client("operator")
    colleague = platform.client("supervisor")
    auditor = platform.client("auditor")
    assert _inside(auditor) == []

    # Agents enter at the start of their shift; twice is refused.
    started = agent.post("/api/v1/room/shift/start")
    assert started.status_code == 201, started.text
    assert colleague.post("/api/v1/room/shift/start").status_code == 201
    again = agent.post("/api/v1/room/shift/start")
    assert again.status_code == 409 and "already in the room" in again.json()["detail"]
    assert _inside(auditor) == [("agent", "operator-all"), ("agent", "supervisor-all")]

    # A visitor whose declaration the prefecture has not answered stays at the door.
    visitor = _declare(admin, "Claire Dubois")
    pending = agent.post("/api/v1/room/visitors", json={"declaration_id": visitor["id"]})
    assert pending.status_code == 409, pending.text
    assert (
        "no answer from the prefecture" in pending.json()["detail"] and visitor["reference"] in pending.json()["detail"]
    )
    refused_one = _declare(admin, "Marc Petit")
    answered_at = datetime.now(UTC).replace(microsecond=0).isoformat()
    assert (
        admin.post(
            f"/api/v1/visitors/{refused_one['id']}/answer", json={"decision": "refused", "answered_at": answered_at}
        ).status_code
        == 200
    )
    refused = agent.post("/api/v1/room/visitors", json={"declaration_id": refused_one["id"]})
    assert refused.status_code == 409 and "is refused" in refused.json()["detail"]
    assert _inside(auditor) == [("agent", "operator-all"), ("agent", "supervisor-all")]

    # Once validated, the visitor is checked in, and out.
    validated = admin.post(
        f"/api/v1/visitors/{visitor['id']}/answer",
        json={"decision": "validated", "prefecture_ref": "PREF-SV-2026-301", "answered_at": answered_at},
    )
    assert validated.status_code == 200, validated.text
    # Bad input and other roles change nothing.
    for bad in ({}, {"declaration_id": "x"}, {"declaration_id": 0}, {"declaration_id": visitor["id"], "extra": 1}):
        assert agent.post("/api/v1/room/visitors", json=bad).status_code == 422, bad
    assert agent.post("/api/v1/room/visitors", json={"declaration_id": 999_999}).status_code == 404
    for other in (auditor, admin, platform.client("clerk"), platform.client("maintenance")):
        denied = other.post("/api/v1/room/visitors", json={"declaration_id": visitor["id"]})
        assert denied.status_code == 403, denied.text
        assert other.post("/api/v1/room/shift/start").status_code == 403
    assert platform.client("clerk").get("/api/v1/room/now").status_code == 403
    # An agent who is not on duty in the room does not let people in.
    assert (
        platform.client("manager").post("/api/v1/room/visitors", json={"declaration_id": visitor["id"]}).status_code
        == 409
    )

    checked_in = agent.post("/api/v1/room/visitors", json={"declaration_id": visitor["id"]})
    assert checked_in.status_code == 201, checked_in.text
    assert (
        checked_in.json()["declaration"] == visitor["reference"] and checked_in.json()["entered_by"] == "operator-all"
    )
    twice = colleague.post("/api/v1/room/visitors", json={"declaration_id": visitor["id"]})
    assert twice.status_code == 409 and "already in the room" in twice.json()["detail"]
    assert _inside(agent) == [("agent", "operator-all"), ("agent", "supervisor-all"), ("visitor", "Claire Dubois")]

    presence = checked_in.json()["id"]
    assert auditor.post(f"/api/v1/room/presences/{presence}/exit").status_code == 403
    left = colleague.post(f"/api/v1/room/presences/{presence}/exit")
    assert left.status_code == 200 and left.json()["exited"] and left.json()["exited_by"] == "supervisor-all"
    assert colleague.post(f"/api/v1/room/presences/{presence}/exit").status_code == 409
    agent_stay = started.json()["id"]
    assert colleague.post(f"/api/v1/room/presences/{agent_stay}/exit").status_code == 409

    # The shift ends: the agent leaves; ending it twice is refused.
    ended = agent.post("/api/v1/room/shift/end")
    assert ended.status_code == 200 and ended.json()["exited"]
    assert agent.post("/api/v1/room/shift/end").status_code == 409
    assert _inside(auditor) == [("agent", "supervisor-all")]

    # Every entry and exit, and the refused entries, are in the audit trail.
    def room_entries() -> list[tuple[str, str, str]]:
        rows = auditor.get("/api/v1/audit", params={"action": "room"}).json()
        return sorted((e["action"], e["actor"], e["outcome"]) for e in rows)

    expected = sorted(
        [
            ("room.shift_start", "operator-all", "ok"),
            ("room.shift_start", "supervisor-all", "ok"),
            ("room.check_in", "operator-all", "refused"),
            ("room.check_in", "operator-all", "refused"),
            ("room.check_in", "operator-all", "ok"),
            ("room.check_out", "supervisor-all", "ok"),
            ("room.shift_end", "operator-all", "ok"),
        ]
    )
    wait_for(lambda: all(e in room_entries() for e in expected), 30, "the room's entries in the audit trail")

    # The compliance report shows the room: one agent left on shift (a finding: two are required),
    # and the visitor's stay of the period by its declaration only, never by name.
    report = auditor.get("/api/v1/compliance/report")
    assert report.status_code == 200, report.text
    section = report.json()["viewing_room"]
    assert section["available"] is True and section["agents_on_shift"] == ["supervisor-all"]
    assert [(p["kind"], p["username"]) for p in section["inside"]] == [("agent", "supervisor-all")]
    assert [(v["declaration_id"], v["declaration"], v["entered_by"], v["exited_by"]) for v in section["visitors"]] == [
        (visitor["id"], visitor["reference"], "operator-all", "supervisor-all")
    ]
    assert "Dubois" not in str(section)
    assert any("1 agent(s) on shift now" in f for f in report.json()["findings"]), report.json()["findings"]
    pdf = auditor.get("/api/v1/compliance/report.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")


def test_two_agents_at_the_door_at_once(platform: Platform) -> None:
    """Two requests at the same instant: one shift starts, one visitor enters, once each; the other
    request is refused (409), changes nothing, and the trail has one ok and one refused entry."""
    platform.start(["ingest", "gateway"])
    admin = platform.admin()
    agent, colleague, auditor = (platform.client(r) for r in ("operator", "supervisor", "auditor"))

    def at_once(*calls: Callable[[], httpx.Response]) -> list[int]:
        barrier = threading.Barrier(len(calls))

        def go(call: Callable[[], httpx.Response]) -> int:
            barrier.wait()
            return call().status_code

        with ThreadPoolExecutor(len(calls)) as pool:
            return sorted(pool.map(go, calls))

    # The same agent's shift started twice at once (two consoles).
    other_console = platform.client("operator")
    shift = at_once(
        lambda: agent.post("/api/v1/room/shift/start"), lambda: other_console.post("/api/v1/room/shift/start")
    )
    assert shift == [201, 409], shift
    assert colleague.post("/api/v1/room/shift/start").status_code == 201

    visitor = _declare(admin, "Claire Dubois")
    answered_at = datetime.now(UTC).replace(microsecond=0).isoformat()
    validated = admin.post(
        f"/api/v1/visitors/{visitor['id']}/answer",
        json={"decision": "validated", "prefecture_ref": "PREF-SV-2026-302", "answered_at": answered_at},
    )
    assert validated.status_code == 200, validated.text
    body = {"declaration_id": visitor["id"]}
    entered = at_once(
        lambda: agent.post("/api/v1/room/visitors", json=body),
        lambda: colleague.post("/api/v1/room/visitors", json=body),
    )
    assert entered == [201, 409], entered
    assert _inside(auditor) == [("agent", "operator-all"), ("agent", "supervisor-all"), ("visitor", "Claire Dubois")]

    def outcomes(action: str) -> list[str]:
        return sorted(e["outcome"] for e in auditor.get("/api/v1/audit", params={"action": action}).json())

    wait_for(lambda: outcomes("room.check_in") == ["ok", "refused"], 30, "one ok and one refused check-in")
    # One shift started per agent (the second console's attempt is refused before or after its entry).
    wait_for(lambda: outcomes("room.shift_start").count("ok") == 2, 30, "the shifts' entries")
