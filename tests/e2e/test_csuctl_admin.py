"""The admin CLI against running services (processes, real NATS, S3, PostgreSQL): accounts and
habilitations made with `csuctl users` log in through the gateway, bad input is refused with exit
code 2 and nothing changed, every change is audited first (nothing happens when the trail is away),
`csuctl audit verify` finds tampering; and `csuctl keys rotate` keeps every earlier signature
(statements, register, audit checkpoints) verifying through the services while a signature by an
unknown key is still refused."""

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session
from typer.testing import CliRunner

from services.common import db
from services.common.clock import SystemClock, to_us
from services.common.hashchain import link_hash
from services.common.settings import Settings
from services.common.signing import Signer
from services.csuctl.app import app
from services.gateway.identity import audit_log
from services.requisition import register
from services.requisition.models import RegisterEntry, RegisterHead
from tests.support.accounts import login
from tests.support.audit import audit_events
from tests.support.platform import Platform, wait_for
from tests.support.servers import free_port

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
STRONG = "Un-mot-de-passe-solide-42"


def csuctl(platform: Platform, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real command, in its own process, as ops run it."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("CSU_")} | (env or platform.env)
    return subprocess.run(
        [sys.executable, "-m", "services.csuctl", *args],
        cwd=ROOT, env=full, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip


def cli(platform: Platform, *args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    """The same command in this process (quicker, for the many refusals)."""
    return CliRunner().invoke(app, list(args), env=env or platform.env)


def document(stdout: str):  # type: ignore[no-untyped-def]
    """The JSON document (in-process, library log lines may come first on stdout)."""
    lines = stdout.splitlines(keepends=True)
    return json.loads("".join(lines[next(i for i, line in enumerate(lines) if line[:1] in "[{") :]))


def offline_cameras(platform: Platform, *ids: str) -> None:
    """Cameras whose source never answers: the services run, nothing is decoded."""
    platform.set_cameras(
        [{"id": i, "name": i, "source": f"rtsp://127.0.0.1:{free_port()}/none", "masks": []} for i in ids]
    )


def engine_of(database_url: str) -> Engine:
    return db.make_engine(Settings(database_url=database_url))  # type: ignore[call-arg]


def rows(engine: Engine, sql: str) -> list:  # type: ignore[type-arg]
    with engine.connect() as conn:
        return list(conn.execute(text(sql)))


def refused(result, *words: str) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == 2, (result.exit_code, result.output)
    for word in words:
        assert word in result.output, (word, result.output)


@pytest.mark.timeout(600)  # a dozen csuctl processes on a loaded test machine
def test_users_habilitations_and_the_audit_trail(platform: Platform, tmp_path: Path, database_url: str) -> None:
    offline_cameras(platform, "cam-u1")
    platform.start(["ingest", "gateway"])

    created = csuctl(
        platform, "users", "create", "alice", "--role", "operator", "--groups", "centre,nord",
        "--expires", "2030-06-30", "--prefecture-ref", "PREF-69-2026-001", "--prefecture-date", "2026-01-15",
        "--display-name", "Alice Martin", "--json",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    alice = json.loads(created.stdout)  # stdout is the document alone: logs go to stderr
    password = alice.pop("initial_password")
    assert len(password) >= 12
    assert alice["camera_groups"] == ["centre", "nord"] and alice["role"] == "operator"
    assert alice["expires"] == "2030-06-30T22:00:00Z"  # until the end of that day, Paris summer time
    assert alice["prefecture_validated"] == "2026-01-14T23:00:00Z"  # that day, Paris winter time
    assert alice["prefecture_ref"] == "PREF-69-2026-001" and alice["granted_by"].startswith("csuctl:")
    session = login(platform.gateway, "alice", password)
    assert session.get("/api/v1/cameras").status_code == 200

    # A password from a file is used as given and not printed; friendly output by default.
    (tmp_path / "bob.pw").write_text(STRONG + "\n")
    bob = cli(platform, "users", "create", "bob", "--role", "auditor", "--password-file", str(tmp_path / "bob.pw"))
    assert bob.exit_code == 0, bob.output
    assert "created account bob (auditor)" in bob.stdout and STRONG not in bob.output
    assert "no prefecture validation recorded" in bob.stdout
    login(platform.gateway, "bob", STRONG).close()

    # Refusals: exit code 2, the problem named, nothing created.
    (tmp_path / "weak.pw").write_text("short\n")
    create = ("users", "create", "carol")
    refused(cli(platform, "users", "create", "alice", "--role", "operator"), "'alice' already exists")
    refused(cli(platform, *create, "--role", "superuser"), "unknown role 'superuser'", "operator")
    refused(cli(platform, *create, "--role", "clerk", "--expires", "30/06/2030"), "is not a date")
    refused(cli(platform, *create, "--role", "clerk", "--expires", "2030-06-30T10:00"), "no time zone")
    refused(cli(platform, *create, "--role", "clerk", "--expires", "2020-01-01"), "in the past")
    refused(
        cli(platform, *create, "--role", "clerk", "--prefecture-ref", "P-1", "--prefecture-date", "2099-01-01"),
        "in the future",
    )
    refused(cli(platform, *create, "--role", "clerk", "--prefecture-ref", "P-1"), "go together")
    refused(cli(platform, *create, "--role", "clerk", "--groups", "Centre!"), "invalid camera group 'Centre!'")
    refused(cli(platform, *create, "--role", "clerk", "--playback-days", "90"), "playback-days")
    refused(cli(platform, "users", "create", "Carol", "--role", "clerk"), "username")
    refused(cli(platform, *create, "--role", "clerk", "--password-file", str(tmp_path / "weak.pw")), "at least 12")
    assert cli(platform, *create).exit_code == 2  # --role is required
    # Fail closed: with the audit trail unreachable nothing is created.
    away = platform.env | {"CSU_NATS_URL": f"nats://127.0.0.1:{free_port()}"}
    refused(cli(platform, *create, "--role", "clerk", env=away), "audit trail is unavailable", "nothing was done")
    listed = document(cli(platform, "users", "list", "--json").stdout)
    assert {u["username"] for u in listed} == {"admin", "alice", "bob"}
    assert "alice" in cli(platform, "users", "list").stdout

    # The habilitation changes; alice's open session ends with her old groups.
    changed = cli(
        platform, "users", "habilitation", "alice", "--groups", "sud", "--expires", "never",
        "--granted-by", "M. Dupont", "--json",
    )  # fmt: skip
    assert changed.exit_code == 0, changed.output
    alice = document(changed.stdout)
    assert alice["camera_groups"] == ["sud"] and alice["expires"] is None and alice["granted_by"] == "M. Dupont"
    assert alice["sessions_revoked"] >= 1 and alice["prefecture_ref"] == "PREF-69-2026-001"
    assert session.get("/api/v1/cameras").status_code == 401
    refused(cli(platform, "users", "habilitation", "alice"), "nothing to change")
    refused(cli(platform, "users", "habilitation", "nobody", "--groups", "sud"), "unknown account 'nobody'")
    refused(cli(platform, "users", "habilitation", "bob", "--prefecture-date", "2026-01-15"), "reference and its date")
    refused(cli(platform, "users", "habilitation", "bob", "--expires", "yesterday"), "is not a date")
    done = cli(
        platform, "users", "habilitation", "bob", "--prefecture-ref", "PREF-2", "--prefecture-date", "2026-02-01"
    )
    assert done.exit_code == 0 and "validated 2026-01-31T23:00:00Z" in done.stdout, done.output

    # Audited before acting, as csuctl:<user>, with the API's action names; never a password.
    published = asyncio.run(audit_events(platform.env["CSU_NATS_URL"], platform.nats_prefix))
    events = [e for e in published if e.actor.startswith("csuctl:")]
    assert [(e.action, e.target) for e in events] == [
        ("users.create", "user:alice"),
        ("users.create", "user:bob"),
        ("users.update", "user:alice"),
        ("users.update", "user:bob"),
    ]
    assert all(password not in e.details_json and STRONG not in e.details_json for e in events)

    # The gateway has chained them; the whole trail verifies with the deployment's keyring.
    engine = engine_of(database_url)
    count = "SELECT count(*) FROM gateway_audit WHERE actor LIKE 'csuctl:%'"
    wait_for(lambda: rows(engine, count)[0][0] == 4, 60, "csuctl's events in the chain")
    verified = csuctl(platform, "audit", "verify", "--json")
    assert verified.returncode == 0, verified.stderr
    report = json.loads(verified.stdout)
    assert report["ok"] is True and report["entries"] >= 4 and report["first_bad_seq"] is None
    assert report["trusted_keys"] == [Signer.from_file(Path(platform.env["CSU_SIGNING_KEY_FILE"])).fingerprint]
    assert "audit trail OK" in cli(platform, "audit", "verify").stdout

    # A rewritten entry breaks the chain: exit 1 and the entry named.
    with engine.begin() as conn:
        seq = conn.execute(
            text("SELECT min(seq) FROM gateway_audit WHERE actor LIKE 'csuctl:%' AND target = 'user:bob'")
        ).scalar()
        conn.execute(text("UPDATE gateway_audit SET target = 'user:mallory' WHERE seq = :s"), {"s": seq})
    broken = csuctl(platform, "audit", "verify", "--json")
    assert broken.returncode == 1, broken.stderr
    assert json.loads(broken.stdout)["first_bad_seq"] == seq
    friendly = cli(platform, "audit", "verify")
    assert friendly.exit_code == 1 and f"BROKEN at entry {seq}" in friendly.stdout
    no_key = {k: v for k, v in platform.env.items() if k != "CSU_SIGNING_KEY_FILE"}
    refused(cli(platform, "audit", "verify", env=no_key), "CSU_SIGNING_KEY_FILE is not set", "--public-key")
    engine.dispose()


def add_register_entries(engine: Engine, signer: Signer, numbers: range) -> None:
    with Session(engine) as s:
        for n in numbers:
            register.append(
                s, signer, time_us=to_us(SystemClock().now()), kind="extraction", request_id=f"r{n}",
                request_number=f"2026-{n:04d}", actor="manager-1", payload={"camera_id": "cam-k1"},
            )  # fmt: skip
        s.commit()


@pytest.mark.timeout(900)  # five services and restarts, on a loaded test machine
def test_key_rotation_keeps_earlier_signatures_verifying(platform: Platform, tmp_path: Path, database_url: str) -> None:
    offline_cameras(platform, "cam-k1", "cam-k2")
    platform.start(["ingest", "masking", "archive", "requisition", "gateway"])
    key_file = Path(platform.env["CSU_SIGNING_KEY_FILE"])
    old = Signer.from_file(key_file)
    engine = engine_of(database_url)
    supervisor, auditor = platform.client("supervisor"), platform.client("auditor")
    statement = {"text": "Checked on site: no window, garden or entrance of a home is in view."}

    # Signed with the old key: a statement (gateway), register entries (the requisition register).
    first = supervisor.post("/api/v1/cameras/cam-k1/no-private-area-statement", json=statement)
    assert first.status_code == 201 and first.json()["verified"] is True, first.text
    add_register_entries(engine, old, range(1, 3))

    rotated = csuctl(platform, "keys", "rotate", "--yes", "--json")
    assert rotated.returncode == 0, rotated.stderr
    rotation = json.loads(rotated.stdout)
    new = Signer.from_file(key_file)
    assert (rotation["old_fingerprint"], rotation["new_fingerprint"]) == (old.fingerprint, new.fingerprint)
    listed = document(cli(platform, "keys", "list", "--json").stdout)
    assert listed["current"] == new.fingerprint and listed["retired"] == [old.fingerprint]
    # The gateway signs the chain head with the key it runs with as it stops: the old one here.
    # Requisition is not restarted: verifying needs no restart, the keyring is re-read.
    for name in ("gateway", "masking"):
        platform.restart(name)

    second = supervisor.post("/api/v1/cameras/cam-k2/no-private-area-statement", json=statement)
    assert second.status_code == 201, second.text
    assert second.json()["verified"] is True and second.json()["public_key_pem"] == new.public_pem()
    earlier = supervisor.get("/api/v1/cameras/cam-k1/commissioning").json()["statement"]
    assert earlier["public_key_pem"] == old.public_pem() and earlier["verified"] is True

    add_register_entries(engine, new, range(3, 5))
    verdict = auditor.get("/api/v1/register/verify").json()
    assert verdict["ok"] is True and verdict["entries"] == 4, verdict

    # Audit checkpoints by both keys: the old one signed as the gateway stopped; the restarted
    # gateway's next checkpoint (hourly, or as it stops) is signed with the new key, as here.
    checkpoints = "SELECT seq, public_key FROM gateway_audit_checkpoints ORDER BY seq"
    old_seq = wait_for(
        lambda: [seq for seq, key in rows(engine, checkpoints) if key == old.public_pem()],
        60,
        "the checkpoint signed with the old key",
    )[-1]
    wait_for(
        lambda: rows(engine, "SELECT max(seq) FROM gateway_audit")[0][0] > old_seq,
        60,
        "entries after the rotation",
    )
    assert audit_log.checkpoint_now(engine, new, SystemClock()) is not None
    keys = {key for _, key in rows(engine, checkpoints)}
    assert keys == {old.public_pem(), new.public_pem()}
    assert auditor.get("/api/v1/audit/verify").json()["ok"] is True
    verified = csuctl(platform, "audit", "verify", "--json")
    assert verified.returncode == 0 and json.loads(verified.stdout)["ok"] is True, verified.stdout + verified.stderr

    # The archive's dry run is there too (nothing recorded from offline cameras: nothing to delete).
    dry = csuctl(platform, "segments", "sweep", "--dry-run", "--json")
    assert dry.returncode == 0 and json.loads(dry.stdout)["total"] == {"count": 0, "bytes": 0}, dry.stderr

    # A register entry signed by a key outside the keyring is still refused.
    Signer.generate(tmp_path / "forger.pem")
    forger = Signer.from_file(tmp_path / "forger.pem")
    with Session(engine) as s:
        head = s.get(RegisterHead, 1)
        assert head is not None
        entry = RegisterEntry(
            seq=head.seq + 1, time_us=to_us(SystemClock().now()), kind="purge", request_id="r9",
            request_number="2026-0009", actor="intruder", payload_json="{}", prev_hash=head.entry_hash,
            entry_hash="", signature="", key_fingerprint=forger.fingerprint,
        )  # fmt: skip
        entry.entry_hash = link_hash(head.entry_hash, register.hashed_fields(entry))
        entry.signature = forger.sign(register.signed_bytes(entry))
        head.seq, head.entry_hash = entry.seq, entry.entry_hash
        s.add(entry)
        s.add(head)
        s.commit()
    verdict = auditor.get("/api/v1/register/verify").json()
    assert verdict["ok"] is False and verdict["first_bad_seq"] == 5, verdict
    # Rotation bad input: no key configured, or the answer "no" at the prompt.
    no_key = {k: v for k, v in platform.env.items() if k != "CSU_SIGNING_KEY_FILE"}
    refused(cli(platform, "keys", "rotate", "--yes", env=no_key), "CSU_SIGNING_KEY_FILE is not set")
    declined = CliRunner().invoke(app, ["keys", "rotate"], env=platform.env, input="n\n")
    assert declined.exit_code == 1 and Signer.from_file(key_file).fingerprint == new.fingerprint
    engine.dispose()
