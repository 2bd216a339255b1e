"""csuctl segments: recordings as the archive sees them — verify a camera's hash chain, list
segments, show a timeline, read the deletion proofs, and what the retention sweep would delete now
(`sweep --dry-run`). Talks to ArchiveService (CSU_ARCHIVE_GRPC).

`verify` exits 1 when it finds a problem (missing, altered, unexpected object, broken chain), 2
when the archive cannot be reached or refuses the request, so it can run from cron or a probe.
With a range it walks it a day at a time (a progress bar; each day's first segment is still
checked against the one before it); the whole chain is one request, so that the archive also
lists every object under the camera's prefix, however old (a spinner shows it is working).

The archive sweeps by itself every CSU_ARCHIVE_SWEEP_INTERVAL_S; `sweep` only offers the dry run,
which changes nothing and so is not audited.
"""

import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import grpc
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from services.common.clock import to_us
from services.common.pb.csu.v1 import archive_pb2, archive_pb2_grpc
from services.common.rpc import MAX_MESSAGE_BYTES
from services.common.settings import Settings
from services.common.timefmt import DAY_US, HOUR_US, iso_if_set

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


def _call(fn, request, timeout: float):
    try:
        return fn(request, timeout=timeout)
    except grpc.RpcError as exc:
        code = exc.code()
        errors.print(f"[red]archive: {code.name}: {exc.details()}[/red]")
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
    if start_us and not end_us:
        end_us = to_us(datetime.now(UTC))
    if start_us and start_us >= end_us:
        raise typer.BadParameter("--start must be before --end", param_hint="--start")
    windows = day_windows(start_us, end_us) if start_us else [(0, end_us)]
    report = archive_pb2.VerifyReport(camera_id=camera, ok=True)
    channel, stub = _stub()
    with channel, _progress(as_json, f"verifying {camera}", len(windows) if start_us else None) as advance:
        for window_start, window_end in windows:
            request = archive_pb2.VerifyRequest(
                camera_id=camera, stream=stream, start_us=window_start, end_us=window_end, actor=_actor()
            )
            part = _call(stub.Verify, request, VERIFY_TIMEOUT_S)
            report.ok = report.ok and part.ok
            report.segments_checked += part.segments_checked
            report.objects_checked += part.objects_checked
            report.problems.extend(part.problems)
            advance()
    problems = _problems(report.problems)
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
        _print_problems(problems)
    if not report.ok:
        raise typer.Exit(1)


@app.command("verify-ledger")
def verify_ledger(as_json: JsonOption = False) -> None:
    """Walk the segment ledger (every segment as indexed, services/archive/ledger.py): its signed
    checkpoints and cadence, the heads published outside the database, and every index row against
    it. Finds what `verify` cannot: a segment rewritten, or deleted and its successor relinked, by
    someone with the database and the bucket. Exit 1 when something differs."""
    channel, stub = _stub()
    with channel, _progress(as_json, "verifying the segment ledger", None) as advance:
        verdict = _call(stub.VerifyLedger, archive_pb2.VerifyLedgerRequest(actor=_actor()), VERIFY_TIMEOUT_S)
        advance()
    problems = _problems(verdict.problems)
    document = {
        "ok": verdict.ok,
        "entries": verdict.entries,
        "first_bad_seq": verdict.first_bad_seq or None,
        "problem": verdict.problem or None,
        "signed_through": verdict.signed_through or None,
        "anchored_through": verdict.anchored_through or None,
        "problems": problems,
    }
    if as_json:
        typer.echo(json.dumps(document, indent=2))
    else:
        if verdict.problem:
            console.print(
                f"ledger [red]BROKEN[/red] at entry {verdict.first_bad_seq}: {verdict.problem}", highlight=False
            )
        else:
            console.print(
                f"ledger: {verdict.entries} entries, signed through {verdict.signed_through or '-'}, published "
                f"through {verdict.anchored_through or '-'} — "
                + ("[green]intact[/green]" if verdict.ok else f"[red]{len(problems)} problem(s)[/red]")
            )
        _print_problems(problems)
    if not verdict.ok:
        raise typer.Exit(1)


def _problems(found: Iterable[archive_pb2.VerifyProblem]) -> list[dict[str, str]]:
    fields = ("kind", "segment_id", "object_key", "expected_sha256", "actual_sha256", "detail")
    return [{name: getattr(p, name) for name in fields} for p in found]


