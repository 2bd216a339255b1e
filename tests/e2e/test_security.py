"""The gateway's door: authentication, TOTP and lockout, habilitations, the role x endpoint matrix,
and the tamper-evident audit trail that refuses actions it cannot record."""

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from services.common.settings import Settings
from tests.support.accounts import login, totp_code
from tests.support.platform import Platform, wait_for
from tests.support.servers import RestartableNats

pytestmark = pytest.mark.e2e

# The specification, written out on its own (not derived from the code's role table): which roles
# may call which endpoint. Every other role must get 403.
MATRIX: dict[tuple[str, str], set[str]] = {
    ("GET", "/api/v1/cameras/demo-1/segments"): {"operator", "supervisor", "manager"},
    ("GET", "/api/v1/cameras/demo-1/live"): {"operator", "supervisor", "manager", "police_nationale"},
    ("GET", "/api/v1/users"): {"admin"},
    ("GET", "/api/v1/audit"): {"auditor", "admin"},
    ("GET", "/api/v1/audit/verify"): {"auditor", "admin"},
    ("GET", "/api/v1/audit/export"): {"auditor", "admin"},
    ("GET", "/api/v1/segments/{segment}/content"): {"operator", "supervisor", "manager"},
    ("GET", "/api/v1/cameras/demo-1/timeline?start={start}&end={end}"): {"operator", "supervisor", "manager"},
    ("GET", "/api/v1/cameras.csv"): {"admin"},
    ("GET", "/api/v1/authorisations"): {"admin", "auditor"},
    ("GET", "/api/v1/cameras/demo-1/masks"): {"supervisor", "admin"},
    ("GET", "/api/v1/cameras/demo-1/mask-errors"): {"supervisor", "admin"},
    ("GET", "/api/v1/register"): {"manager", "auditor"},
    ("GET", "/api/v1/register/verify"): {"manager", "auditor"},
    ("GET", "/api/v1/requisitions/statistics"): {"manager", "auditor"},
    ("GET", "/api/v1/citizen-requests"): {"clerk", "operator", "supervisor", "manager"},
    ("GET", "/api/v1/compliance/report"): {"auditor", "admin"},
    ("GET", "/api/v1/visitors/export"): {"auditor", "admin"},
}
ROLES = ["operator", "supervisor", "manager", "maintenance", "clerk", "auditor", "admin", "police_nationale"]


def _segment(api: httpx.Client) -> str:
    return wait_for(lambda: api.get("/api/v1/cameras/demo-1/segments").json(), 60, "a demo segment")[0]["id"]


def test_every_api_endpoint_needs_a_session(platform: Platform) -> None:
    platform.start(["ingest", "gateway"])
    anonymous = httpx.Client(base_url=platform.gateway, timeout=10)
    spec = anonymous.get("/openapi.json").json()
    checked = 0
    for path, methods in spec["paths"].items():
        for method in methods:
            if path == "/api/v1/auth/login":
                continue
            url = re.sub(r"\{[^}]+\}", "x", path)
            response = anonymous.request(method.upper(), url)
            assert response.status_code == 401, (method, path, response.status_code, response.text)
            checked += 1
    assert checked >= 10
    forged = anonymous.get("/api/v1/cameras", headers={"Authorization": "Bearer not-a-real-token"})
    assert forged.status_code == 401 and "log in again" in forged.json()["detail"]


def test_role_by_endpoint_matrix(platform: Platform) -> None:
    platform.env["CSU_SEGMENT_DURATION_S"] = "2"
    platform.start(["ingest", "masking", "archive", "requisition", "gateway"])
    segment = _segment(platform.client("operator"))
    now, iso = datetime.now(UTC), "%Y-%m-%dT%H:%M:%SZ"
    times = {"start": (now - timedelta(hours=1)).strftime(iso), "end": now.strftime(iso)}
    for role in ROLES:
        client = platform.admin() if role == "admin" else platform.client(role)
        for (method, path), allowed in MATRIX.items():
            params = {"justification": "matrix test"} if "content" in path else {}
            response = client.request(method, path.format(segment=segment, **times), params=params or None)
            if role in allowed:
                assert response.status_code in (200, 206), (role, path, response.status_code, response.text)
            else:
                assert response.status_code == 403, (role, path, response.status_code, response.text)
                assert response.json()["detail"], "a refusal says why"
        visible = {c["id"] for c in client.get("/api/v1/cameras").json()}
        assert visible == (set() if role == "clerk" else {"demo-1", "demo-2"}), (role, visible)


