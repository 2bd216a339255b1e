"""csuctl segments: recordings as the archive sees them — verify a camera's hash chain, list
segments, show a timeline, read the deletion proofs. Talks to ArchiveService (CSU_ARCHIVE_GRPC).

`verify` exits 1 when it finds a problem (missing, altered, unexpected object, broken chain), 2
when the archive cannot be reached or refuses the request, so it can run from cron or a probe.
"""

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated

import grpc
import typer
from rich.console import Console
from rich.table import Table

from services.common.clock import from_us, to_us
from services.common.pb.csu.v1 import archive_pb2, archive_pb2_grpc
from services.common.rpc import MAX_MESSAGE_BYTES
from services.common.settings import Settings

app = typer.Typer(help="Recorded segments: integrity, listings, timeline, deletion proofs.", no_args_is_help=True)
console = Console()
errors = Console(stderr=True)
JsonOption = Annotated[bool, typer.Option("--json", help="One JSON document on stdout, for scripts.")]
StartOption = Annotated[
    str | None, typer.Option("--start", help="ISO 8601 with a zone, e.g. 2026-11-25T21:10:00+01:00.")
]
EndOption = Annotated[str | None, typer.Option("--end", help="ISO 8601 with a zone (default: now).")]
StreamOption = Annotated[str, typer.Option("--stream", help="main or sub.")]
VERIFY_TIMEOUT_S = 3600.0
TIMEOUT_S = 30.0


def _stub() -> tuple[grpc.Channel, archive_pb2_grpc.ArchiveServiceStub]:
    channel = grpc.insecure_channel(
        Settings().archive_grpc,
        options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)],
    )
    return channel, archive_pb2_grpc.ArchiveServiceStub(channel)


def _instant(name: str, value: str) -> int:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an ISO 8601 date-time", param_hint=name) from None
    if moment.tzinfo is None:
        raise typer.BadParameter(f"{value!r} has no time zone: add Z or an offset", param_hint=name)
    return to_us(moment)


def _range(start: str | None, end: str | None, default_span: timedelta) -> tuple[int, int]:
    end_us = _instant("--end", end) if end else to_us(datetime.now(UTC))
    start_us = _instant("--start", start) if start else end_us - int(default_span.total_seconds() * 1_000_000)
    return start_us, end_us


def _iso(us: int) -> str:
    return from_us(us).isoformat().replace("+00:00", "Z") if us else ""


def _call(fn, request, timeout: float):  # type: ignore[no-untyped-def]
    try:
        return fn(request, timeout=timeout)
    except grpc.RpcError as exc:
        code = exc.code()  # type: ignore[attr-defined]
        errors.print(f"[red]archive: {code.name}: {exc.details()}[/red]")  # type: ignore[attr-defined]
        raise typer.Exit(2) from None


@app.command()
def verify(
    camera: str,
    start: StartOption = None,
    end: EndOption = None,
    stream: StreamOption = "main",
    as_json: JsonOption = False,
) -> None:
    """Walk CAMERA's hash chain and objects: report missing, altered and unexpected objects."""
    start_us = _instant("--start", start) if start else 0
    end_us = _instant("--end", end) if end else 0
    channel, stub = _stub()
    with channel:
        request = archive_pb2.VerifyRequest(
            camera_id=camera, stream=stream, start_us=start_us, end_us=end_us, actor=_actor()
        )
        report = _call(stub.Verify, request, VERIFY_TIMEOUT_S)
    problems = [
        {
            "kind": p.kind,
            "segment_id": p.segment_id,
            "object_key": p.object_key,
            "expected_sha256": p.expected_sha256,
            "actual_sha256": p.actual_sha256,
            "detail": p.detail,
        }
        for p in report.problems
    ]
    document = {
        "camera_id": report.camera_id,
        "ok": report.ok,
        "segments_checked": report.segments_checked,
        "objects_checked": report.objects_checked,
        "problems": problems,
    }
    if as_json:
        typer.echo(json.dumps(document, indent=2))
    else:
        verdict = "[green]intact[/green]" if report.ok else f"[red]{len(problems)} problem(s)[/red]"
        console.print(
            f"{camera}: {report.segments_checked} segments, {report.objects_checked} objects checked — {verdict}"
        )
        if problems:
            table = Table("kind", "segment", "object", "detail")
            for p in problems:
                table.add_row(p["kind"], p["segment_id"], p["object_key"], p["detail"])
            console.print(table)
    if not report.ok:
        raise typer.Exit(1)


