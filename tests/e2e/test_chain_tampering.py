"""The audit trail and the register against someone who can write the database (issue 23, item 5),
on running services (processes, real NATS, PostgreSQL, the S3 server): the probe's rewrite, a
truncation and a deleted checkpoint are each reported by /api/v1/audit/verify and `csuctl audit
verify` with the first entry they can no longer vouch for; an export is checked offline by
`csuctl audit verify --export` with the public key alone, and a tampered one fails; a register cut
short is reported by /api/v1/register/verify. (The segment ledger: tests/integration/
test_ledger_anchoring.py.)

Checkpoints every 10 entries and heads published every 3 s here (CSU_CHAIN_CHECKPOINT_*), so a
test needs tens of entries, not hundreds: each consultation of the trail is one."""

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from services.common.clock import SystemClock, to_us
from services.common.objectstore.s3 import S3Store
from services.common.signing import Signer
from services.requisition import register
from tests.e2e.test_csuctl_admin import ROOT, csuctl, engine_of, rows
from tests.support.platform import Platform, wait_for
from tests.support.servers import S3Server
from tests.support.tampering import cut_register, rewrite_audit_from, rewrite_export, truncate_audit

pytestmark = pytest.mark.e2e
FAST = {"CSU_CHAIN_CHECKPOINT_ENTRIES": "10", "CSU_CHAIN_CHECKPOINT_MINUTES": "0.05"}


def _fast_cadence() -> dict:  # type: ignore[type-arg]
    """FAST's cadence, for entries a test writes itself (a version without cadence takes none)."""
    try:
        from services.common.anchoring import Cadence
    except ImportError:
        return {}
    return {"cadence": Cadence.of(10, 0.05)}


CADENCE = _fast_cadence()


def head(engine: Engine) -> int:
    return rows(engine, "SELECT seq FROM gateway_audit_head WHERE id = 1")[0][0]


def trail_of(platform: Platform, entries: int) -> tuple[httpx.Client, Engine, int]:
    """A running gateway whose trail holds at least `entries` entries; returns the seq its published
    head has reached at least (entries go on being added: every consultation is one)."""
    platform.env |= FAST
    platform.start(["ingest", "gateway"])
    auditor = platform.client("auditor")
    for _ in range(entries):
        assert auditor.get("/api/v1/audit", params={"limit": 1}).status_code == 200  # each one is audited
    engine = engine_of(platform.env["CSU_DATABASE_URL"])
    reached = wait_for(lambda: head(engine) >= entries and head(engine), 30, "the entries in the trail")
    wait_for(
        lambda: auditor.get("/api/v1/audit/verify").json().get("anchored_through", reached) >= reached,
        30,
        "the head published outside the database",
    )
    return auditor, engine, reached


def checkpoints(engine: Engine) -> list[int]:
    return [seq for (seq,) in rows(engine, "SELECT seq FROM gateway_audit_checkpoints ORDER BY seq")]


def test_the_probes_rewrite_is_found_with_the_first_entry_no_longer_vouched_for(platform: Platform) -> None:
    auditor, engine, last = trail_of(platform, 130)
    assert auditor.get("/api/v1/audit/verify").json()["ok"] is True
    # Rewrite from just after a checkpoint that is followed by others (deleted by the attack).
    target = max(seq for seq in checkpoints(engine) if seq <= last - 20) + 1
    rewrite_audit_from(engine, target, "someone-else")

    verdict = auditor.get("/api/v1/audit/verify").json()
    assert verdict["ok"] is False and verdict["first_bad_seq"] == target, verdict
    result = csuctl(platform, "audit", "verify", "--json")
    assert result.returncode == 1, result.stdout + result.stderr
    assert json.loads(result.stdout)["first_bad_seq"] == target
    engine.dispose()


def test_deleting_the_last_entries_is_found_against_the_published_head(platform: Platform) -> None:
    auditor, engine, published = trail_of(platform, 40)
    # A checkpoint a later published head goes past (the default: for a version without checkpoints).
    cut = max((seq for seq in checkpoints(engine) if seq < published), default=published - 5)
    removed = head(engine)
    truncate_audit(engine, cut)

    # The consultation itself is appended after the cut before the walk: the first entry that can
    # no longer be vouched for is the first of those removed that it did not replace.
    verdict = auditor.get("/api/v1/audit/verify").json()
    assert verdict["ok"] is False and cut < verdict["first_bad_seq"] <= removed, (cut, removed, verdict)
    assert "published outside the database" in verdict["problem"], verdict
    result = csuctl(platform, "audit", "verify", "--json")
    assert result.returncode == 1, result.stdout + result.stderr
    assert cut < json.loads(result.stdout)["first_bad_seq"] <= removed, result.stdout
    engine.dispose()


