"""csuctl db: the database schema of every service.

Each service owns its tables and its own Alembic history (`services/<svc>/migrations/`, version
table `alembic_version_<svc>`, see services/common/db.py). `csuctl db migrate` brings every one of
them to its newest revision; the Helm chart runs it as a pre-install/pre-upgrade Job, so schema
changes happen once per release, before new pods start, and the services themselves run with
CSU_DB_AUTO_MIGRATE=false. `csuctl db status` tells whether the database is behind the code.
Design: docs/design/schema.md
"""

import json
from pathlib import Path
from typing import Annotated

import typer
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from pydantic import ValidationError
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from services.common import db
from services.common.settings import Settings, redact_url

app = typer.Typer(help="Database schema: Alembic migrations of every service.", no_args_is_help=True)
console = Console()
errors = Console(stderr=True, soft_wrap=True)
JsonOption = Annotated[bool, typer.Option("--json", help="One JSON document on stdout, for scripts.")]
ServiceOption = Annotated[
    list[str] | None,
    typer.Option("--service", "-s", help="Only this service (repeatable). Default: every service with migrations."),
]


def migrating_services(services_dir: Path = db.SERVICES_DIR) -> list[str]:
    """Services that own tables: those with an Alembic environment in services/<svc>/migrations."""
    return sorted(env.parent.parent.name for env in services_dir.glob("*/migrations/env.py"))


def current_revision(service: str, engine: Engine) -> str | None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": f"alembic_version_{service}"})
        return context.get_current_revision()


def head_revision(service: str, engine: Engine) -> str | None:
    return ScriptDirectory.from_config(db.alembic_config(service, engine)).get_current_head()


def _fail(message: str, code: int = 1) -> None:
    errors.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code)


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        _fail(f"invalid CSU_* settings: {exc}", 2)
        raise  # unreachable: _fail raises


def _chosen(requested: list[str] | None) -> list[str]:
    known = migrating_services()
    if not requested:
        return known
    unknown = [s for s in requested if s not in known]
    if unknown:
        _fail(f"unknown service {', '.join(map(repr, unknown))}: services with migrations are {', '.join(known)}", 2)
    return [s for s in known if s in requested]


@app.command()
def migrate(service: ServiceOption = None, as_json: JsonOption = False) -> None:
    """Bring every service's tables to the newest revision (idempotent; the Helm chart's hook Job)."""
    settings = _settings()
    services = _chosen(service)
    engine = db.make_engine(settings)
    where = redact_url(settings.sqlalchemy_url)
    results: list[dict[str, str | None]] = []
    with Progress(console=errors, transient=True, disable=as_json) as progress:
        task = progress.add_task("migrating", total=len(services))
        for name in services:
            progress.update(task, description=f"migrating {name}")
            try:
                before = current_revision(name, engine)
                db.migrate(name, engine)
                after = current_revision(name, engine)
            except (SQLAlchemyError, CommandError, OSError) as exc:
                # Earlier services stay migrated: each history is independent and re-running is safe.
                done = ", ".join(r["service"] or "" for r in results) or "none"
                _fail(f"migrating {name} on {where} failed ({done} done before): {_reason(exc)}")
            results.append({"service": name, "before": before, "after": after})
            progress.advance(task)
    engine.dispose()
    if as_json:
        typer.echo(json.dumps({"database": where, "services": results}, indent=2))
        return
    table = Table("service", "was at", "now at", title=f"migrations on {where}")
    for r in results:
        changed = r["before"] != r["after"]
        table.add_row(r["service"], r["before"] or "(empty)", f"[green]{r['after']}[/green]" if changed else r["after"])
    console.print(table)


@app.command()
def status(service: ServiceOption = None, as_json: JsonOption = False) -> None:
    """Each service's revision in the database against the code's newest; exit 1 when one is behind."""
    settings = _settings()
    services = _chosen(service)
    engine = db.make_engine(settings)
    where = redact_url(settings.sqlalchemy_url)
    rows: list[dict[str, str | bool | None]] = []
    for name in services:
        try:
            current, head = current_revision(name, engine), head_revision(name, engine)
        except (SQLAlchemyError, CommandError, OSError) as exc:
            _fail(f"reading {name}'s revision on {where} failed: {_reason(exc)}")
        rows.append({"service": name, "current": current, "head": head, "up_to_date": current == head})
    engine.dispose()
    if as_json:
        typer.echo(json.dumps({"database": where, "services": rows}, indent=2))
    else:
        table = Table("service", "database", "code", "", title=f"schema of {where}")
        for r in rows:
            mark = "up to date" if r["up_to_date"] else "[red]behind: run csuctl db migrate[/red]"
            table.add_row(str(r["service"]), str(r["current"] or "(empty)"), str(r["head"]), mark)
        console.print(table)
    if not all(r["up_to_date"] for r in rows):
        raise typer.Exit(1)


def _reason(exc: Exception) -> str:
    # SQLAlchemy's messages carry the SQL and a link; the first line names the cause.
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
