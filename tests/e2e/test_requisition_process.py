"""The requisition service as the deployment runs it: its own process next to the others, wired by
settings only (archive, buckets, keys), extracting real masked recordings of a demo camera; and
refusing to start without the deployment's signing key."""

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from services.launcher import ServiceProcess, health_url
from tests.support.archive import s3_store
from tests.support.platform import Platform, wait_for
from tests.support.servers import S3Server, unique

pytestmark = pytest.mark.e2e
CAMERA = "demo-1"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def test_extraction_through_the_service_processes(platform: Platform, s3: S3Server) -> None:
    buckets = {name: unique(f"{name[:3]}-") for name in ("extractions", "documents", "exports")}
    platform.env |= {f"CSU_BUCKET_{name.upper()}": bucket for name, bucket in buckets.items()}
    platform.env["CSU_SEGMENT_DURATION_S"] = "2"
    platform.start(["ingest", "masking", "archive", "requisition", "gateway"])
    supervisor = platform.client("supervisor")
    supervisor.timeout = httpx.Timeout(300)
    segments = wait_for(
        lambda: (s := supervisor.get(f"/api/v1/cameras/{CAMERA}/segments").json()) and len(s) >= 3 and s,
        120,
        "three stored segments",
    )
    start = datetime.fromisoformat(segments[0]["start"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(segments[2]["end"].replace("Z", "+00:00")) - timedelta(milliseconds=200)
    created = supervisor.post(
        "/api/v1/requisitions",
        json={
            "requesting_service": "Gendarmerie — BR de Metz",
            "officer": "Adjudant Petit",
            "case_reference": "PV 2026/777",
            "reason": "dégradations sur mobilier urbain",
            "channel": "email",
            "ranges": [{"camera_id": CAMERA, "start": iso(start), "end": iso(end)}],
        },
    )
    assert created.status_code == 201, created.text
    rid = created.json()["id"]
    extracted = supervisor.post(f"/api/v1/requisitions/{rid}/extract")
    assert extracted.status_code == 200, extracted.text
    part = extracted.json()["parts"][0]
    assert part["camera_name"] and part["frames"] > 0 and part["clip_sha256"]
    archived = {s["id"]: s["sha256"] for s in segments}
    assert all(archived.get(g["id"], g["sha256"]) == g["sha256"] for g in part["segments"])
    # Copies in the deployment's extraction bucket: the segments unchanged, and the package's clip.
    buffer = s3_store(s3, buckets["extractions"])
    keys = [info.key for info in buffer.list(f"req/{rid}/")]
    assert len(keys) == len(part["segments"]) + 1
    # The cancelled request leaves nothing behind.
    cancelled = supervisor.post(f"/api/v1/requisitions/{rid}/cancel", json={"reason": "demande retirée par la BR"})
    assert cancelled.status_code == 200 and cancelled.json()["purge_reason"] == "cancelled", cancelled.text
    assert list(buffer.list(f"req/{rid}/")) == []
    kinds = [e["kind"] for e in platform.client("manager").get("/api/v1/register").json()]
    assert kinds == ["extraction", "cancellation", "purge"]


def test_refuses_to_start_without_the_signing_key(platform: Platform) -> None:
    env = {k: v for k, v in platform.env.items() if k != "CSU_SIGNING_KEY_FILE"}
    process = ServiceProcess(
        "requisition", env, platform.workdir / "logs" / "requisition-nokey.log", health_url("requisition", env)
    )
    process.start()
    try:
        wait_for(lambda: not process.running, 60, "the service to stop")
        assert "CSU_SIGNING_KEY_FILE is not set" in process.log_tail(80)
    finally:
        process.stop()
