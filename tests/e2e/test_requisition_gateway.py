"""Judicial requisitions end to end through the gateway (a process, with the federation door for the
police nationale), against the archive and the requisition service built in-process on the test's
servers with one ManualClock: bad input, expiry of an unclaimed buffer, the legal hold, the
manager's re-authenticated approval, the package, its verifier, the handover and the register."""

import hashlib
import io
import json
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import httpx
import jwt
import pytest
import pyzipper
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.common.clock import from_us
from tests.support.accounts import totp_code
from tests.support.archive import START, T0_US
from tests.support.browser import ARTIFACTS, chromium
from tests.support.pki import TestCA
from tests.support.platform import Platform, wait_for
from tests.support.requisition import LoopThread, RequisitionStack, pdf_bytes, png_bytes, stack_behind_platform
from tests.support.servers import S3Server, free_port

pytestmark = pytest.mark.e2e
CAM = "cam-a"
S = 1_000_000
MB = 1024 * 1024


def iso(us: int) -> str:
    return from_us(us).astimezone(UTC).isoformat().replace("+00:00", "Z")


class Env:
    def __init__(self, platform: Platform, st: RequisitionStack, bg: LoopThread, federation: dict) -> None:
        self.platform, self.st, self.bg, self.federation = platform, st, bg, federation

    def tick(self) -> dict:
        return self.bg.run(self.st.tick())

    def advance(self, delta: timedelta) -> None:
        self.st.clock.advance(delta)

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        return self.st.keys(self.st.store(bucket), prefix)

    def officer(self, subject: str = "officer-4711") -> httpx.Client:
        now = int(time.time())
        claims = {
            "iss": "pn-metz", "aud": "csu-gateway", "sub": subject, "name": "Brigadier Martin", "iat": now,
            "exp": now + 300, "hab_ref": "HAB-PN-57-001", "hab_exp": now + 86400 * 30,
        }  # fmt: skip
        token = jwt.encode(claims, self.federation["key"], algorithm="EdDSA")
        context = self.federation["ca"].client_context(self.federation["client"])
        return httpx.Client(
            base_url=self.federation["url"], verify=context, headers={"Authorization": f"Bearer {token}"}, timeout=120
        )


@pytest.fixture
def env(platform: Platform, tmp_path: Path, database_url: str, s3: S3Server, nats_url: str) -> Iterator[Env]:
    ca = TestCA(tmp_path / "pki")
    server = ca.issue("gateway", server=True)
    port = free_port()
    federation = {
        "CSU_MAX_UPLOAD_BYTES": str(MB),
        "CSU_FEDERATION_PORT": str(port),
        "CSU_FEDERATION_CERT_FILE": str(server.cert),
        "CSU_FEDERATION_KEY_FILE": str(server.key),
        "CSU_FEDERATION_CA_FILE": str(ca.issued.cert),
    }
    with stack_behind_platform(
        platform, tmp_path, database_url, s3, nats_url, camera=(CAM, "Place d'Armes"), seconds=12,
        services=["ingest", "gateway"], env=federation, max_upload_bytes=MB,
    ) as (st, bg):  # fmt: skip
        key = Ed25519PrivateKey.generate()
        client = ca.issue("pn-metz-client")
        public = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        registered = platform.admin().post(
            "/api/v1/partners",
            json={
                "id": "pn-metz",
                "name": "Police nationale — CSP Metz",
                "client_certificate": client.cert_pem,
                "assertion_public_key": public.decode(),
                "camera_groups": ["default"],
                "actions": ["live", "export"],
                "ptz_priority": 60,
                "convention_ref": "CONV-57-2026-014",
                "convention_expires": (datetime.now(UTC) + timedelta(days=365)).isoformat(),
            },
        )
        assert registered.status_code == 201, registered.text
        yield Env(platform, st, bg, {"ca": ca, "client": client, "key": key, "url": f"https://127.0.0.1:{port}"})


def request_body(**changes: object) -> dict:
    return {
        "requesting_service": "Commissariat de police de Metz",
        "officer": "Lieutenant Martin",
        "officer_contact": "01 02 03 04 05",
        "case_reference": "PV 2026/00123",
        "reason": "vol à l'arraché, place d'Armes",
        "channel": "phone",
        "ranges": [{"camera_id": CAM, "start": iso(T0_US + 2 * S), "end": iso(T0_US + 9 * S)}],
    } | changes


