"""The police nationale's door: mutual TLS plus signed user assertions, bounded by the city's grant."""

import ssl
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from tests.support.pki import TestCA
from tests.support.platform import Platform, wait_for
from tests.support.servers import free_port

pytestmark = pytest.mark.e2e
AUDIENCE = "csu-gateway"


def public_pem(key: Ed25519PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def assertion(
    key: Ed25519PrivateKey,
    issuer: str,
    subject: str = "officer-4711",
    lifetime: int = 300,
    hab_exp: float | None = None,
    **extra: object,
) -> str:
    now = int(time.time())
    claims = {
        "iss": issuer,
        "aud": AUDIENCE,
        "sub": subject,
        "name": "Brigadier Martin",
        "iat": now,
        "exp": now + lifetime,
        "hab_ref": "HAB-PN-57-001",
        "hab_exp": hab_exp or now + 86400 * 30,
    } | extra
    return jwt.encode(claims, key, algorithm="EdDSA")


@pytest.fixture
def federation(platform: Platform, tmp_path: Path) -> dict:
    ca = TestCA(tmp_path / "pki")
    server = ca.issue("gateway", server=True)
    port = free_port()
    platform.env |= {
        "CSU_FEDERATION_PORT": str(port),
        "CSU_FEDERATION_CERT_FILE": str(server.cert),
        "CSU_FEDERATION_KEY_FILE": str(server.key),
        "CSU_FEDERATION_CA_FILE": str(ca.issued.cert),
    }
    platform.start(["ingest", "masking", "gateway"])
    key = Ed25519PrivateKey.generate()
    client = ca.issue("pn-metz-client")
    registered = platform.admin().post(
        "/api/v1/partners",
        json={
            "id": "pn-metz",
            "name": "Police nationale — CSP Metz",
            "client_certificate": client.cert_pem,
            "assertion_public_key": public_pem(key),
            "camera_groups": ["default"],
            "actions": ["live", "ptz"],
            "ptz_priority": 65,
            "convention_ref": "CONV-57-2026-014",
            "convention_expires": (datetime.now(UTC) + timedelta(days=365)).isoformat(),
        },
    )
    assert registered.status_code == 201, registered.text
    return {"ca": ca, "client": client, "key": key, "url": f"https://127.0.0.1:{port}"}


def partner_client(federation: dict, token: str | None, cert: object = "default") -> httpx.Client:
    context = federation["ca"].client_context(federation["client"] if cert == "default" else cert)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=federation["url"], verify=context, headers=headers, timeout=15)


def test_partner_users_work_within_the_citys_grant(platform: Platform, federation: dict) -> None:
    officer = partner_client(federation, assertion(federation["key"], "pn-metz"))
    cameras = officer.get("/api/v1/cameras")
    assert cameras.status_code == 200 and {c["id"] for c in cameras.json()} == {"demo-1", "demo-2"}
    assert officer.get("/api/v1/cameras/demo-1/live").status_code == 200
    # The partner was not granted export, and the role never gives users or the audit trail.
    assert officer.get("/api/v1/cameras/demo-1/segments").status_code == 403
    assert officer.get("/api/v1/users").status_code == 403
    # Session tokens are not accepted on this door, nor assertions on the main one.
    local = platform.client("operator")
    assert partner_client(federation, local.headers["Authorization"][7:]).get("/api/v1/cameras").status_code == 401
    assert (
        httpx.get(
            f"{platform.gateway}/api/v1/cameras",
            headers={"Authorization": f"Bearer {assertion(federation['key'], 'pn-metz')}"},
        ).status_code
        == 401
    )

    # The officer appears in the audit trail under their own identity, with the partner.
    auditor = platform.client("auditor")
    entries = wait_for(
        lambda: [
            e
            for e in auditor.get("/api/v1/audit", params={"actor": "pn-metz:officer-4711"}).json()
            if e["action"] == "live.refused" or e["partner"] == "pn-metz"
        ],
        30,
        "partner entries",
    )
    assert all(e["partner"] == "pn-metz" and e["role"] == "police_nationale" for e in entries)


