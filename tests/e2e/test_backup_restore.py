"""Backup and restore of the database as the chart's README says to do it: `pg_dump --format=custom`
of a running platform's database (index, audit trail, register, everything), `pg_restore` into an
empty database of a fresh install (new data folder, the same Secrets and object store), and the
platform then verifies: `csuctl db status` up to date, `csuctl audit verify` and `csuctl segments
verify` pass with every entry and segment of the dump, the register's signed chain holds. A row
edited by hand in the restored trail is caught."""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text
from sqlmodel import Session

from services.common import db
from services.common.clock import SystemClock, to_us
from services.common.settings import Settings
from services.common.signing import Signer
from services.requisition import register
from tests.support.platform import Platform, wait_for
from tests.support.servers import database, unique

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]
ROOT = Path(__file__).resolve().parents[2]
SERVICES = ["ingest", "masking", "archive", "requisition", "gateway"]


def csuctl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("CSU_") and k != "DATABASE_URL"} | env
    return subprocess.run(
        [sys.executable, "-m", "services.csuctl", *args],
        cwd=ROOT, env=full, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def libpq(url: str) -> str:
    """The URL as pg_dump reads it (SQLAlchemy's driver suffix removed)."""
    return url.replace("postgresql+psycopg://", "postgresql://")


# The backup is pg_dump's: without DATABASE_URL (a plain `make test`), this machine's PostgreSQL,
# the server .ci/run names by default.
MACHINE_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    with database(tmp_path, os.environ.get("DATABASE_URL") or MACHINE_POSTGRES) as url:
        yield url


def count(url: str, table: str) -> int:
    engine = db.make_engine(Settings(database_url=url))  # type: ignore[call-arg]
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
    finally:
        engine.dispose()


def test_a_dump_restored_into_a_fresh_install_verifies(platform: Platform, database_url: str, tmp_path: Path) -> None:
    assert database_url.startswith("postgresql"), "the backup is PostgreSQL's: run with DATABASE_URL (.ci/run does)"
    platform.env["CSU_SEGMENT_DURATION_S"] = "2"
    platform.start(SERVICES, timeout=180)
    operator = platform.client("operator")  # an account made and logged in: audited
    segments = wait_for(
        lambda: len(s := operator.get("/api/v1/cameras/demo-1/segments").json()) >= 2 and s, 120, "two segments"
    )
    watched = operator.get(f"/api/v1/segments/{segments[0]['id']}/content", params={"justification": "backup test"})
    assert watched.status_code == 200  # a consultation: audited
    signer = Signer.from_file(Path(platform.env["CSU_SIGNING_KEY_FILE"]))
    engine = db.make_engine(Settings(database_url=database_url))  # type: ignore[call-arg]
    with Session(engine) as session:
        for n in (1, 2):
            register.append(
                session, signer, time_us=to_us(SystemClock().now()), kind="extraction", request_id=f"r{n}",
                request_number=f"2026-{n:04d}", actor="manager-1", payload={"camera_id": "demo-1"},
            )  # fmt: skip
        session.commit()
    engine.dispose()
    # Stopped here so that the counts below are the dump's; the dump itself is one consistent
    # snapshot of a running platform as well (README).
    assert not platform.stop()
    before = {t: count(database_url, t) for t in ("gateway_audit", "archive_segments", "requisition_register")}
    assert all(before.values()), before

    # The backup: the whole database, without owners or grants (the fresh install has its own role).
    dump = tmp_path / "csu.dump"
    dumped = subprocess.run(
        ["pg_dump", "--format=custom", "--no-owner", "--no-privileges", f"--file={dump}", libpq(database_url)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert dumped.returncode == 0, dumped.stderr

    # The fresh install: an empty database, restored before `helm install` (its migration Job then
    # finds the schema current), a new data folder, the same keys and object store.
    head, _, _ = libpq(database_url).rpartition("/")
    fresh_name = unique("csu_restored_")
    with psycopg.connect(libpq(database_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{fresh_name}"')
    fresh = f"{head}/{fresh_name}"
    try:
        restored = subprocess.run(
            ["pg_restore", "--no-owner", "--no-privileges", "--exit-on-error", f"--dbname={fresh}", str(dump)],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert restored.returncode == 0, restored.stderr
        assert {t: count(fresh, t) for t in before} == before

        platform.env |= {"CSU_DATABASE_URL": fresh, "CSU_DATA_DIR": str(tmp_path / "fresh-install")}
        status = csuctl(platform.env, "db", "status", "--json")
        assert status.returncode == 0, status.stdout + status.stderr
        platform.processes.clear()
        platform.start(SERVICES, timeout=180)

        audit = csuctl(platform.env, "audit", "verify", "--json")
        assert audit.returncode == 0, audit.stdout + audit.stderr
        verdict = json.loads(audit.stdout)
        assert verdict["ok"] is True and verdict["entries"] >= before["gateway_audit"], verdict
        verified = csuctl(platform.env, "segments", "verify", "demo-1", "--json")
        assert verified.returncode == 0, verified.stdout + verified.stderr
        report = json.loads(verified.stdout)
        demo_1 = count(fresh, "archive_segments WHERE camera_id = 'demo-1'")
        assert report["ok"] is True and report["segments_checked"] >= 2 and report["problems"] == [], report
        assert report["segments_checked"] <= demo_1
        # The old segments are still served from the store, through the restored index.
        with platform.client("operator") as again:
            content = again.get(f"/api/v1/segments/{segments[0]['id']}/content", params={"justification": "restored"})
            assert content.status_code == 200 and content.content == watched.content
        with platform.client("auditor") as auditor:
            chain = auditor.get("/api/v1/register/verify").json()
            assert chain["ok"] is True and chain["entries"] == before["requisition_register"], chain
        assert not platform.stop()

        # Verification is real: a row of the restored trail edited by hand breaks it.
        engine = db.make_engine(Settings(database_url=fresh))  # type: ignore[call-arg]
        with engine.begin() as conn:
            conn.execute(text("UPDATE gateway_audit SET actor = 'someone-else' WHERE seq = 2"))
        engine.dispose()
        broken = csuctl(platform.env, "audit", "verify", "--json")
        assert broken.returncode == 1 and json.loads(broken.stdout)["first_bad_seq"] == 2, broken.stdout
    finally:
        platform.stop()
        with psycopg.connect(libpq(database_url), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{fresh_name}" WITH (FORCE)')