def test_totp_lockout_and_sessions(platform: Platform) -> None:
    platform.env["CSU_LOGIN_MAX_FAILURES"] = "3"
    platform.start(["ingest", "gateway"])
    base = platform.gateway
    platform.client("operator").close()  # creates and enrols operator-all
    anon = httpx.Client(base_url=base, timeout=10)
    credentials = {"username": "operator-all", "password": platform.USER_PASSWORD}

    assert anon.post("/api/v1/auth/login", json=credentials).json()["status"] == "totp_required"
    wrong = anon.post("/api/v1/auth/login", json=credentials | {"totp": "000000"})
    assert wrong.status_code == 401 and "TOTP" in wrong.json()["detail"]
    good = anon.post("/api/v1/auth/login", json=credentials | {"totp": totp_code(base, "operator-all")})
    assert good.status_code == 200 and good.json()["status"] == "ok"
    assert good.json()["user"]["habilitation"]["problem"] is None
    assert "csu_session" in good.headers["set-cookie"] and "HttpOnly" in good.headers["set-cookie"]

    # Sessions end at once: logout, and an admin revoking them.
    session = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {good.json()['access_token']}"})
    assert session.get("/api/v1/cameras").status_code == 200
    assert session.post("/api/v1/auth/logout").status_code == 204
    assert session.get("/api/v1/cameras").status_code == 401
    other = login(base, "operator-all", platform.USER_PASSWORD)
    assert platform.admin().post("/api/v1/users/operator-all/revoke-sessions").json()["revoked"] >= 1
    assert other.get("/api/v1/cameras").status_code == 401

    # Three wrong passwords lock the account, even against the right password, which then answers
    # as an unknown account does (the lock is not told to whoever is trying).
    for _ in range(3):
        assert anon.post("/api/v1/auth/login", json=credentials | {"password": "wrong-password!"}).status_code == 401
    locked = anon.post("/api/v1/auth/login", json=credentials)
    unknown = anon.post("/api/v1/auth/login", json={"username": "nobody", "password": "whatever-password"})
    assert (locked.status_code, locked.json()) == (unknown.status_code, unknown.json())
    assert unknown.status_code == 401 and unknown.json()["detail"] == "wrong username or password"

    # Bad input: clear 4xx, nothing created.
    admin = platform.admin()
    weak = admin.post(
        "/api/v1/users", json={"username": "weak", "display_name": "W", "role": "operator", "password": "short"}
    )
    assert weak.status_code == 422 and "at least 12" in weak.json()["detail"]
    bad_role = admin.post(
        "/api/v1/users",
        json={"username": "rolex", "display_name": "R", "role": "superuser", "password": "a-long-Passw0rd-x"},
    )
    assert bad_role.status_code == 422 and "unknown role 'superuser'" in bad_role.json()["detail"]
    bad_group = admin.post(
        "/api/v1/users",
        json={"username": "groupx", "display_name": "G", "role": "operator", "password": "a-long-Passw0rd-x",
              "camera_groups": ["Centre!"]},
    )  # fmt: skip
    assert bad_group.status_code == 422 and "invalid camera group 'Centre!'" in bad_group.json()["detail"]
    patched = admin.patch(f"/api/v1/users/{credentials['username']}", json={"camera_groups": ["north", "Nord Est"]})
    assert patched.status_code == 422 and "invalid camera group 'Nord Est'" in patched.json()["detail"]
    assert {u["username"] for u in admin.get("/api/v1/users").json()}.isdisjoint({"rolex", "groupx"})
    extra = admin.post(
        "/api/v1/users",
        json={
            "username": "extra1",
            "display_name": "E",
            "role": "operator",
            "password": "a-long-Passw0rd-x",
            "is_root": True,
        },
    )
    assert extra.status_code == 422
    assert not {"weak", "r", "extra1"} & {u["username"] for u in admin.get("/api/v1/users").json()}


def test_habilitations_limit_video(platform: Platform) -> None:
    platform.start(["ingest", "gateway"])
    platform.create_user("unvalidated", "operator", prefecture_validated=None)
    platform.create_user("expired", "operator", expires="2025-01-01T00:00:00Z")
    platform.create_user("north-only", "operator", groups=["north"])
    for username, fragment in [("unvalidated", "not been validated"), ("expired", "expired on 2025-01-01")]:
        client = login(platform.gateway, username, platform.USER_PASSWORD)
        refused = client.get("/api/v1/cameras/demo-1/live")
        assert refused.status_code == 403 and fragment in refused.json()["detail"]
        assert fragment in client.get("/api/v1/auth/me").json()["habilitation"]["problem"]
    north = login(platform.gateway, "north-only", platform.USER_PASSWORD)
    assert north.get("/api/v1/cameras").json() == []
    # A camera outside one's groups answers exactly as one that does not exist: status and words.
    for path in ("/live", "", "/segments", "/ptz"):
        hidden, unknown = north.get(f"/api/v1/cameras/demo-1{path}"), north.get(f"/api/v1/cameras/no-such{path}")
        assert hidden.status_code == unknown.status_code == 404, (path, hidden.text, unknown.text)
        assert hidden.json()["detail"].replace("demo-1", "X") == unknown.json()["detail"].replace("no-such", "X")
    # And every other route naming a camera, as the running gateway lists them: a sibling route
    # that answers 403 for another district's camera (and 404 for none) tells which cameras exist.
    schema = httpx.get(f"{platform.gateway}/openapi.json", timeout=30).json()
    params = {"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T01:00:00Z", "at": "2026-01-01T00:00:00Z"}
    params |= {"justification": "probe", "stream": "main"}
    checked = []
    for template, methods in schema["paths"].items():
        if "{camera_id}" not in template:
            continue
        for method in set(methods) & {"get", "post", "put", "patch", "delete"}:
            answers = [
                north.request(method, template.replace("{camera_id}", camera), params=params, json={})
                for camera in ("demo-1", "no-such")
            ]
            hidden, unknown = (
                (a.status_code, a.text.replace(c, "X")) for a, c in zip(answers, ("demo-1", "no-such"), strict=True)
            )
            assert hidden == unknown, (method, template, hidden, unknown)
            checked.append((method, template, hidden[0]))
    assert sum(status == 404 for *_, status in checked) >= 10, checked
    limited = platform.admin().patch(
        "/api/v1/users/north-only", json={"camera_groups": ["default"], "playback_days": 2}
    )
    assert limited.status_code == 200
    north = login(platform.gateway, "north-only", platform.USER_PASSWORD)  # the change ended its sessions
    assert {c["id"] for c in north.get("/api/v1/cameras").json()} == {"demo-1", "demo-2"}
    old = north.get(
        "/api/v1/cameras/demo-1/segments", params={"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T01:00:00Z"}
    )
    assert old.status_code == 403 and "last 2 days" in old.json()["detail"]


