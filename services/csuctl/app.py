"""csuctl: the administration CLI for ops (Typer).

Each topic is a Typer sub-app in its own module of this package, registered below. Every command
prints friendly output by default and one JSON document with --json, for scripts.
"""

import json
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.table import Table

from services.common.log import configure_logging
from services.common.settings import Settings
from services.csuctl import audit, cameras, capacity, db, exports, keys, segments, users

app = typer.Typer(help="Administer a CSU platform deployment.", no_args_is_help=True)
app.add_typer(db.app, name="db")
app.add_typer(cameras.app, name="cameras")
app.add_typer(segments.app, name="segments")
app.add_typer(exports.app, name="exports")
app.add_typer(users.app, name="users")
app.add_typer(audit.app, name="audit")
app.add_typer(keys.app, name="keys")
app.add_typer(capacity.app, name="capacity")
console = Console()
JsonOption = Annotated[bool, typer.Option("--json", help="One JSON document on stdout, for scripts.")]


@app.callback()
def _root() -> None:
    """Settings come from the same CSU_* environment variables as the services."""


def emit(data: object, as_json: bool, table: Table | None = None) -> None:
    """Print data as JSON, or the friendly table."""
    if as_json or table is None:
        typer.echo(json.dumps(data, indent=2, default=str))
    else:
        console.print(table)


@app.command()
def health(as_json: JsonOption = False) -> None:
    """Readiness of each service on this host (the ports of the CSU_* settings)."""
    settings = Settings()
    ports = {
        "ingest": settings.ingest_http_port,
        "masking": settings.masking_http_port,
        "archive": settings.archive_http_port,
        "requisition": settings.requisition_http_port,
        "gateway": settings.gateway_port,
    }
    results: dict[str, dict[str, object]] = {}
    for name, port in ports.items():
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=3)
            results[name] = {"ready": response.status_code == 200, "checks": response.json().get("checks", {})}
        except (httpx.HTTPError, ValueError) as exc:
            results[name] = {"ready": False, "error": str(exc) or type(exc).__name__}
    table = Table("service", "ready", "details")
    for name, result in results.items():
        details = result.get("error") or ", ".join(f"{k}={'ok' if v else 'DOWN'}" for k, v in result["checks"].items())
        table.add_row(name, "yes" if result["ready"] else "[red]no[/red]", str(details))
    emit(results, as_json, table)
    if not all(r["ready"] for r in results.values()):
        raise typer.Exit(1)


def main() -> None:
    # Library logs (NATS, database) go to stderr, warnings only: stdout is the command's own output,
    # one JSON document with --json.
    configure_logging("csuctl", level="warning", json=False)
    app()