def form(document: bytes, filename: str = "requisition.pdf", **fields: str) -> dict:
    values = {
        "number": "REQ-2026-0042",
        "authority": "Procureur de la République de Metz",
        "authority_kind": "magistrate",
        "issued_on": (START - timedelta(days=1)).date().isoformat(),
    } | fields
    return {"data": values, "files": {"document": (filename, document, "application/octet-stream")}}


def test_bad_input_wrong_transitions_and_expiry_of_an_unclaimed_buffer(env: Env) -> None:
    platform = env.platform
    supervisor = platform.client("supervisor")
    supervisor.timeout = httpx.Timeout(300)

    def refused(response: httpx.Response, status: int, fragment: str) -> None:
        assert response.status_code == status, response.text
        assert fragment in json.dumps(response.json()["detail"], ensure_ascii=False), response.json()

    refused(supervisor.post("/api/v1/requisitions", json=request_body(officer="")), 422, "officer")
    refused(supervisor.post("/api/v1/requisitions", json=request_body(ranges=[])), 422, "ranges")
    unknown = [request_body()["ranges"][0] | {"camera_id": "nope"}]
    refused(supervisor.post("/api/v1/requisitions", json=request_body(ranges=unknown)), 404, "unknown camera")
    future = [{"camera_id": CAM, "start": iso(T0_US + 3600 * 48 * S), "end": iso(T0_US + 3600 * 49 * S)}]
    refused(supervisor.post("/api/v1/requisitions", json=request_body(ranges=future)), 422, "in the future")
    old = [{"camera_id": CAM, "start": iso(T0_US - 20 * 86_400 * S), "end": iso(T0_US - 19 * 86_400 * S)}]
    refused(supervisor.post("/api/v1/requisitions", json=request_body(ranges=old)), 422, "keeps 15 days")
    assert platform.client("clerk").post("/api/v1/requisitions", json=request_body()).status_code == 403

    created = supervisor.post("/api/v1/requisitions", json=request_body())
    assert created.status_code == 201, created.text
    request = created.json()
    rid = request["id"]
    assert request["state"] == "requested" and request["ranges"][0]["camera_name"] == "Place d'Armes"

    # Wrong order: 409 with what the state allows; an operator may not extract (no export).
    manager = platform.client("manager")
    refused(
        manager.post(
            f"/api/v1/requisitions/{rid}/approve", json={"password": Platform.USER_PASSWORD, "totp": "000000"}
        ),
        409,
        "cannot approve",
    )
    refused(
        supervisor.post(f"/api/v1/requisitions/{rid}/requisition", **form(pdf_bytes())),
        409,
        "cannot record the signed requisition",
    )
    assert platform.client("operator").post(f"/api/v1/requisitions/{rid}/extract").status_code == 403
    assert env.officer().post(f"/api/v1/requisitions/{rid}/extract").status_code in (403, 404)

    extracted = supervisor.post(f"/api/v1/requisitions/{rid}/extract")
    assert extracted.status_code == 200, extracted.text
    body = extracted.json()
    assert body["state"] == "extracted" and body["buffer_deadline"] and body["parts"][0]["segments"]
    assert body["extraction_progress"] is None and body["package_progress"] is None
    # The progress the console polls while an extraction or a package build runs: none now; for exporters only.
    idle = {"extraction_progress": None, "package_progress": None}
    assert supervisor.get(f"/api/v1/requisitions/{rid}/progress").json() == idle
    assert platform.client("operator").get(f"/api/v1/requisitions/{rid}/progress").status_code == 403
    refused(supervisor.post(f"/api/v1/requisitions/{rid}/extract"), 409, "cannot extract")
    assert len(env.keys(env.st.settings.bucket_extractions, f"req/{rid}/")) > 1

    # Bad uploads: not multipart, not a document, path tricks, too large — nothing stored.
    refused(supervisor.post(f"/api/v1/requisitions/{rid}/requisition", content=pdf_bytes()), 415, "multipart/form-data")
    refused(
        supervisor.post(f"/api/v1/requisitions/{rid}/requisition", **form(b"MZ\x90\x00" * 100, "scan.pdf")),
        422,
        "not a PDF, JPEG or PNG",
    )
    refused(
        supervisor.post(f"/api/v1/requisitions/{rid}/requisition", **form(pdf_bytes(), "..\\..\\scan.pdf")),
        422,
        "plain name",
    )
    refused(
        supervisor.post(f"/api/v1/requisitions/{rid}/requisition", **form(png_bytes()[:60], "scan.png")),
        422,
        "cannot be read",
    )
    refused(
        supervisor.post(f"/api/v1/requisitions/{rid}/requisition", **form(pdf_bytes(), authority_kind="mayor")),
        422,
        "authority_kind",
    )
    refused(
        supervisor.post(f"/api/v1/requisitions/{rid}/requisition", **form(pdf_bytes() + b"\0" * (MB + 10))),
        413,
        "larger than",
    )
    assert env.keys(env.st.settings.bucket_documents) == []
    assert supervisor.get(f"/api/v1/requisitions/{rid}").json()["state"] == "extracted"

    # No requisition before the footage's own retention ends: buffer purged, request expired.
    deadline = datetime.fromisoformat(body["buffer_deadline"].replace("Z", "+00:00"))
    env.advance(deadline - env.st.clock.now() - timedelta(minutes=1))
    assert env.tick()["expired"] == 0  # a minute before: kept
    env.advance(timedelta(minutes=2))
    done = env.tick()
    assert done["expired"] == 1 and done["purged"] == 1, done
    after = supervisor.get(f"/api/v1/requisitions/{rid}").json()
    assert after["state"] == "expired" and after["purge_reason"] == "expired" and after["parts"] == []
    assert after["transitions"][-1]["by"] == "system"
    assert env.keys(env.st.settings.bucket_extractions) == []
    auditor = platform.client("auditor")
    register = auditor.get("/api/v1/register").json()
    assert [e["kind"] for e in register] == ["extraction", "purge"]
    assert register[1]["details"]["reason"] == "expired" and register[1]["details"]["segments"]
    assert auditor.get("/api/v1/register/verify").json()["ok"] is True
    purges = wait_for(
        lambda: auditor.get("/api/v1/audit", params={"action": "requisition.purge"}).json(), 60, "the purge audited"
    )
    assert purges[0]["actor"] == "system"
    refused(supervisor.post(f"/api/v1/requisitions/{rid}/requisition", **form(pdf_bytes())), 409, "expired")


