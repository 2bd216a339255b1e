"""Every personal datum has a retention period, and is erased at its end (issue 26 item 1).

The gateway process sweeps every second here; the requisition service (in process, on the test's
database) erases its own tables at the gateway's call. Each kind of datum is created through the
API, aged in the database past its period, and then must be gone — personal fields blanked or rows
deleted — with one `retention.erase` entry per kind in the audit trail and the compliance report
saying so. The data protection officer cannot go above a period's hard cap; a citizen's request
nobody closes is reminded before its deadline, then expires."""

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from services.common.clock import from_us
from tests.support.archive import T0_US
from tests.support.platform import Platform, wait_for
from tests.support.requisition import LoopThread, RequisitionStack, jpeg_bytes, stack_behind_platform
from tests.support.servers import S3Server

pytestmark = pytest.mark.e2e
CAM = "cam-a"
S = 1_000_000
DAY = 86_400 * S
KINDS = {"visitors", "room_presence", "bollard_plates", "intercom_calls", "journal", "citizen_requests", "requisitions"}


def iso(us: int) -> str:
    return from_us(us).astimezone(UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture
def env(
    platform: Platform, tmp_path: Path, database_url: str, s3: S3Server, nats_url: str
) -> Iterator[tuple[Platform, RequisitionStack, LoopThread]]:
    with stack_behind_platform(
        platform, tmp_path, database_url, s3, nats_url, camera=(CAM, "Place d'Armes"), seconds=10,
        services=["ingest", "gateway"], env={"CSU_RETENTION_SWEEP_INTERVAL_S": "1"},
    ) as (st, bg):  # fmt: skip
        yield platform, st, bg


def citizen_request(name: str) -> dict:
    fields = {
        "full_name": name,
        "birth_date": "1987-04-12",
        "id_document_kind": "carte nationale d'identité",
        "id_document_number": "X4RTBPFW4",
        "contact": "requester@example.org",
        "place": "Place d'Armes, devant la fontaine",
        "camera_ids": CAM,
        "window_start": iso(T0_US),
        "window_end": iso(T0_US + 10 * S),
        "description": "veste bleue",
    }
    return {"data": fields, "files": {"identity_document": ("cni.jpg", jpeg_bytes(), "image/jpeg")}}


def test_personal_data_erased_at_retention_with_audit_report_cap_and_reminder(
    env: tuple[Platform, RequisitionStack, LoopThread], database_url: str
) -> None:
    platform, st, bg = env
    admin, dpo, auditor = platform.admin(), platform.client("dpo"), platform.client("auditor")
    clerk, operator = platform.client("clerk"), platform.client("operator")
    supervisor = platform.client("supervisor")

    # -- the DPO's periods: within the hard cap only -------------------------------------------
    periods = {p["kind"]: p for p in dpo.get("/api/v1/retention").json()}
    assert set(periods) == KINDS and all(p["basis"] and p["days"] <= p["cap_days"] for p in periods.values())
    above = dpo.put("/api/v1/retention/intercom_calls", json={"days": periods["intercom_calls"]["cap_days"] + 1})
    assert above.status_code == 422 and "hard cap of 30 days" in above.json()["detail"], above.text
    assert dpo.put("/api/v1/retention/nothing", json={"days": 3}).status_code == 404
    assert dpo.put("/api/v1/retention/journal", json={"days": 0}).status_code == 422
    assert auditor.put("/api/v1/retention/journal", json={"days": 100}).status_code == 403
    unchanged = {p["kind"]: p["days"] for p in dpo.get("/api/v1/retention").json()}
    assert unchanged == {k: p["days"] for k, p in periods.items()}
    shortened = dpo.put("/api/v1/retention/bollard_plates", json={"days": 20})
    assert shortened.status_code == 200 and shortened.json()["days"] == 20 and shortened.json()["set_by"] == "dpo-all"

    # -- one datum of each kind ------------------------------------------------------------------
    start = datetime.now(UTC) + timedelta(days=1)
    declared = admin.post(
        "/api/v1/visitors",
        json={
            "name": "Claire Dubois",
            "organisation": "Inspection générale",
            "role": "visitor",
            "quality": "inspectrice",
            "purpose": "Contrôle de la salle",
            "expected_start": start.isoformat(),
            "expected_end": (start + timedelta(hours=2)).isoformat(),
        },
    )
    assert declared.status_code == 201, declared.text
    # The room's door: one agent's shift over (erased at its end), one still on (someone inside: kept).
    assert operator.post("/api/v1/room/shift/start").status_code == 201
    assert operator.post("/api/v1/room/shift/end").status_code == 200
    assert supervisor.post("/api/v1/room/shift/start").status_code == 201
    bollard = {"id": "b-sim", "name": "Borne", "camera_id": CAM, "driver": "simulated"}
    registered = admin.post("/api/v1/bollards", json=bollard)
    assert registered.status_code == 201, registered.text
    opened = operator.post("/api/v1/bollards/b-sim/open", json={"reason": "livraison", "plate": "ab-123-cd"})
    assert opened.status_code == 200, opened.text
    intercom = {"X-Intercom-Token": registered.json()["intercom_token"]}
    call = httpx.post(f"{platform.gateway}/api/v1/bollards/b-sim/calls", headers=intercom)
    assert call.status_code == 201, call.text
    entry = operator.post("/api/v1/journal", json={"category": "other", "description": "M. Durand interpellé"})
    assert entry.status_code == 201, entry.text
    closed_request = clerk.post("/api/v1/citizen-requests", **citizen_request("Camille Durand"))
    unclosed_request = clerk.post("/api/v1/citizen-requests", **citizen_request("Jean Oublié"))
    assert closed_request.status_code == 201 and unclosed_request.status_code == 201, unclosed_request.text
    closed_id, unclosed_id = closed_request.json()["id"], unclosed_request.json()["id"]
    closing = operator.post(f"/api/v1/citizen-requests/{closed_id}/search", json={"found": False, "note": "absent"})
    assert closing.status_code == 200 and closing.json()["state"] == "closed", closing.text
    requisition = supervisor.post(
        "/api/v1/requisitions",
        json={
            "requesting_service": "Commissariat de Metz",
            "officer": "Lieutenant Martin",
            "officer_contact": "01 02 03 04 05",
            "case_reference": "PV 2026/00123",
            "reason": "vol à l'arraché, place d'Armes",
            "channel": "phone",
            "ranges": [{"camera_id": CAM, "start": iso(T0_US + 2 * S), "end": iso(T0_US + 8 * S)}],
        },
    )
    assert requisition.status_code == 201, requisition.text
    rid = requisition.json()["id"]
    cancelled = supervisor.post(f"/api/v1/requisitions/{rid}/cancel", json={"reason": "plainte retirée"})
    assert cancelled.status_code == 200, cancelled.text

    # -- the reminder: an unclosed request is warned before its one-month deadline ---------------
    st.clock.advance(timedelta(days=25))
    assert bg.run(st.tick())["citizen_alarms"] == 1  # the closed request is not warned
    number = unclosed_request.json()["number"]

    def reminders() -> list[dict]:
        answer = operator.get("/api/v1/alarms", params={"kind": "requisition.citizen_deadline"})
        assert answer.status_code == 200, answer.text
        return [a for a in answer.json() if number in a["message"]]

    reminder = wait_for(reminders, 30, "the deadline reminder among the alarms")
    assert "expires" in reminder[0]["message"] and "erased" in reminder[0]["message"]

    # Swept every second, nothing is erased before its time.
    time.sleep(2.5)
    assert dpo.get("/api/v1/audit", params={"action": "retention.erase"}).json() == []

    # -- aged past every period: the sweep erases ------------------------------------------------
    engine = create_engine(database_url)
    with engine.begin() as db:
        db.execute(
            text(
                "UPDATE gateway_visitors SET expected_start_us = expected_start_us - :d, "
                "expected_end_us = expected_end_us - :d"
            ),
            {"d": 400 * DAY},
        )
        db.execute(
            text("UPDATE gateway_room_presence SET entered_us = entered_us - :d, exited_us = exited_us - :d"),
            {"d": 366 * DAY},
        )
        db.execute(text("UPDATE gateway_bollard_commands SET time_us = time_us - :d"), {"d": 21 * DAY})
        db.execute(text("UPDATE gateway_bollard_calls SET time_us = time_us - :d"), {"d": 31 * DAY})
        db.execute(text("UPDATE gateway_journal SET created_us = created_us - :d"), {"d": 366 * DAY})
        db.execute(text("UPDATE requisition_citizen_requests SET closed_us = closed_us - :d"), {"d": 366 * DAY})
        db.execute(
            text("UPDATE requisition_citizen_requests SET deadline_us = deadline_us - :d WHERE id = :id"),
            {"d": 400 * DAY, "id": unclosed_id},
        )
        db.execute(text("UPDATE requisition_requests SET updated_us = updated_us - :d"), {"d": 1096 * DAY})

    def every_kind_erased() -> list[dict] | None:
        entries = dpo.get("/api/v1/audit", params={"action": "retention.erase"}).json()
        return entries if {e["target"] for e in entries} == KINDS else None

    erasures = wait_for(every_kind_erased, 30, "one erasure record per kind in the audit trail")
    assert len(erasures) == len(KINDS)  # one per kind: later sweeps found nothing more
    by_kind = {e["target"]: e["details"] for e in erasures}
    assert by_kind["citizen_requests"]["erased"] == 2 and by_kind["bollard_plates"]["retention_days"] == 20
    assert all(d["erased"] >= 1 and d["up_to"] for d in by_kind.values()), by_kind
    assert all(e["actor"] == "system" for e in erasures)

    with engine.connect() as db:
        visitor = db.execute(text("SELECT name, organisation, purpose, status, erased_us FROM gateway_visitors")).one()
        assert "Dubois" not in str(visitor) and "Inspection" not in str(visitor) and visitor.erased_us
        assert visitor.status == "cancelled"  # never answered: not to be mailed without its name
        stays = db.execute(
            text("SELECT kind, username, entered_by, exited_by, exited_us FROM gateway_room_presence ORDER BY id")
        ).all()
        assert [tuple(r)[:4] for r in stays] == [
            ("agent", "", "", ""),
            ("agent", "supervisor-all", "supervisor-all", ""),
        ]
        assert stays[0].exited_us and stays[1].exited_us is None  # when, not who; the open stay untouched
        assert db.execute(text("SELECT plate, reason FROM gateway_bollard_commands")).one() == ("", "livraison")
        assert db.execute(text("SELECT count(*) FROM gateway_bollard_calls")).scalar() == 0
        journal = db.execute(text("SELECT description, erased_us FROM gateway_journal")).one()
        assert "Durand" not in journal.description and journal.erased_us
        citizens = db.execute(
            text(
                "SELECT id, full_name, birth_date, contact, place, description, id_document_number_hint, state, "
                "outcome, erased_us FROM requisition_citizen_requests"
            )
        ).all()
        assert {r.id: (r.state, r.outcome) for r in citizens} == {
            closed_id: ("closed", "not_found"),
            unclosed_id: ("closed", "expired"),  # nobody closed it: it expired
        }
        assert all(r.erased_us and not (r.full_name or r.birth_date or r.contact or r.place) for r in citizens)
        assert all(not (r.description or r.id_document_number_hint) for r in citizens)
        case = db.execute(
            text("SELECT officer, officer_contact, case_reference, reason, erased_us FROM requisition_requests")
        ).one()
        assert case == ("", "", "", "", case.erased_us) and case.erased_us
    engine.dispose()
    # The expired request's identity document went with it, like a closed request's.
    assert st.keys(st.ctx.documents, f"docs/citizen_request/{unclosed_id}/") == []

    # -- the compliance report lists what was erased and what is due ------------------------------
    report = dpo.get("/api/v1/compliance/report").json()["personal_data_retention"]
    assert report["available"] is True
    listed = {k["kind"]: k for k in report["kinds"]}
    assert set(listed) == KINDS
    for kind, row in listed.items():
        assert row["basis"] and row["cap_days"] >= row["days"]
        assert row["last_erasure"]["erased"] == by_kind[kind]["erased"], (kind, row)
        assert row["due"] == {"overdue": 0, "next_due_at": None}, (kind, row)  # nothing left to erase
    pdf = dpo.get("/api/v1/compliance/report.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
