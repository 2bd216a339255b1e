"""csuctl audit: check the hash-chained audit trail, and record csuctl's own actions in it.

`verify` walks the gateway's audit table (CSU_DATABASE_URL) with the gateway's own verifier
(services/gateway/audit_log.py): every entry's hash and link, the retention purges, and each signed
checkpoint against the deployment's keyring (CSU_SIGNING_KEY_FILE: the current key and the keys
retired by `csuctl keys rotate`), or against the public keys given with --public-key. It prints OK
or the first bad entry and exits 0 when intact, 1 when the chain is broken, 2 when it cannot check
(no database, no key, no audit trail to record the consultation in).

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
from services.common.clock import SystemClock
from services.common.settings import Settings, redact_url
from services.common.signing import Keyring, SigningKeyError, trusted_public_keys
from services.gateway import audit_log

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


def _keyring(settings: Settings, public_keys: list[Path] | None) -> Keyring:
    if public_keys:
        try:
            return Keyring([path.read_text(encoding="ascii") for path in public_keys])
        except (OSError, ValueError) as exc:
            raise fail(f"cannot read a --public-key file: {exc}") from exc
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
    as_json: JsonOption = False,
) -> None:
    """Recompute the audit trail's hash chain and check its signed checkpoints; exit 1 when broken."""
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
    columns = (TextColumn("verifying the audit trail"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=errors, transient=True, disable=as_json) as progress:
            task = progress.add_task("verify", total=total)
            verdict = audit_log.verify_chain(engine, keyring, progress=lambda n: progress.advance(task, n))
    except SQLAlchemyError as exc:
        raise fail(f"reading the audit trail on {where} failed: {db_reason(exc)}") from exc
    finally:
        engine.dispose()
    document = {
        "ok": verdict.ok,
        "entries": verdict.entries,
        "first_bad_seq": verdict.first_bad_seq,
        "problem": verdict.problem,
        "trusted_keys": keyring.fingerprints,
    }
    if as_json:
        typer.echo(json.dumps(document, indent=2))
    elif verdict.ok:
        console.print(f"audit trail [green]OK[/green]: {verdict.entries} entries, chain and checkpoints intact")
    else:
        console.print(
            f"audit trail [red]BROKEN[/red] at entry {verdict.first_bad_seq}: {verdict.problem} "
            f"({verdict.entries} entries read)",
            highlight=False,
        )
    if not verdict.ok:
        raise typer.Exit(1)


def db_reason(exc: Exception) -> str:
    # SQLAlchemy's messages carry the SQL and a link; the first line names the cause.
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
