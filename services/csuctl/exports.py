"""csuctl exports: check an export package handed to investigators, with the same verifier the
package carries (services/requisition/csu_verify.py, also the `csu-verify` command).

`verify` exits 0 when the package is exactly what the CSU signed, 1 when a check fails (a changed
byte, a missing or added file, a signature by another key), 2 when the package cannot be read.
"""

import io
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from services.requisition import csu_verify

app = typer.Typer(help="Export packages: verify what was delivered.", no_args_is_help=True)


@app.command()
def verify(
    package: Annotated[str, typer.Argument(help="The package folder or its zip.")],
    fingerprint: Annotated[
        str | None, typer.Option("--fingerprint", help="The CSU's published key fingerprint (64 hex digits).")
    ] = None,
    key: Annotated[str | None, typer.Option("--key", help="The CSU's public key file (PEM).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout, for scripts.")] = False,
) -> None:
    """Check every file's SHA-256 and the manifest's signature; print the chain of custody."""
    if fingerprint and key:
        typer.echo("give --fingerprint or --key, not both", err=True)
        raise typer.Exit(2)
    try:
        key_pem = Path(key).read_text(encoding="ascii", errors="replace") if key else None
        if fingerprint:
            csu_verify.normalise_fingerprint(fingerprint)
        report = csu_verify.verify_package(package, key_pem, fingerprint)
    except (csu_verify.VerifyError, OSError) as exc:
        typer.echo(f"csuctl exports verify: {exc}", err=True)
        raise typer.Exit(2) from exc
    if as_json:
        document = {
            "ok": report.ok,
            "signature_ok": report.signature_ok,
            "fingerprint": report.fingerprint,
            "files_checked": report.files_checked,
            "problems": report.problems,
            "notes": report.notes,
            "request": (report.manifest or {}).get("request", {}).get("number"),
        }
        typer.echo(json.dumps(document, indent=2))
    else:
        out = io.StringIO()
        csu_verify.print_report(report, out)
        sys.stdout.write(out.getvalue())
    if not report.ok:
        raise typer.Exit(1)