@app.command("list")
def list_segments(
    camera: str,
    start: StartOption = None,
    end: EndOption = None,
    stream: StreamOption = "main",
    as_json: JsonOption = False,
) -> None:
    """CAMERA's segments in a range (default: the last hour)."""
    start_us, end_us = _range(start, end, timedelta(hours=1))
    channel, stub = _stub()
    with channel:
        request = archive_pb2.ListSegmentsRequest(camera_id=camera, start_us=start_us, end_us=end_us, stream=stream)
        response = _call(stub.ListSegments, request, TIMEOUT_S)
    rows = [
        {
            "id": s.id,
            "start": _iso(s.start_us),
            "end": _iso(s.end_us),
            "bytes": s.bytes,
            "frames": s.frames,
            "sha256": s.sha256,
            "prev_sha256": s.prev_sha256,
            "object_key": s.object_key,
        }
        for s in response.segments
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("start", "end", "frames", "bytes", "sha256")
    for r in rows:
        table.add_row(r["start"], r["end"], str(r["frames"]), str(r["bytes"]), r["sha256"][:16])
    console.print(table)


@app.command()
def timeline(
    camera: str,
    start: StartOption = None,
    end: EndOption = None,
    stream: StreamOption = "main",
    as_json: JsonOption = False,
) -> None:
    """CAMERA's recorded intervals and gaps (default: the last 24 hours)."""
    start_us, end_us = _range(start, end, timedelta(hours=24))
    channel, stub = _stub()
    with channel:
        request = archive_pb2.TimelineRequest(camera_id=camera, start_us=start_us, end_us=end_us, stream=stream)
        response = _call(stub.GetTimeline, request, TIMEOUT_S)
    document = {
        "camera_id": camera,
        "start": _iso(response.start_us),
        "end": _iso(response.end_us),
        "covered": [
            {"start": _iso(c.start_us), "end": _iso(c.end_us), "in_spool": c.recording} for c in response.covered
        ],
        "gaps": [
            {"start": _iso(g.start_us), "end": _iso(g.end_us), "reason": g.reason, "detail": g.detail}
            for g in response.gaps
        ],
    }
    if as_json:
        typer.echo(json.dumps(document, indent=2))
        return
    table = Table("from", "to", "state")
    rows = [(c["start"], c["end"], "recorded" + (" (spool)" if c["in_spool"] else "")) for c in document["covered"]]
    rows += [(g["start"], g["end"], f"gap {g['reason'] or '(unknown)'}") for g in document["gaps"]]
    for row in sorted(rows):
        table.add_row(*row)
    console.print(table)


@app.command()
def proofs(
    camera: Annotated[str, typer.Argument(help="A camera id; omit for every camera.")] = "",
    start: StartOption = None,
    end: EndOption = None,
    as_json: JsonOption = False,
) -> None:
    """Deletion proofs written by the retention sweeper (per camera and hour)."""
    start_us = _instant("--start", start) if start else 0
    end_us = _instant("--end", end) if end else (to_us(datetime.now(UTC)) if start else 0)
    channel, stub = _stub()
    with channel:
        request = archive_pb2.DeletionProofsRequest(camera_id=camera, start_us=start_us, end_us=end_us)
        response = _call(stub.ListDeletionProofs, request, TIMEOUT_S)
    rows = [
        {
            "camera_id": p.camera_id,
            "stream": p.stream,
            "hour": _iso(p.hour_start_us),
            "count": p.count,
            "bytes": p.bytes,
            "first": _iso(p.first_us),
            "last": _iso(p.last_us),
            "sha256s": list(p.sha256s),
            "digest": p.digest,
            "swept": _iso(p.swept_us),
            "retention_days": p.retention_days,
        }
        for p in response.proofs
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("camera", "hour (UTC)", "segments", "bytes", "swept", "digest")
    for r in rows:
        table.add_row(r["camera_id"], r["hour"], str(r["count"]), str(r["bytes"]), r["swept"], r["digest"][:16])
    console.print(table)


def _actor() -> str:
    import getpass

    try:
        return f"csuctl:{getpass.getuser()}"
    except Exception:  # noqa: BLE001 - no user name in some containers
        return "csuctl"
