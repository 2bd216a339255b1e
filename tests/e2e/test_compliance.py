"""The compliance report for the data-protection impact assessment: what the running platform says
about its cameras, authorisations, retention, access, masks, deletion proofs and audit chain, as JSON
and as a PDF; for auditors only; still produced (with the gap said) when a service is down; and it
reports a tampered audit trail."""

import asyncio
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from sqlalchemy import create_engine, text

from services.common.pb.csu.v1 import masking_pb2, masking_pb2_grpc
from services.common.settings import Settings
from tests.support.platform import Platform, wait_for
from tests.support.servers import free_port

pytestmark = pytest.mark.e2e


def report_mask_error(platform: Platform, camera_id: str) -> None:
    """An operator's mask-error report, filed with the masking service."""

    async def report() -> None:
        async with grpc.aio.insecure_channel(platform.env["CSU_MASKING_GRPC"]) as channel:
            stub = masking_pb2_grpc.MaskingServiceStub(channel)
            request = masking_pb2.ReportMaskErrorRequest(
                camera_id=camera_id, description="a window is visible", actor="operator-all"
            )
            await stub.ReportMaskError(request, timeout=30)

    asyncio.run(report())


def test_compliance_report_json_pdf_access_and_gaps(platform: Platform, database_url: str) -> None:
    platform.env["CSU_MASKING_GRPC"] = f"127.0.0.1:{free_port()}"
    platform.start(["ingest", "masking", "archive", "gateway"])
    auditor = platform.client("auditor")
    admin = platform.admin()
    platform.create_user("lapsed", "operator", expires="2025-06-30T00:00:00Z")
    start = datetime.now(UTC) + timedelta(days=2)
    declared = admin.post(  # no mail relay configured: the declaration stays "not sent"
        "/api/v1/visitors",
        json={
            "name": "Paul Martin",
            "organisation": "Mairie",
            "role": "manager",
            "purpose": "visite",
            "expected_start": start.isoformat(),
            "expected_end": (start + timedelta(hours=1)).isoformat(),
        },
    )
    assert declared.status_code == 201 and declared.json()["mail_status"] == "not_sent"

    report_mask_error(platform, "demo-2")

    # The gateway names its signing key in the trail when it starts; the trail is written asynchronously.
    wait_for(lambda: auditor.get("/api/v1/audit", params={"action": "keys.in_use"}).json(), 30, "the key in the trail")
    answer = auditor.get("/api/v1/compliance/report")
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["generated_by"] == "auditor-all" and report["legal_max_retention_days"] == 30

    cameras = {c["id"]: c for c in report["cameras"]["cameras"]}
    assert set(cameras) == {"demo-1", "demo-2"}
    assert all(c["retention_days"] <= 30 and c["groups"] == ["default"] for c in cameras.values())
    assert cameras["demo-1"]["profile"]["width"] > 0 and "meets_norms" in cameras["demo-1"]["profile"]
    assert report["authorisations"]["available"] is True
    assert {r["camera_id"] for r in report["retention"]["cameras"]} == {"demo-1", "demo-2"}
    for row in report["retention"]["cameras"]:
        assert row["compliant"] == (not row["problems"])

    access = report["access"]
    # The specification of roles, written out independently of the code's table.
    assert access["roles"]["auditor"] == ["audit", "camera_health", "register"]
    assert access["roles"]["maintenance"] == ["camera_health"]
    assert "users" in access["roles"]["admin"] and "live" not in access["roles"]["admin"]
    users = {u["username"]: u for u in access["users"]}
    assert users["lapsed"]["problems"] == ["habilitation expired", "no TOTP second factor enrolled yet"]
    assert users["lapsed"]["prefecture_ref"] == "PREF-TEST-1" and users["lapsed"]["granted_by"] == "admin"
    assert users["auditor-all"]["totp_enrolled"] is True
    assert "account lapsed: habilitation expired" in report["findings"]

    masks = {m["camera_id"]: m for m in report["masks"]["cameras"]}
    assert set(masks) == {"demo-1", "demo-2"}
    for camera_id in ("demo-1", "demo-2"):  # the demo catalogue's window masks, imported and approved
        assert masks[camera_id]["commissionable"] is True and masks[camera_id]["approved_version"]
        assert masks[camera_id]["polygons"] >= 1
    assert masks["demo-1"]["open_error_reports"] == 0 and masks["demo-2"]["open_error_reports"] == 1
    assert "camera demo-2: 1 open mask error report(s)" in report["findings"]
    proofs = report["deletion_proofs"]
    assert proofs["available"] is True and proofs["digests_verified"] == proofs["proofs"]
    trail = report["audit_trail"]
    assert trail["available"] and trail["chain_ok"] is True and trail["entries"] > 0
    # The key this gateway signs with, named by the trail since its start (it recorded it then).
    keys = [(k["fingerprint"], k["how"], k["by"]) for k in trail["signing_keys"]]
    assert len(trail["signing_key"]) == 64 and keys == [(trail["signing_key"], "found at start", "system")]
    assert not [f for f in report["findings"] if "signs with key" in f]
    assert report["viewing_room"]["pending_not_mailed"] == 1
    assert any("not yet mailed to the prefecture" in f for f in report["findings"])

    # Date, time and camera identity on every image: the demo cameras are burned in by masking.
    identity = report["image_identity"]
    assert identity["available"] is True and "timed-text track" in identity["text_track"]
    assert {(c["camera_id"], c["overlay"], c["carried"]) for c in identity["cameras"]} == {
        ("demo-1", True, True),
        ("demo-2", True, True),
    }
    assert not [f for f in report["findings"] if "no date, time or camera identity" in f]
    assert "test_no_audio" in report["no_sound_no_biometrics"]["audio"]

    pdf = auditor.get("/api/v1/compliance/report.pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-") and b"/Type /Page" in pdf.content and len(pdf.content) > 2000
    assert "compliance-" in pdf.headers["content-disposition"]

    assert admin.get("/api/v1/compliance/report").status_code == 200
    for role in ("operator", "maintenance", "clerk", "police_nationale"):
        refused = platform.client(role).get("/api/v1/compliance/report.pdf")
        assert refused.status_code == 403, (role, refused.status_code)
    produced = wait_for(
        lambda: [
            e["details"]["format"]
            for e in auditor.get("/api/v1/audit", params={"action": "compliance.report"}).json()
            if e["actor"] == "auditor-all"
        ],
        30,
        "the reports in the audit trail",
    )
    assert sorted(produced) == ["json", "pdf"]

    # A service down: its section says so, the rest of the report stands.
    platform.processes["archive"].stop()
    partial = auditor.get("/api/v1/compliance/report")
    assert partial.status_code == 200
    assert partial.json()["deletion_proofs"]["available"] is False
    assert any(f.startswith("deletion proofs: could not be collected") for f in partial.json()["findings"])
    assert partial.json()["cameras"]["available"] is True and partial.json()["masks"]["available"] is True
    assert auditor.get("/api/v1/compliance/report.pdf").status_code == 200

    # A tampered audit trail shows in the report.
    engine = create_engine(Settings(database_url=database_url).sqlalchemy_url)  # type: ignore[call-arg]
    with engine.begin() as conn:
        seq = conn.execute(text("SELECT MIN(seq) FROM gateway_audit WHERE action = 'visitors.declare'")).scalar()
        conn.execute(text("UPDATE gateway_audit SET actor = 'someone-else' WHERE seq = :seq"), {"seq": seq})
    engine.dispose()
    tampered = auditor.get("/api/v1/compliance/report").json()
    assert tampered["audit_trail"]["chain_ok"] is False and tampered["audit_trail"]["first_bad_seq"] == seq
    assert any(f.startswith("audit trail:") for f in tampered["findings"])
