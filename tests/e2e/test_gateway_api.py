"""The gateway's REST surface against running services: answers, errors, health, OpenAPI."""

import socket
import time

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from tests.support.platform import Platform, wait_for
from tests.support.servers import free_port

pytestmark = pytest.mark.e2e


def test_answers_and_clear_errors(platform: Platform) -> None:
    platform.env["CSU_SEGMENT_DURATION_S"] = "2"
    platform.start(["ingest", "masking", "archive", "gateway"])  # the two built-in demo cameras
    api = platform.client("operator")

    cameras = api.get("/api/v1/cameras").json()
    assert {c["id"] for c in cameras} == {"demo-1", "demo-2"}
    assert all(c["retention_days"] == 15 for c in cameras)

    def error(path: str, status: int, fragment: str, **params: str) -> None:
        response = api.get(path, params=params)
        assert response.status_code == status, (path, params, response.text)
        assert fragment in response.json()["detail"], response.json()

    error("/api/v1/cameras/nope/segments", 404, "unknown camera 'nope'")
    error("/api/v1/cameras/demo-1/segments", 400, "not an ISO 8601", start="last tuesday")
    error("/api/v1/cameras/demo-1/segments", 400, "no time zone", start="2026-11-25T10:00:00")
    error(
        "/api/v1/cameras/demo-1/segments",
        400,
        "start must be before end",
        start="2026-11-25T12:00:00Z",
        end="2026-11-25T10:00:00Z",
    )
    error(
        "/api/v1/cameras/demo-1/segments",
        400,
        "wider than the camera's 15-day retention",
        start="2026-10-01T00:00:00Z",
        end="2026-11-25T00:00:00Z",
    )
    error("/api/v1/segments/0123456789abcdef/content", 404, "unknown segment", justification="looking for it")
    error("/api/v1/cameras/nope/live", 404, "unknown camera")

    segment = wait_for(lambda: api.get("/api/v1/cameras/demo-1/segments").json(), 60, "a demo segment")[0]
    url = f"/api/v1/segments/{segment['id']}/content"
    missing_why = api.get(url)
    assert missing_why.status_code == 422 and "justification" in missing_why.text
    api.params = {"justification": "checking byte ranges"}
    too_far = api.get(url, headers={"Range": f"bytes={segment['bytes']}-"})
    assert too_far.status_code == 416 and too_far.headers["content-range"] == f"bytes */{segment['bytes']}"
    tail = api.get(url, headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and len(tail.content) == 10
    assert tail.content == api.get(url).content[-10:]

    ws_url = platform.gateway.replace("http://", "ws://") + "/api/v1/cameras/nope/live/stream"
    auth = {"Authorization": api.headers["Authorization"]}
    with pytest.raises(ConnectionClosed) as closed, ws_connect(ws_url, open_timeout=10, additional_headers=auth) as ws:
        ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4404

    spec = api.get("/openapi.json").json()
    for path in (
        "/api/v1/cameras",
        "/api/v1/cameras/{camera_id}/segments",
        "/api/v1/segments/{segment_id}/content",
        "/api/v1/cameras/{camera_id}/live",
    ):
        assert path in spec["paths"], path


def test_every_service_reports_health_readiness_and_metrics(platform: Platform) -> None:
    names = ["ingest", "masking", "archive", "requisition", "gateway"]
    platform.start(names)
    for name in names:
        base = platform.processes[name].health_url.removesuffix("/healthz")
        assert httpx.get(f"{base}/healthz").json()["status"] == "ok"
        ready = httpx.get(f"{base}/readyz")
        assert ready.status_code == 200 and ready.json()["ready"] is True, (name, ready.text)
        assert "process_cpu_seconds_total" in httpx.get(f"{base}/metrics").text
    archive_checks = httpx.get(platform.processes["archive"].health_url.replace("healthz", "readyz")).json()["checks"]
    assert archive_checks == {"nats": True, "database": True, "object_store": True, "grpc": True}
    for name in ("ingest", "masking", "requisition"):
        checks = httpx.get(platform.processes[name].health_url.replace("healthz", "readyz")).json()["checks"]
        assert checks["grpc"] is True, (name, checks)

    # Each stops on SIGTERM by itself, NATS still up, as on a rollout; a kill loses its last writes.
    with platform.admin() as admin:  # audited: the gateway's audit writer has work in hand
        assert admin.get("/api/v1/cameras").status_code == 200
    assert platform.stop() == [], platform.logs()


def test_not_ready_while_a_dependency_is_down(platform: Platform) -> None:
    platform.env["CSU_S3_ENDPOINT"] = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    from services.launcher import ServiceProcess, health_url

    archive = ServiceProcess(
        "archive", platform.env, platform.workdir / "archive.log", health_url("archive", platform.env)
    )
    archive.start()
    try:
        base = archive.health_url.removesuffix("/healthz")
        wait_for(lambda: httpx.get(f"{base}/healthz").status_code == 200, 30, "archive to answer /healthz")
        time.sleep(1)
        ready = httpx.get(f"{base}/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["object_store"] is False
    finally:
        archive.stop()


def test_not_ready_until_its_grpc_api_is_served(platform: Platform) -> None:
    """Connected to NATS and its database, masking still refuses the gateway's calls while its gRPC
    port is taken: it must not say it is ready (the gateway would answer 503 to a ready service)."""
    from services.launcher import ServiceProcess, health_url

    host, port = platform.env["CSU_MASKING_GRPC"].rsplit(":", 1)
    taken = socket.create_server((host, int(port)))
    masking = ServiceProcess(
        "masking", platform.env, platform.workdir / "masking.log", health_url("masking", platform.env)
    )
    masking.start()
    try:
        readyz = masking.health_url.replace("/healthz", "/readyz")
        checks = wait_for(
            lambda: (c := httpx.get(readyz).json()["checks"]).get("nats") and c.get("database") and c,
            60,
            "masking to reach NATS and its database",
        )
        assert checks["grpc"] is False and httpx.get(readyz).status_code == 503, checks
        taken.close()  # masking retries the port: then, and only then, it is ready
        wait_for(lambda: httpx.get(readyz).status_code == 200, 30, "masking ready once its gRPC API is served")
    finally:
        taken.close()
        assert masking.stop(), masking.log_tail(40)