def test_bad_credentials_are_refused_and_recorded(platform: Platform, federation: dict, tmp_path: Path) -> None:
    key = federation["key"]
    cases = {
        "no assertion": partner_client(federation, None),
        "expired assertion": partner_client(
            federation, assertion(key, "pn-metz", lifetime=-120, iat=int(time.time()) - 400)
        ),
        "too long-lived": partner_client(federation, assertion(key, "pn-metz", lifetime=86400)),
        "other partner's name": partner_client(federation, assertion(key, "pn-nancy")),
        "wrong audience": partner_client(federation, assertion(key, "pn-metz", aud="someone-else")),
        "signed by another key": partner_client(federation, assertion(Ed25519PrivateKey.generate(), "pn-metz")),
        "malformed": partner_client(federation, "not.a.jwt"),
    }
    for what, client in cases.items():
        response = client.get("/api/v1/cameras")
        assert response.status_code == 401, (what, response.text)
    expired_hab = partner_client(federation, assertion(key, "pn-metz", hab_exp=time.time() - 86400))
    refused = expired_hab.get("/api/v1/cameras/demo-1/live")
    assert refused.status_code == 403 and "habilitation expired" in refused.json()["detail"]

    # Certificates: none, expired, from another CA — the handshake itself fails.
    ca = federation["ca"]
    for cert in (None, ca.issue("pn-expired", expired=True), TestCA(tmp_path / "rogue").issue("rogue")):
        with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError, ssl.SSLError)):
            partner_client(federation, assertion(key, "pn-metz"), cert=cert).get("/api/v1/cameras")
    # A valid certificate of the city's CA that is not registered to a partner.
    stranger = partner_client(federation, assertion(key, "pn-metz"), cert=ca.issue("unregistered"))
    assert stranger.get("/api/v1/cameras").status_code == 401

    auditor = platform.client("auditor")
    refusals = wait_for(
        lambda: [e for e in auditor.get("/api/v1/audit", params={"action": "federation"}).json()],
        30,
        "refusals in the audit trail",
    )
    assert len(refusals) >= 7 and all(e["outcome"] == "refused" for e in refusals)


def test_revoking_the_partner_cuts_everything_at_once(platform: Platform, federation: dict) -> None:
    token = assertion(federation["key"], "pn-metz")
    officer = partner_client(federation, token)
    assert officer.get("/api/v1/cameras").status_code == 200
    ws_url = federation["url"].replace("https://", "wss://") + "/api/v1/cameras/demo-1/live/stream"
    context = federation["ca"].client_context(federation["client"])
    with ws_connect(
        ws_url, ssl=context, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=15
    ) as ws:
        assert "avc1" in ws.recv(timeout=15)  # the live view is flowing
        revoked = platform.admin().post("/api/v1/partners/pn-metz/revoke")
        assert revoked.status_code == 200 and revoked.json()["active"] is False
        assert officer.get("/api/v1/cameras").status_code == 401
        with pytest.raises(ConnectionClosed) as closed:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                ws.recv(timeout=20)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