def test_requisition_to_delivery_with_a_verifiable_package(env: Env, tmp_path: Path) -> None:
    platform = env.platform
    officer = env.officer()
    created = officer.post("/api/v1/requisitions", json=request_body(channel="federation"))
    assert created.status_code == 201, created.text
    rid = created.json()["id"]
    assert created.json()["partner"] == "pn-metz" and created.json()["channel"] == "federation"
    # Another partner's officer... is the same partner here; a CSU clerk cannot see it at all.
    assert platform.client("clerk").get(f"/api/v1/requisitions/{rid}").status_code == 403

    supervisor = platform.client("supervisor")
    supervisor.timeout = httpx.Timeout(300)
    assert supervisor.post(f"/api/v1/requisitions/{rid}/extract").status_code == 200

    # The officer sends the signed requisition through the federation door.
    signed = pdf_bytes()
    received = officer.post(f"/api/v1/requisitions/{rid}/requisition", **form(signed))
    assert received.status_code == 200, received.text
    body = received.json()
    assert body["state"] == "requisition_received" and body["legal_hold"] and body["buffer_deadline"] is None
    document_id = body["requisition"]["document_id"]
    scan = platform.client("manager").get(f"/api/v1/requisitions/{rid}/documents/{document_id}")
    assert scan.status_code == 200 and scan.content == signed
    # Stored encrypted: the object in the documents bucket is not the PDF.
    stored = env.keys(env.st.settings.bucket_documents)
    assert len(stored) == 1 and not env.st.ctx.documents.get(stored[0]).startswith(b"%PDF")

    # Legal hold: long past the footage's retention, the extract stays.
    env.advance(timedelta(days=20))
    env.tick()
    assert len(env.keys(env.st.settings.bucket_extractions, f"req/{rid}/")) > 1

    # The manager approves: password and TOTP again.
    manager = platform.client("manager")
    username = "manager-all"
    wrong = manager.post(f"/api/v1/requisitions/{rid}/approve", json={"password": "not-the-password", "totp": "123456"})
    assert wrong.status_code == 401 and "re-authentication failed" in wrong.json()["detail"]
    no_totp = manager.post(f"/api/v1/requisitions/{rid}/approve", json={"password": Platform.USER_PASSWORD})
    assert no_totp.status_code == 401 and "TOTP" in no_totp.json()["detail"]
    assert (
        platform.client("supervisor")
        .post(f"/api/v1/requisitions/{rid}/approve", json={"password": Platform.USER_PASSWORD})
        .status_code
        == 403
    )
    approved = manager.post(
        f"/api/v1/requisitions/{rid}/approve",
        json={"password": Platform.USER_PASSWORD, "totp": totp_code(platform.gateway, username), "comment": "conforme"},
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["approval"]["manager"] == username and approved.json()["approval"]["signature"]

    # The package: built, downloaded, verified — and tampering detected.
    short = supervisor.post(f"/api/v1/requisitions/{rid}/package", json={"password": "short"})
    assert short.status_code == 422 and "12 characters" in short.json()["detail"]
    built = supervisor.post(f"/api/v1/requisitions/{rid}/package")
    assert built.status_code == 200, built.text
    package = built.json()["package"]
    download = supervisor.get(f"/api/v1/requisitions/{rid}/package")
    assert download.status_code == 200 and download.headers["x-package-sha256"] == package["sha256"]
    assert hashlib.sha256(download.content).hexdigest() == package["sha256"]
    fingerprint = platform.client("auditor").get("/api/v1/register/public-key").json()["fingerprint"]
    assert package["public_key_fingerprint"] == fingerprint
    folder = tmp_path / "usb"
    with zipfile.ZipFile(io.BytesIO(download.content)) as z:
        z.extractall(folder)
    root = next(folder.iterdir())
    assert root.name == f"CSU-{created.json()['number']}"
    names = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert {"manifest.json", "manifest.sig", "public-key.pem", "README.txt", "csu-verify.py", "SHA256SUMS.txt"} <= set(
        names
    )
    videos = [n for n in names if n.startswith("video/")]
    assert len(videos) == 1
    verify = [sys.executable, "-I", "-S", str(root / "csu-verify.py"), str(root), "--fingerprint", fingerprint]
    ok = subprocess.run(verify, capture_output=True, text=True, timeout=120, encoding="utf-8")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "RESULT: OK" in ok.stdout and "REQ-2026-0042" in ok.stdout and "manager-all" in ok.stdout
    manifest = json.loads((root / "manifest.json").read_text())
    part = manifest["cameras"][0]["parts"][0]
    assert manifest["cameras"][0]["name"] == "Place d'Armes" and part["segments"] and part["mask_versions"]
    assert manifest["request"]["partner"] == "pn-metz" and manifest["approval"]["manager"] == username
    assert "+0" in part["start_paris"] and part["start_utc"].endswith("Z")

    # The MP4 plays: PyAV (video + the timestamp subtitle track) and Chromium.
    video = root / videos[0]
    with av.open(str(video)) as container:
        assert [s.codec_context.name for s in container.streams.subtitles] == ["mov_text"]
        frames = sum(1 for _ in container.decode(container.streams.video[0]))
    assert frames >= 50
    with chromium() as browser:
        page = browser.new_page()
        page.goto(video.as_uri())
        page.wait_for_function(
            "() => { const v = document.querySelector('video'); return v && v.readyState >= 2; }", timeout=60_000
        )
        page.evaluate("() => { const v = document.querySelector('video'); v.muted = true; return v.play(); }")
        page.wait_for_function("() => document.querySelector('video').currentTime > 0.5", timeout=60_000)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "requisition-package-video.png"))

    for tamper in ("video", "manifest", "added"):
        copy = tmp_path / f"tampered-{tamper}"
        shutil.copytree(root, copy)
        if tamper == "video":
            target = copy / videos[0]
            data = bytearray(target.read_bytes())
            data[len(data) // 2] ^= 0xFF
            target.write_bytes(bytes(data))
        elif tamper == "manifest":
            target = copy / "manifest.json"
            target.write_text(target.read_text().replace("REQ-2026-0042", "REQ-2026-0043"))
        else:
            (copy / "video" / "notes.txt").write_text("added")
        bad = subprocess.run([*verify[:4], str(copy), *verify[5:]], capture_output=True, text=True, timeout=120)
        assert bad.returncode == 1 and "RESULT: FAILED" in bad.stdout, (tamper, bad.stdout)

    # Rebuilt with a password: AES-256 zip, opened with it.
    encrypted = supervisor.post(f"/api/v1/requisitions/{rid}/package", json={"password": "correct horse battery"})
    assert encrypted.status_code == 200 and encrypted.json()["package"]["encrypted"] is True
    package = encrypted.json()["package"]
    assert package["sha256"] != download.headers["x-package-sha256"]

    # The federated recipient downloads it and confirms what they hold.
    fetched = officer.get(f"/api/v1/requisitions/{rid}/package")
    assert fetched.status_code == 200 and hashlib.sha256(fetched.content).hexdigest() == package["sha256"]
    with pyzipper.AESZipFile(io.BytesIO(fetched.content)) as z:
        z.setpassword(b"correct horse battery")
        inner = tmp_path / "decrypted"
        z.extractall(inner)
    assert (
        subprocess.run(
            [
                sys.executable,
                "-I",
                "-S",
                str(next(inner.iterdir()) / "csu-verify.py"),
                str(inner),
                "--fingerprint",
                fingerprint,
            ],
            capture_output=True,
            timeout=120,
        ).returncode
        == 0
    )
    wrong_hash = officer.post(
        f"/api/v1/requisitions/{rid}/delivery", json={"medium": "download", "package_sha256": "0" * 64}
    )
    assert wrong_hash.status_code == 422 and "not the package's" in wrong_hash.json()["detail"]
    usb_by_police = officer.post(
        f"/api/v1/requisitions/{rid}/delivery",
        json={
            "medium": "usb",
            "package_sha256": package["sha256"],
            "recipient_name": "x",
            "recipient_service": "y",
            "recipient_id": "z",
        },
    )
    assert usb_by_police.status_code == 403
    delivered = officer.post(
        f"/api/v1/requisitions/{rid}/delivery", json={"medium": "download", "package_sha256": package["sha256"]}
    )
    assert delivered.status_code == 200, delivered.text
    done = delivered.json()
    assert done["state"] == "delivered" and done["delivery"]["recipient_partner"] == "pn-metz"
    assert done["delivery"]["package_sha256"] == package["sha256"] and done["purge_reason"] == "delivered"
    assert env.keys(env.st.settings.bucket_extractions) == [] and env.keys(env.st.settings.bucket_exports) == []
    assert officer.get(f"/api/v1/requisitions/{rid}/package").status_code == 404
    receipt = supervisor.get(f"/api/v1/requisitions/{rid}/receipt")
    assert receipt.status_code == 200 and receipt.content.startswith(b"%PDF")

    # Was it useful? Then the statistics, the register, the audit trail.
    assert (
        officer.post(
            f"/api/v1/requisitions/{rid}/feedback", json={"useful": True, "comment": "auteur identifié"}
        ).status_code
        == 200
    )
    assert supervisor.post(f"/api/v1/requisitions/{rid}/close", json={"reason": "remis"}).json()["state"] == "closed"
    stats = platform.client("manager").get("/api/v1/requisitions/statistics").json()
    assert stats["delivered"] == 1 and stats["useful_to_investigation"]["yes"] == 1
    assert stats["per_month"][0]["requesting_service"] == "Commissariat de police de Metz"
    assert any(t["step"] == "requested->delivered" and t["count"] == 1 for t in stats["lead_times"])
    auditor = platform.client("auditor")
    kinds = [e["kind"] for e in auditor.get("/api/v1/register").json()]
    assert kinds == ["extraction", "requisition_received", "approval", "handover", "purge", "closure"]
    assert auditor.get("/api/v1/register/verify").json()["ok"] is True
    pdf = auditor.get("/api/v1/register/export", params={"format": "pdf"})
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    csv_export = auditor.get("/api/v1/register/export", params={"format": "csv"})
    assert csv_export.status_code == 200 and "handover" in csv_export.text
    assert platform.client("operator").get("/api/v1/register").status_code == 403
    steps = {
        "requisition.extract",
        "requisition.receive",
        "requisition.approve",
        "export.download",
        "requisition.deliver",
    }
    target = f"requisition:{created.json()['number']}"
    wait_for(
        lambda: steps <= {e["action"] for e in auditor.get("/api/v1/audit", params={"target": target}).json()},
        60,
        "every step in the audit trail",
    )
