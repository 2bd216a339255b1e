"""csuctl: the administration CLI for ops (Typer).

Each topic is a Typer sub-app in its own module of this package, registered below. Every command
prints friendly output by default and one JSON document with --json, for scripts.
"""

import json
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from services.common.log import configure_logging
from services.common.settings import Settings
from services.csuctl import audit, cameras, capacity, db, exports, keys, segments, smoke, users

app = typer.Typer(help="Administer a CSU platform deployment.", no_args_is_help=True)
app.add_typer(db.app, name="db")
app.add_typer(cameras.app, name="cameras")
app.add_typer(segments.app, name="segments")
app.add_typer(exports.app, name="exports")
app.add_typer(users.app, name="users")
app.add_typer(audit.app, name="audit")
app.add_typer(keys.app, name="keys")
app.command("smoke")(smoke.smoke)
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


def readiness_urls(settings: Settings) -> dict[str, str]:
    """Each service's /readyz: at the host of its gRPC address (its Service in a cluster, so
    `kubectl exec deploy/<release>-csu-gateway -- csuctl health` sees every service; loopback on one
    machine) and its HTTP port; the gateway's on this host."""
    urls = {}
    for name in ("ingest", "masking", "archive", "requisition"):
        host = getattr(settings, f"{name}_grpc").rpartition(":")[0] or "127.0.0.1"
        urls[name] = f"http://{host}:{getattr(settings, f'{name}_http_port')}/readyz"
    urls["gateway"] = f"http://127.0.0.1:{settings.gateway_port}/readyz"
    return urls


@app.command()
def health(as_json: JsonOption = False) -> None:
    """Readiness of each service (/readyz, with the checks that fail), as Kubernetes' probes see it."""
    settings = Settings()
    results: dict[str, dict[str, Any]] = {}
    for name, url in readiness_urls(settings).items():
        try:
            response = httpx.get(url, timeout=3)
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
