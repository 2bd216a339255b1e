"""csuctl audit: check the hash-chained audit trail, and record csuctl's own actions in it.

`verify` walks the gateway's audit table (CSU_DATABASE_URL) with the gateway's own verifier
(services/gateway/identity/audit_log.py): every entry's hash and link, the retention purges, each signed
checkpoint against the deployment's keyring (CSU_SIGNING_KEY_FILE: the current key and the keys
retired by `csuctl keys rotate`) or the public keys given with --public-key, the checkpoints' cadence
(a missing one is a failure), and the heads published outside the database (CSU_BUCKET_ANCHORS).
It prints OK or the first entry it can no longer vouch for, and exits 0 when intact, 1 when the
chain is broken, 2 when it cannot check (no database, no key, no anchors bucket, no audit trail to
record the consultation in).

`verify --export FILE` is the auditor's check: an audit export (CSV or JSON, as
/api/v1/audit/export gives it) and the deployment's public keys (--public-key, repeatable), nothing
else — no database, no network. Same verifier, same exit codes; a filtered export is a listing
that cannot be checked as a chain (exit 2). Nothing is recorded: it does not reach the deployment.

Reading the trail is itself audited, as the API's /api/v1/audit/verify is. `record_first` is how
every csuctl sub-command that changes something records it beforehand: the event must be stored
on JetStream (CSU_NATS_URL) before anything is done, else nothing is done (fail closed).
"""

import asyncio
import getpass
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.exc import SQLAlchemyError

from services.common import audit, bus, db
from services.common.anchoring import AnchorStore, Cadence
from services.common.clock import SystemClock
from services.common.hashchain import Verdict
from services.common.objectstore import StoreUnavailable, make_store
from services.common.settings import Settings, redact_url
from services.common.signing import Keyring, SigningKeyError, trusted_public_keys
from services.gateway.identity import audit_export, audit_log

app = typer.Typer(help="The audit trail: verify its hash chain and signed checkpoints.", no_args_is_help=True)
console = Console()
errors = Console(stderr=True, soft_wrap=True)
JsonOption = Annotated[bool, typer.Option("--json", help="One JSON document on stdout, for scripts.")]
# The services' NATS connection retries forever (it must survive a NATS restart); a command waits
# this long for the trail, then gives up and does nothing.
AUDIT_TIMEOUT_S = 15.0


def actor() -> str:
    """Who acts, in the trail: csuctl and the operating-system user running it."""
    try:
        return f"csuctl:{getpass.getuser()}"
    except Exception:  # noqa: BLE001 - no user name in some containers
        return "csuctl"


def fail(message: str, code: int = 2) -> typer.Exit:
    errors.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)


def settings_or_exit() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        raise fail(f"invalid CSU_* settings: {exc}") from exc


def record_first(settings: Settings, action: str, target: str, details: dict[str, Any] | None = None) -> None:
    """Record the action in the audit trail before doing it; exit 2 (nothing done) when it cannot be."""

    async def record() -> None:
        nc = await bus.connect(settings, "csuctl")
        try:
            await audit.record(
                nc.jetstream(),
                settings.nats_prefix,
                SystemClock(),
                actor=actor(),
                role="ops",
                action=action,
                target=target,
                details=details or {},
            )
        finally:
            await nc.close()

    try:
        asyncio.run(asyncio.wait_for(record(), AUDIT_TIMEOUT_S))
    except TimeoutError as exc:
        raise fail(f"the audit trail is unavailable (no answer in {AUDIT_TIMEOUT_S:.0f} s): nothing was done") from exc
    except Exception as exc:
        raise fail(f"the audit trail is unavailable ({exc or type(exc).__name__}): nothing was done") from exc


def _keyring(settings: Settings | None, public_keys: list[Path] | None) -> Keyring:
    """The --public-key files, else the deployment's keyring (settings_or_exit() when None)."""
    if public_keys:
        try:
            return Keyring([path.read_text(encoding="ascii") for path in public_keys])
        except (OSError, ValueError) as exc:
            raise fail(f"cannot read a --public-key file: {exc}") from exc
    settings = settings if settings is not None else settings_or_exit()
    try:
        return trusted_public_keys(settings.signing_key_file)
    except SigningKeyError as exc:
        raise fail(f"{exc} (or give the trusted public keys with --public-key)") from exc


