"""The shift journal (main courante): operators log events with cameras, actions and bookmarks; entries
are never changed (amended by later ones); readers see what their habilitation covers; the playback
timeline finds the bookmarks; the supervisor's handover and the counts per category for the city."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.e2e.test_bollards import raise_alarm
from tests.support.platform import Platform, wait_for

pytestmark = pytest.mark.e2e


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def _write(client: httpx.Client, **body: object) -> httpx.Response:
    return client.post("/api/v1/journal", json={"category": "other", "description": "ras"} | body)


def test_journal_entries_bookmarks_handover_and_counts(platform: Platform) -> None:
    # One shift change, 12 hours from now: the whole test sits well inside one shift.
    change = datetime.now(ZoneInfo("Europe/Paris")) + timedelta(hours=12)
    platform.env["CSU_SHIFT_CHANGES"] = f"{change:%H}:00"
    platform.start(["ingest", "gateway"])
    operator = platform.client("operator")
    north = platform.client("operator", groups=("north",))
    supervisor = platform.client("supervisor")
    auditor = platform.client("auditor")
    now = datetime.now(UTC).replace(microsecond=0)

    fight = _write(
        operator,
        category="disturbance",
        description="Rixe devant le bar, 4 individus.\nUn blessé au sol.",
        camera_ids=["demo-1"],
        actions=["police_called", "camera_followed"],
        actions_note="Équipage PN arrivé à 22h14",
        bookmarks=[{"camera_id": "demo-1", "at": _iso(now - timedelta(minutes=2)), "label": "début de la rixe"}],
    )
    assert fight.status_code == 201, fight.text
    entry = fight.json()
    assert entry["author"] == "operator-all" and entry["camera_ids"] == ["demo-1"]
    assert entry["actions"] == ["police_called", "camera_followed"]
    assert [(b["camera_id"], b["label"]) for b in entry["bookmarks"]] == [("demo-1", "début de la rixe")]
    delivery = _write(operator, category="traffic", description="Livraison rue piétonne", actions=["bollard_opened"])
    assert delivery.status_code == 201
    # A bookmarked camera is a camera of the entry.
    marked = _write(
        operator,
        category="event_security",
        description="Marché de Noël : affluence",
        bookmarks=[{"camera_id": "demo-2", "at": _iso(now - timedelta(minutes=1))}],
    )
    assert marked.status_code == 201 and marked.json()["camera_ids"] == ["demo-2"]
    own = _write(north, category="other", description="Ronde du secteur nord sans incident")
    assert own.status_code == 201

    bad = {
        # Outside the habilitation: answered as an unknown camera (which cameras exist elsewhere is not told).
        "camera outside the habilitation": (north, {"camera_ids": ["demo-1"]}, 404),
        "bookmark outside the habilitation": (north, {"bookmarks": [{"camera_id": "demo-2", "at": _iso(now)}]}, 404),
        "unknown camera": (operator, {"camera_ids": ["nowhere"]}, 404),
        "in the future": (operator, {"occurred_at": _iso(now + timedelta(hours=2))}, 422),
        "too late": (operator, {"occurred_at": _iso(now - timedelta(days=8))}, 422),
        "bookmark in the future": (
            operator,
            {"bookmarks": [{"camera_id": "demo-1", "at": _iso(now + timedelta(hours=1))}]},
            422,
        ),
        "unknown category": (operator, {"category": "weather"}, 422),
        "unknown action": (operator, {"actions": ["drone_sent"]}, 422),
        "unknown field": (operator, {"severity": "high"}, 422),
        "empty description": (operator, {"description": "   "}, 422),
        "NUL in description": (operator, {"description": "a\x00b"}, 422),
        "amends nothing": (operator, {"amends": 999999}, 422),
        "police": (platform.client("police_nationale"), {}, 403),
        "maintenance": (platform.client("maintenance"), {}, 403),
        "auditor": (auditor, {}, 403),
    }
    for what, (client, body, status) in bad.items():
        answer = _write(client, **body)
        assert answer.status_code == status, (what, answer.status_code, answer.text)
    assert "city's operations" in _write(platform.client("police_nationale")).json()["detail"]

    correction = _write(
        operator,
        category="disturbance",
        description="Correction : 5 individus, pas 4.",
        camera_ids=["demo-1"],
        amends=entry["id"],
    )
    assert correction.status_code == 201 and correction.json()["amends"] == entry["id"]
    ids = [entry["id"], delivery.json()["id"], marked.json()["id"], own.json()["id"], correction.json()["id"]]

    # Reading: the current shift by default; entries about cameras outside one's habilitation are not shown.
    assert [e["id"] for e in operator.get("/api/v1/journal").json()] == ids
    assert [e["id"] for e in north.get("/api/v1/journal").json()] == [ids[1], ids[3]]
    hidden, unknown = north.get(f"/api/v1/journal/{entry['id']}"), north.get("/api/v1/journal/999999")
    assert (hidden.status_code, unknown.status_code) == (404, 404), (hidden.text, unknown.text)
    assert hidden.json()["detail"] == unknown.json()["detail"].replace("999999", str(entry["id"]))
    assert operator.get(f"/api/v1/journal/{entry['id']}").json()["description"].endswith("Un blessé au sol.")
    assert [e["id"] for e in operator.get("/api/v1/journal", params={"camera_id": "demo-1"}).json()] == [
        ids[0],
        ids[4],
    ]
    assert [e["id"] for e in operator.get("/api/v1/journal", params={"category": "traffic"}).json()] == [ids[1]]
    window = {"start": _iso(now - timedelta(hours=1)), "end": _iso(now + timedelta(minutes=5))}
    assert len(operator.get("/api/v1/journal", params=window).json()) == 5
    assert (
        operator.get("/api/v1/journal", params={"start": _iso(now), "end": _iso(now - timedelta(hours=1))}).status_code
        == 422
    )
    assert operator.get("/api/v1/journal", params={"start": "yesterday"}).status_code == 400

    # The playback timeline's bookmarks, by camera and range, for those who may play it back.
    marks = supervisor.get("/api/v1/cameras/demo-1/bookmarks", params=window)
    assert marks.status_code == 200
    assert [(m["entry_id"], m["label"]) for m in marks.json()] == [(entry["id"], "début de la rixe")]
    assert supervisor.get("/api/v1/cameras/demo-2/bookmarks", params=window).json()[0]["entry_id"] == ids[2]
    earlier = {"start": _iso(now - timedelta(hours=3)), "end": _iso(now - timedelta(hours=1))}
    assert supervisor.get("/api/v1/cameras/demo-1/bookmarks", params=earlier).json() == []
    # Outside the habilitation: answered as an unknown camera.
    assert north.get("/api/v1/cameras/demo-1/bookmarks", params=window).status_code == 404
    assert auditor.get("/api/v1/cameras/demo-1/bookmarks", params=window).status_code == 403

    # The supervisor's handover: the shift's entries, counts, and what is still open.
    raise_alarm(platform, kind="archive.spool_high", source="archive", message="spool 90 % full")
    handover = wait_for(
        lambda: (h := supervisor.get("/api/v1/journal/handover").json())["open_alarms"] and h,
        60,
        "the open alarm in the handover",
    )
    assert [e["id"] for e in handover["entries"]] == ids
    assert handover["by_category"] == {
        "disturbance": 2,
        "traffic": 1,
        "event_security": 1,
        "police_assistance": 0,
        "other": 1,
    }
    assert handover["open_alarms"][0]["kind"] == "archive.spool_high"
    assert handover["shift_start"] <= _iso(now).replace("+00:00", "Z") < handover["shift_end"]
    assert handover["unanswered_calls"] == 0 and handover["bollard_commands"] == {"open": 0, "close": 0, "failed": 0}

    # Counts per category over whole (Paris) days, for the city's reports: auditors too, no content.
    today = datetime.now(ZoneInfo("Europe/Paris")).date()
    stats = auditor.get("/api/v1/journal/stats", params={"start": str(today - timedelta(days=6)), "end": str(today)})
    assert stats.status_code == 200, stats.text
    assert stats.json()["total"] == 5 and stats.json()["by_category"]["disturbance"] == 2
    assert stats.json()["by_day"] == {str(today): handover["by_category"]}
    assert auditor.get("/api/v1/journal/stats", params={"start": str(today), "end": "2020-01-01"}).status_code == 422
    assert auditor.get("/api/v1/journal").status_code == 403  # counts, not the entries

    trail = wait_for(
        lambda: [e for e in auditor.get("/api/v1/audit", params={"action": "journal.write"}).json()],
        30,
        "the journal writes in the audit trail",
    )
    wait_for(
        lambda: len(auditor.get("/api/v1/audit", params={"action": "journal.write"}).json()) == 5,
        30,
        "every journal write audited",
    )
    assert trail[0]["actor"] == "operator-all" and trail[0]["details"]["camera_ids"] == ["demo-1"]