def test_access_stops_at_the_conventions_expiry_after_a_warning(platform: Platform, federation: dict) -> None:
    admin = platform.admin()
    officer = partner_client(federation, assertion(federation["key"], "pn-metz"))
    (listed,) = admin.get("/api/v1/partners").json()
    assert listed["convention_ref"] == "CONV-57-2026-014" and listed["convention_status"] == "valid"

    # Every action of the partner's users names the convention in the audit trail.
    ws_url = federation["url"].replace("https://", "wss://") + "/api/v1/cameras/demo-1/live/stream"
    context = federation["ca"].client_context(federation["client"])
    token = officer.headers["Authorization"][7:]
    with ws_connect(
        ws_url, ssl=context, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=15
    ) as ws:
        assert "avc1" in ws.recv(timeout=15)
    auditor = platform.client("auditor")
    wait_for(
        lambda: [
            e
            for e in auditor.get("/api/v1/audit", params={"actor": "pn-metz:officer-4711"}).json()
            if e["action"] == "live.start" and e["details"].get("convention") == "CONV-57-2026-014"
        ],
        30,
        "a partner entry naming the convention",
    )

    # Bad input changes nothing: a convention already over, no reference, an unknown action.
    now = datetime.now(UTC)
    good = {"convention_ref": "CONV-57-2027-002", "camera_groups": ["default"], "actions": ["live"]}
    for bad in (
        good | {"convention_expires": (now - timedelta(hours=1)).isoformat()},
        good | {"convention_ref": "", "convention_expires": (now + timedelta(days=9)).isoformat()},
        good | {"actions": ["users"], "convention_expires": (now + timedelta(days=9)).isoformat()},
    ):
        refused = admin.put("/api/v1/partners/pn-metz/convention", json=bad)
        assert refused.status_code == 422, refused.text
    assert admin.get("/api/v1/partners").json()[0]["convention_ref"] == "CONV-57-2026-014"
    # Only administrators record conventions.
    assert (
        platform.client("supervisor")
        .put(
            "/api/v1/partners/pn-metz/convention",
            json=good | {"convention_expires": (now + timedelta(days=9)).isoformat()},
        )
        .status_code
        == 403
    )

    # A renewal that ends within the month: warned at once, still allowed until the expiry.
    expires = datetime.now(UTC) + timedelta(seconds=20)
    renewed = admin.put("/api/v1/partners/pn-metz/convention", json=good | {"convention_expires": expires.isoformat()})
    assert renewed.status_code == 200, renewed.text
    assert renewed.json()["convention_status"] == "expiring" and renewed.json()["actions"] == ["live"]
    warning = wait_for(
        lambda: [
            a
            for a in admin.get("/api/v1/alarms", params={"kind": "partner"}).json()
            if a["kind"] == "partner.convention_expiring"
        ],
        30,
        "the convention's warning",
    )
    assert len(warning) == 1 and "CONV-57-2027-002" in warning[0]["message"] and "pn-metz" in warning[0]["message"]
    assert officer.get("/api/v1/cameras").status_code == 200
    # The new scope holds: PTZ is no longer granted.
    no_ptz = officer.get("/api/v1/cameras/demo-1/ptz")
    assert no_ptz.status_code == 403 and "does not allow ptz" in no_ptz.json()["detail"]

    # Past the expiry the partner's users are refused, and the refusal names the convention.
    time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.5)
    refused = officer.get("/api/v1/cameras")
    assert refused.status_code == 401 and "convention CONV-57-2027-002" in refused.json()["detail"], refused.text
    assert "expired" in refused.json()["detail"]
    assert admin.get("/api/v1/partners").json()[0]["convention_status"] == "expired"
    wait_for(
        lambda: [
            e
            for e in auditor.get("/api/v1/audit", params={"action": "federation"}).json()
            if e["outcome"] == "refused" and e["details"].get("convention") == "CONV-57-2027-002"
        ],
        30,
        "the refusal in the audit trail",
    )

    # The compliance report lists the convention, its scope and its end, and flags the partner
    # still registered under an expired convention.
    report = auditor.get("/api/v1/compliance/report")
    assert report.status_code == 200, report.text
    section = report.json()["partner_conventions"]
    assert section["available"] is True
    assert [
        (p["id"], p["convention_ref"], p["camera_groups"], p["actions"], p["status"]) for p in section["partners"]
    ] == [("pn-metz", "CONV-57-2027-002", ["default"], ["live"], "expired")]
    assert section["partners"][0]["expires"][:19] == expires.astimezone(UTC).isoformat()[:19]
    assert any(
        f.startswith("partner pn-metz: convention CONV-57-2027-002 expired") for f in report.json()["findings"]
    ), report.json()["findings"]
    pdf = auditor.get("/api/v1/compliance/report.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