@app.command()
def verify(
    public_key: Annotated[
        list[Path] | None,
        typer.Option(
            "--public-key",
            help="A trusted public key (PEM), repeatable. Default: the deployment's keyring "
            "(CSU_SIGNING_KEY_FILE and its retired keys).",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    export: Annotated[
        Path | None,
        typer.Option(
            "--export",
            help="Check this audit export (CSV or JSON from /api/v1/audit/export) offline, with --public-key: "
            "no database, no network, nothing recorded.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Recompute the audit trail's hash chain and check its signed checkpoints, their cadence and the
    heads published outside the database; exit 1 when broken."""
    if export is not None:
        _verify_export(export, public_key, as_json)
        return
    settings = settings_or_exit()
    keyring = _keyring(settings, public_key)
    engine = db.make_engine(settings)
    where = redact_url(settings.sqlalchemy_url)
    try:
        total = audit_log.entry_count(engine)
    except SQLAlchemyError as exc:
        engine.dispose()
        raise fail(f"cannot read the audit trail on {where}: {db_reason(exc)}") from exc
    record_first(settings, "audit.verify", "audit")
    anchors = AnchorStore(make_store(settings, settings.bucket_anchors), settings.anchor_retain_days, SystemClock())
    cadence = Cadence.of(settings.chain_checkpoint_entries, settings.chain_checkpoint_minutes)
    columns = (TextColumn("verifying the audit trail"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=errors, transient=True, disable=as_json) as progress:
            task = progress.add_task("verify", total=total)
            verdict = audit_log.verify_anchored(
                engine, keyring, anchors, cadence, progress=lambda n: progress.advance(task, n)
            )
    except SQLAlchemyError as exc:
        raise fail(f"reading the audit trail on {where} failed: {db_reason(exc)}") from exc
    except StoreUnavailable as exc:
        raise fail(f"cannot read the heads published outside the database ({settings.bucket_anchors}): {exc}") from exc
    finally:
        engine.dispose()
    document = {
        "ok": verdict.ok,
        "entries": verdict.entries,
        "first_bad_seq": verdict.first_bad_seq,
        "problem": verdict.problem,
        "trusted_keys": keyring.fingerprints,
    }
    _report(document, verdict, as_json, "audit trail")


def _report(document: dict[str, Any], verdict: Verdict, as_json: bool, what: str) -> None:
    if as_json:
        typer.echo(json.dumps(document, indent=2))
    elif verdict.ok:
        console.print(
            f"{what} [green]OK[/green]: {verdict.entries} entries, chain and checkpoints intact; signed through "
            f"entry {verdict.signed_through or '-'}, published outside the database through entry "
            f"{verdict.anchored_through or '-'}",
            highlight=False,
        )
    else:
        console.print(
            f"{what} [red]BROKEN[/red] at entry {verdict.first_bad_seq}: {verdict.problem} "
            f"({verdict.entries} entries read)",
            highlight=False,
        )
    if not verdict.ok:
        raise typer.Exit(1)


def _verify_export(path: Path, public_key: list[Path] | None, as_json: bool) -> None:
    keyring = _keyring(None, public_key)
    try:
        result = audit_export.verify(audit_export.read(path), keyring)
    except (OSError, UnicodeDecodeError, audit_export.ExportError) as exc:
        raise fail(f"cannot read {path} as an audit export: {exc}") from exc
    verdict = result.verdict
    document = {
        "ok": verdict.ok,
        "checkable": result.checkable,
        "entries": verdict.entries,
        "first_seq": result.first_seq,
        "last_seq": result.last_seq,
        "first_bad_seq": verdict.first_bad_seq,
        "problem": verdict.problem,
        "signed_through": verdict.signed_through,
        "anchored_through": verdict.anchored_through,
        "published_heads": result.published_heads,
        "note": result.note,
        "trusted_keys": keyring.fingerprints,
    }
    if not result.checkable:
        if as_json:
            typer.echo(json.dumps(document, indent=2))
        raise fail(f"{path} cannot be verified as a chain: {verdict.problem}")
    if result.note and not as_json:
        errors.print(f"[yellow]note:[/yellow] the published heads were not in this export ({result.note})")
    _report(document, verdict, as_json, f"audit export {path.name} (entries {result.first_seq}-{result.last_seq})")


def db_reason(exc: Exception) -> str:
    # SQLAlchemy's messages carry the SQL and a link; the first line names the cause.
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
