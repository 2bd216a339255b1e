"""csuctl cameras: the camera registry for ops — list, CSV export and import, lease ownership.

Talks to IngestService (CSU_INGEST_GRPC) as `csuctl:<os user>`. Export and import are recorded in
the audit trail first (JetStream, CSU_NATS_URL), like the gateway does: if the trail cannot be
written, nothing is done. Import is all-or-nothing; errors come back with their line numbers and
the command exits 1 (2 when ingest or the audit trail cannot be reached). Rows asking for
`in_service` pass the commissioning gate first, as through the gateway (services.common.
commissioning: MaskingService at CSU_MASKING_GRPC, statements checked with CSU_SIGNING_KEY_FILE).
"""

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import grpc
import typer
from rich.console import Console
from rich.table import Table

from services.common import commissioning, rpc
from services.common.clock import from_us
from services.common.pb.csu.v1 import ingest_pb2, ingest_pb2_grpc, masking_pb2_grpc
from services.common.rpc import MAX_MESSAGE_BYTES
from services.common.settings import Settings
from services.common.signing import Signer, SigningKeyError
from services.csuctl.audit import actor, record_first, settings_or_exit

app = typer.Typer(help="Cameras: list, CSV export/import, which ingest replica holds which.", no_args_is_help=True)
console = Console()
errors = Console(stderr=True)
JsonOption = Annotated[bool, typer.Option("--json", help="One JSON document on stdout, for scripts.")]
TIMEOUT_S = 60.0


def _stub() -> tuple[grpc.Channel, ingest_pb2_grpc.IngestServiceStub]:
    channel = grpc.insecure_channel(
        Settings().ingest_grpc,
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ],
    )
    return channel, ingest_pb2_grpc.IngestServiceStub(channel)


def _fail(exc: grpc.RpcError) -> typer.Exit:
    errors.print(f"[red]ingest refused or unreachable:[/red] {exc.details() or exc.code().name}")
    return typer.Exit(2)


@app.command("list")
def list_cameras(as_json: JsonOption = False) -> None:
    """Every camera with its lifecycle state, status and the replica running it (no positions)."""
    channel, stub = _stub()
    with channel:
        try:
            answer = stub.ListCameras(ingest_pb2.ListCamerasRequest(), timeout=TIMEOUT_S)
        except grpc.RpcError as exc:
            raise _fail(exc) from exc
    rows: list[dict[str, Any]] = [
        {
            "id": c.id,
            "name": c.name,
            "state": c.state,
            "status": c.status,
            "reason": c.status_reason,
            "since": from_us(c.status_since_us).isoformat() if c.status_since_us else "",
            "replica": c.metrics.owner,
            "fps": round(c.metrics.fps, 1),
        }
        for c in answer.cameras
    ]
    table = Table("id", "name", "state", "status", "reason", "replica", "fps")
    for r in rows:
        colour = {"online": "green", "degraded": "yellow", "non_compliant": "yellow"}.get(r["status"], "red")
        table.add_row(
            r["id"],
            r["name"],
            r["state"],
            f"[{colour}]{r['status']}[/{colour}]",
            r["reason"],
            r["replica"],
            str(r["fps"]),
        )
    _emit(rows, as_json, table)


@app.command("export")
def export(
    output: Annotated[Path | None, typer.Argument(help="File to write (default: stdout).")] = None,
) -> None:
    """The camera list as CSV, positions included, credentials never (***)."""
    record_first(settings_or_exit(), "config.cameras.export", "cameras", {"to": str(output) if output else "stdout"})
    channel, stub = _stub()
    with channel:
        try:
            answer = stub.ExportCameras(ingest_pb2.ExportCamerasRequest(), timeout=TIMEOUT_S)
        except grpc.RpcError as exc:
            raise _fail(exc) from exc
    if output is None:
        sys.stdout.write(answer.csv.decode())
    else:
        output.write_bytes(answer.csv)
        errors.print(f"{answer.csv.count(b'\n') - 1} camera(s) written to {output}")


@app.command("import")
def import_cameras(
    source: Annotated[Path, typer.Argument(help="CSV file (the export format).", exists=True, dir_okay=False)],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check every line, change nothing.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Create or update cameras from CSV: all of them, or none with each line's errors."""
    data = source.read_bytes()
    gated = _commissioning_refusals(data)
    if not dry_run and not gated:
        record_first(settings_or_exit(), "config.cameras.import", "cameras", {"file": str(source), "bytes": len(data)})
    channel, stub = _stub()
    with channel:
        try:
            answer = stub.ImportCameras(
                ingest_pb2.CsvRequest(csv=data, actor=actor(), dry_run=dry_run or bool(gated)), timeout=TIMEOUT_S
            )
        except grpc.RpcError as exc:
            raise _fail(exc) from exc
    found = sorted([(e.line, e.message) for e in answer.errors] + gated)
    result = {
        "created": 0 if gated else answer.created,
        "updated": 0 if gated else answer.updated,
        "dry_run": dry_run,
        "errors": [{"line": line, "message": message} for line, message in found],
    }
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    elif found:
        for line, message in found:
            errors.print(f"[red]line {line}:[/red] {message}")
        errors.print(f"{len(found)} error(s): nothing was imported")
    else:
        verb = "would create" if dry_run else "created"
        console.print(f"{verb} {answer.created}, {'would update' if dry_run else 'updated'} {answer.updated}")
    if found:
        raise typer.Exit(1)


def _commissioning_refusals(data: bytes) -> list[tuple[int, str]]:
    """The commissioning gate for the rows asking for in_service; exit 2 when it cannot say."""
    if not commissioning.rows_into_service(data):
        return []
    settings = Settings()
    try:
        keyring = Signer.from_file(settings.signing_key_file).keyring()
    except (SigningKeyError, OSError, ValueError) as exc:
        errors.print(f"[red]cannot check the signed statements of cameras going into service:[/red] {exc}")
        raise typer.Exit(2) from exc

    async def check() -> list[tuple[int, str]]:
        ingest, masking = rpc.channel(settings.ingest_grpc), rpc.channel(settings.masking_grpc)
        try:
            return await commissioning.csv_refusals(
                ingest_pb2_grpc.IngestServiceStub(ingest), masking_pb2_grpc.MaskingServiceStub(masking), keyring, data
            )
        finally:
            await ingest.close()
            await masking.close()

    try:
        return asyncio.run(check())
    except commissioning.GateUnavailable as exc:
        errors.print(f"[red]commissioning gate:[/red] {exc}")
        raise typer.Exit(2) from exc


@app.command("leases")
def leases(as_json: JsonOption = False) -> None:
    """Which ingest replica holds which camera, and the live replicas."""
    channel, stub = _stub()
    with channel:
        try:
            answer = stub.ListLeases(ingest_pb2.Empty(), timeout=TIMEOUT_S)
        except grpc.RpcError as exc:
            raise _fail(exc) from exc
    data = {
        "replicas": list(answer.replicas),
        "leases": [{"key": x.key, "owner": x.owner, "revision": x.revision} for x in answer.leases],
    }
    table = Table("camera / task", "replica", "revision")
    for lease in answer.leases:
        table.add_row(lease.key, lease.owner, str(lease.revision))
    if not as_json:
        console.print(f"replicas: {', '.join(answer.replicas) or 'none'}")
    _emit(data, as_json, table)


def _emit(data: object, as_json: bool, table: Table) -> None:
    if as_json:
        typer.echo(json.dumps(data, indent=2, default=str))
    else:
        console.print(table)