def _print_problems(problems: list[dict[str, str]]) -> None:
    if problems:
        table = Table("kind", "segment", "object", "detail")
        for p in problems:
            table.add_row(p["kind"], p["segment_id"], p["object_key"], p["detail"])
        console.print(table)


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
            "start": iso_if_set(s.start_us) or "",
            "end": iso_if_set(s.end_us) or "",
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
    document: dict[str, Any] = {
        "camera_id": camera,
        "start": iso_if_set(response.start_us) or "",
        "end": iso_if_set(response.end_us) or "",
        "covered": [
            {"start": iso_if_set(c.start_us) or "", "end": iso_if_set(c.end_us) or "", "in_spool": c.recording}
            for c in response.covered
        ],
        "gaps": [
            {
                "start": iso_if_set(g.start_us) or "",
                "end": iso_if_set(g.end_us) or "",
                "reason": g.reason,
                "detail": g.detail,
            }
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
            "hour": iso_if_set(p.hour_start_us) or "",
            "count": p.count,
            "bytes": p.bytes,
            "first": iso_if_set(p.first_us) or "",
            "last": iso_if_set(p.last_us) or "",
            "sha256s": list(p.sha256s),
            "digest": p.digest,
            "swept": iso_if_set(p.swept_us) or "",
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


def day_windows(start_us: int, end_us: int) -> list[tuple[int, int]]:
    """[start_us, end_us) cut into day-long windows whose inner bounds fall on whole UTC hours, so
    the archive lists each hour's objects once."""
    windows = []
    low = start_us
    while low < end_us:
        high = min(end_us, low - low % HOUR_US + DAY_US)
        windows.append((low, high))
        low = high
    return windows


@contextmanager
def _progress(quiet: bool, what: str, total: int | None) -> Iterator[Callable[[], None]]:
    """A progress bar on stderr (a spinner when the total is unknown), none for --json."""
    columns = [SpinnerColumn(), TextColumn("{task.description}")]
    if total is not None:
        columns += [BarColumn(), MofNCompleteColumn()]
    with Progress(*columns, TimeElapsedColumn(), console=errors, transient=True, disable=quiet) as progress:
        task = progress.add_task(what, total=total)
        yield lambda: progress.advance(task)


@app.command()
def sweep(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would go; delete nothing.")] = False,
    camera: Annotated[str, typer.Option("--camera", help="Only this camera (default: every camera).")] = "",
    as_json: JsonOption = False,
) -> None:
    """What the retention sweep would delete now, per camera: segments, bytes, the oldest (--dry-run)."""
    if not dry_run:
        errors.print(
            "the archive sweeps by itself (every CSU_ARCHIVE_SWEEP_INTERVAL_S); "
            "csuctl only shows what it would delete: add --dry-run"
        )
        raise typer.Exit(2)
    channel, stub = _stub()
    with channel:
        request = archive_pb2.SweepDryRunRequest(camera_id=camera, actor=_actor())
        answer = _call(stub.DryRunSweep, request, TIMEOUT_S * 4)
    rows = [
        {
            "camera_id": p.camera_id,
            "stream": p.stream,
            "retention_days": p.retention_days,
            "cutoff": iso_if_set(p.cutoff_us) or "",
            "count": p.count,
            "bytes": p.bytes,
            "oldest": iso_if_set(p.oldest_us),
            "newest": iso_if_set(p.newest_us),
            "held": p.held,
        }
        for p in answer.cameras
    ]
    totals = {"count": sum(r["count"] for r in rows), "bytes": sum(r["bytes"] for r in rows)}
    document = {"dry_run": True, "now": iso_if_set(answer.now_us) or "", "cameras": rows, "total": totals}
    if as_json:
        typer.echo(json.dumps(document, indent=2))
        return
    due = [r for r in rows if r["count"] or r["held"]]
    if due:
        table = Table("camera", "stream", "retention", "segments", "size", "oldest (UTC)", "kept by holds")
        for r in due:
            table.add_row(
                r["camera_id"],
                r["stream"],
                f"{r['retention_days']} d",
                str(r["count"]),
                _size(r["bytes"]),
                r["oldest"] or "",
                str(r["held"] or ""),
            )
        console.print(table)
    cameras = len({r["camera_id"] for r in rows if r["count"]})
    console.print(
        f"dry run: the sweep would delete {totals['count']} segment(s), {_size(totals['bytes'])}, "
        f"from {cameras} camera(s); nothing was deleted",
        soft_wrap=True,
    )


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"


def _actor() -> str:
    import getpass

    try:
        return f"csuctl:{getpass.getuser()}"
    except Exception:  # noqa: BLE001 - no user name in some containers
        return "csuctl"
