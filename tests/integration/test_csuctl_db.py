"""`csuctl db migrate` and `csuctl db status`, run as the Helm chart's migration Job runs them: a
process with CSU_DATABASE_URL, against a real database (PostgreSQL in CI, else SQLite)."""

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine, inspect

from services.common import db
from services.common.settings import Settings
from services.csuctl.db import current_revision, head_revision, migrating_services
from tests.support.servers import free_port


def csuctl(database_url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSU_") and k != "DATABASE_URL"}
    # A wide terminal: the friendly table must not wrap the words the test looks for.
    env.update(CSU_DATABASE_URL=database_url, CSU_DATA_DIR=str(tmp_path / "data"), COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "services.csuctl", "db", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        cwd=Path(__file__).resolve().parents[2],
    )


def heads(database_url: str) -> dict[str, str | None]:
    engine = db.make_engine(Settings(database_url=database_url))  # type: ignore[call-arg]
    try:
        return {s: head_revision(s, engine) for s in migrating_services()}
    finally:
        engine.dispose()


def revisions(database_url: str) -> dict[str, str | None]:
    engine = db.make_engine(Settings(database_url=database_url))  # type: ignore[call-arg]
    try:
        return {s: current_revision(s, engine) for s in migrating_services()}
    finally:
        engine.dispose()


def table_names(database_url: str) -> set[str]:
    engine = create_engine(Settings(database_url=database_url).sqlalchemy_url)  # type: ignore[call-arg]
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_every_service_with_migrations_is_found() -> None:
    services = migrating_services()
    # Found from the folders, so services adding migrations need no change here.
    assert "archive" in services
    root = Path(db.SERVICES_DIR)
    assert services == sorted(p.name for p in root.iterdir() if (p / "migrations" / "env.py").exists())


def test_migrate_brings_every_service_to_its_head_once(database_url: str, tmp_path: Path) -> None:
    expected = heads(database_url)
    assert all(expected.values())

    before = csuctl(database_url, tmp_path, "status", "--json")
    assert before.returncode == 1, before.stderr
    assert not any(s["up_to_date"] for s in json.loads(before.stdout)["services"])

    first = csuctl(database_url, tmp_path, "migrate", "--json")
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert {r["service"]: (r["before"], r["after"]) for r in report["services"]} == {
        s: (None, head) for s, head in expected.items()
    }
    assert revisions(database_url) == expected
    tables = table_names(database_url)
    for service in expected:
        assert f"alembic_version_{service}" in tables
        # Each service's own tables, named with its prefix.
        assert [t for t in tables if t.startswith(f"{service}_")], f"no {service}_ table"

    # Idempotent: the next release's hook runs it again on an up-to-date database.
    again = csuctl(database_url, tmp_path, "migrate", "--json")
    assert again.returncode == 0, again.stderr
    assert all(r["before"] == r["after"] == expected[r["service"]] for r in json.loads(again.stdout)["services"])
    assert table_names(database_url) == tables

    status = csuctl(database_url, tmp_path, "status", "--json")
    assert status.returncode == 0, status.stderr
    assert all(s["up_to_date"] for s in json.loads(status.stdout)["services"])
    friendly = csuctl(database_url, tmp_path, "status")
    assert friendly.returncode == 0 and "up to date" in friendly.stdout


def test_one_service_only_and_unknown_services_refused(database_url: str, tmp_path: Path) -> None:
    refused = csuctl(database_url, tmp_path, "migrate", "--service", "nosuchservice")
    assert refused.returncode == 2
    assert "unknown service 'nosuchservice'" in refused.stderr and "archive" in refused.stderr
    assert not [t for t in table_names(database_url) if t.startswith("alembic_version_")], "nothing changed"

    only = csuctl(database_url, tmp_path, "migrate", "--service", "archive", "--json")
    assert only.returncode == 0, only.stderr
    assert [r["service"] for r in json.loads(only.stdout)["services"]] == ["archive"]
    current = revisions(database_url)
    assert current["archive"] == heads(database_url)["archive"]
    assert all(revision is None for service, revision in current.items() if service != "archive")
    behind = csuctl(database_url, tmp_path, "status")
    assert behind.returncode == 1 and "behind: run csuctl db migrate" in behind.stdout


def test_unreachable_database_is_a_clear_error_without_the_password(tmp_path: Path) -> None:
    url = f"postgresql://csu:not-a-real-password@127.0.0.1:{free_port()}/csu"
    result = csuctl(url, tmp_path, "migrate")
    assert result.returncode == 1
    assert "error: migrating" in result.stderr and "127.0.0.1" in result.stderr
    assert "not-a-real-password" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