def test_a_deleted_checkpoint_is_a_failure(platform: Platform) -> None:
    auditor, engine, _ = trail_of(platform, 110)
    earlier = max((seq for seq in checkpoints(engine) if seq < 100), default=0)
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM gateway_audit_checkpoints WHERE seq = 100")

    verdict = auditor.get("/api/v1/audit/verify").json()
    assert verdict["ok"] is False and verdict["first_bad_seq"] == earlier + 1, verdict
    assert "checkpoint due at entry 100" in verdict["problem"] and "missing" in verdict["problem"]
    engine.dispose()


def read_export(path: Path):  # type: ignore[no-untyped-def]
    from services.gateway.identity import audit_export

    return audit_export.read(path)


def offline_csuctl(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """csuctl on the auditor's machine: the file and the key, no database, NATS or store settings."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    return subprocess.run(
        [sys.executable, "-m", "services.csuctl", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip


def test_an_export_is_verified_offline_from_the_file_and_the_public_key(platform: Platform, tmp_path: Path) -> None:
    auditor, engine, published = trail_of(platform, 45)
    key = tmp_path / "csu-public.pem"
    key.write_text(Signer.from_file(Path(platform.env["CSU_SIGNING_KEY_FILE"])).public_pem())

    for fmt in ("csv", "json"):
        response = auditor.get("/api/v1/audit/export", params={"format": fmt})
        assert response.status_code == 200, response.text
        exported = tmp_path / f"audit.{fmt}"
        exported.write_bytes(response.content)
        verified = offline_csuctl(
            tmp_path, "audit", "verify", "--export", str(exported), "--public-key", str(key), "--json"
        )
        assert verified.returncode == 0, verified.stdout + verified.stderr
        document = json.loads(verified.stdout)
        assert document["ok"] is True and document["first_seq"] == 1 and document["last_seq"] >= published, document
        assert document["signed_through"] == document["last_seq"] and document["published_heads"] >= 1

        # The probe's rewrite done to the file: found after the last checkpoint before it.
        forged = tmp_path / f"forged.{fmt}"
        rewrite_export(exported, forged, fmt, seq=23)
        refused = offline_csuctl(
            tmp_path, "audit", "verify", "--export", str(forged), "--public-key", str(key), "--json"
        )
        assert refused.returncode == 1, refused.stdout + refused.stderr
        signed = max(seq for seq in read_export(exported).checkpoints if seq < 23)
        assert json.loads(refused.stdout)["first_bad_seq"] == signed + 1
    # A listing (filtered) cannot be vouched for as a chain, and says so (exit 2).
    listing = tmp_path / "listing.csv"
    listing.write_bytes(auditor.get("/api/v1/audit/export", params={"action": "audit.search"}).content)
    result = offline_csuctl(tmp_path, "audit", "verify", "--export", str(listing), "--public-key", str(key))
    assert result.returncode == 2 and "listing" in result.stderr, result.stdout + result.stderr
    engine.dispose()


def test_a_register_cut_short_is_found_against_the_published_head(platform: Platform, s3: S3Server) -> None:
    platform.env |= FAST
    platform.start(["ingest", "requisition", "gateway"])
    engine = engine_of(platform.env["CSU_DATABASE_URL"])
    # Entries as the service writes them (signed with the deployment's key, checkpoints at its
    # cadence), then its head published.
    signer = Signer.from_file(Path(platform.env["CSU_SIGNING_KEY_FILE"]))
    with Session(engine) as s:
        for n in range(1, 16):
            register.append(
                s, signer, time_us=to_us(SystemClock().now()), kind="extraction", request_id=f"r{n}",
                request_number=f"2026-{n:04d}", actor="manager-1", payload={"camera_id": "cam-1"}, **CADENCE,
            )  # fmt: skip
        s.commit()
    bucket = S3Store(
        s3.endpoint, s3.access_key, s3.secret_key, "us-east-1", platform.env.get("CSU_BUCKET_ANCHORS", "csu-anchors")
    )
    if hasattr(bucket, "retained_keys"):  # (a version without published heads has nothing to wait for)
        wait_for(
            lambda: any(f"{15:020d}" in key for key in bucket.retained_keys("register/")), 30, "the register's head"
        )
    auditor = platform.client("auditor")
    assert auditor.get("/api/v1/register/verify").json()["ok"] is True
    cut_register(engine, 12)

    verdict = auditor.get("/api/v1/register/verify").json()
    assert verdict["ok"] is False and verdict["first_bad_seq"] == 13, verdict
    assert "entries 13-15 were removed" in verdict["problem"]
    engine.dispose()
