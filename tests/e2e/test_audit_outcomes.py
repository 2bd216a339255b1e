"""Audited actions carry their real outcome (issue 23 item 6): a four-eyes refusal of a mask
approval is in the trail as refused, with the reason, and the approval that follows as ok."""

import pytest

from tests.support.platform import Platform, wait_for
from tests.support.servers import free_port

pytestmark = pytest.mark.e2e
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


def test_a_refused_mask_approval_is_audited_as_refused(platform: Platform) -> None:
    platform.env["CSU_MASKING_GRPC"] = f"127.0.0.1:{free_port()}"
    platform.start(["ingest", "masking", "gateway"])
    admin, supervisor, auditor = platform.admin(), platform.client("supervisor"), platform.client("auditor")
    assert admin.put("/api/v1/authorisations/PREF-69-2026-010", json=AUTHORISATION).status_code == 200
    camera = {
        "id": "cam-four-eyes", "name": "Quatre yeux", "main_url": f"rtsp://127.0.0.1:{free_port()}/h264",
        "position": {"lat": 45.76, "lon": 4.83}, "groups": ["centre"],
        "profile": {"width": 1920, "height": 1080, "fps": 12.5}, "authorisation_ref": "PREF-69-2026-010",
        "state": "commissioning",
    }  # fmt: skip
    assert admin.post("/api/v1/cameras", json=camera).status_code == 201
    masks = "/api/v1/cameras/cam-four-eyes/masks"
    body = {"polygons": [{"points": [[0.1, 0.1], [0.4, 0.1], [0.4, 0.4]]}]}
    assert supervisor.post(masks, json=body).status_code == 201

    own = supervisor.post(f"{masks}/1/approve")  # its author: four-eyes refuses
    assert own.status_code == 409 and "four-eyes" in own.json()["detail"], own.text
    approved = admin.post(f"{masks}/1/approve")
    assert approved.status_code == 200, approved.text

    def approvals() -> list[dict]:
        found = auditor.get("/api/v1/audit", params={"action": "mask.approve", "target": "camera:cam-four-eyes"})
        entries = [e for e in found.json() if e["action"] == "mask.approve"]
        return entries if len(entries) == 2 else []

    entries = sorted(wait_for(approvals, 30, "both approvals in the trail"), key=lambda e: e["seq"])
    refused, ok = entries
    assert (refused["actor"], refused["outcome"]) == ("supervisor-all", "refused"), refused
    assert "four-eyes" in refused["details"]["reason"] and refused["details"]["status"] == 409
    assert refused["details"]["version"] == 1
    assert (ok["actor"], ok["outcome"]) == ("admin", "ok"), ok
    assert "reason" not in ok["details"]
    # One entry per action: the intent kept while the action ran is gone once its outcome is in.
    assert auditor.get("/api/v1/audit/verify").json()["ok"] is True