def test_audit_trail_records_verifies_and_detects_tampering(platform: Platform, database_url: str) -> None:
    platform.start(["ingest", "gateway"])
    operator = platform.client("operator")
    assert operator.get("/api/v1/cameras/demo-1/live").status_code == 200
    httpx.post(f"{platform.gateway}/api/v1/auth/login", json={"username": "operator-all", "password": "nope-nope-nope"})
    auditor = platform.client("auditor")
    entries = wait_for(
        lambda: [
            e
            for e in auditor.get("/api/v1/audit", params={"limit": 1000}).json()
            if e["action"] == "auth.login" and e["outcome"] == "refused"
        ],
        30,
        "the refused login",
    )
    assert entries[0]["actor"] == "operator-all" and entries[0]["target"] == "user:operator-all"
    # The gateway's start named its signing key (it was published before the refused login).
    keys = auditor.get("/api/v1/audit", params={"action": "keys"}).json()
    assert [(e["action"], e["actor"]) for e in keys] == [("keys.in_use", "system")], keys
    by_actor = auditor.get("/api/v1/audit", params={"actor": "operator-all"}).json()
    assert {"auth.login"} <= {e["action"] for e in by_actor}
    csv = auditor.get("/api/v1/audit/export", params={"format": "csv"})
    assert csv.status_code == 200 and csv.text.startswith("seq,time,actor")
    verdict = auditor.get("/api/v1/audit/verify").json()
    assert verdict["ok"] is True, verdict

    engine = create_engine(Settings(database_url=database_url).sqlalchemy_url)  # type: ignore[call-arg]
    with engine.begin() as conn:
        target = conn.execute(
            text("SELECT seq FROM gateway_audit WHERE action = 'auth.login' ORDER BY seq LIMIT 1")
        ).scalar()
        conn.execute(text("UPDATE gateway_audit SET justification = 'rewritten' WHERE seq = :seq"), {"seq": target})
    verdict = auditor.get("/api/v1/audit/verify").json()
    assert verdict["ok"] is False and verdict["first_bad_seq"] == target
    with engine.begin() as conn:
        conn.execute(text("UPDATE gateway_audit SET justification = '' WHERE seq = :seq"), {"seq": target})
        conn.execute(text("DELETE FROM gateway_audit WHERE seq = :seq"), {"seq": target + 1})
    verdict = auditor.get("/api/v1/audit/verify").json()
    assert verdict["ok"] is False and verdict["first_bad_seq"] == target + 1 and "missing" in verdict["problem"]
    engine.dispose()


def test_actions_are_refused_when_the_audit_trail_is_down(platform: Platform, tmp_path: Path) -> None:
    with RestartableNats(tmp_path / "own-nats") as nats:
        platform.env["CSU_NATS_URL"] = nats.url
        platform.start(["ingest", "gateway"])
        admin = platform.admin()
        auditor = platform.client("auditor")
        nats.stop()
        body = {
            "username": "during-outage",
            "display_name": "X",
            "role": "operator",
            "password": "a-long-Passw0rd-x",
            "camera_groups": ["*"],
        }
        refused = admin.post("/api/v1/users", json=body)
        assert refused.status_code == 503 and "audit trail is unavailable" in refused.json()["detail"]
        consulting = auditor.get("/api/v1/audit")  # consulting the trail is itself recorded
        assert consulting.status_code == 503
        nats.start()
        wait_for(lambda: admin.get("/api/v1/users").status_code == 200, 60, "the gateway to reconnect")
        assert "during-outage" not in {u["username"] for u in admin.get("/api/v1/users").json()}
