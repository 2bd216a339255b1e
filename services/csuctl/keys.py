"""csuctl keys: the deployment's Ed25519 signing key (CSU_SIGNING_KEY_FILE) — show its keyring,
rotate it.

`rotate` (services/common/signing.py:rotate) writes a new private key over the key file
atomically (temporary file renamed, mode 0600, the old file's owner), moves the old public key to
the keyring `<key file>.retired/<fingerprint>.pub.pem` and keeps the old private key nowhere. It is
recorded in the audit trail first, with both fingerprints; if the trail cannot be written, the key
is not changed. Everything signed before stays verifiable: the register, the audit checkpoints and
the no-private-area statements are checked against the whole keyring, and delivered export
packages carry their own public key, published on their receipt.

After a rotation, restart the services (gateway, requisition, masking): they read the private key
at start and sign with the old one until then (still trusted, being in the keyring). Publish the
new fingerprint where recipients compare it (receipts and packages show it from then on).

In Kubernetes the key file is a Secret: run this against a copy, then put the new key and the
keyring folder's files into the Secret (the folder as `items` paths) and restart the deployments.
"""

import json
from typing import Annotated, Any

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from rich.console import Console
from rich.table import Table

from services.common import signing
from services.common.signing import SigningKeyError
from services.csuctl.audit import fail, record_first, settings_or_exit
from services.gateway.identity import signing_key_audit

app = typer.Typer(help="The signing key: list the trusted keys, rotate.", no_args_is_help=True)
console = Console()
JsonOption = Annotated[bool, typer.Option("--json", help="One JSON document on stdout, for scripts.")]


@app.command("list")
def list_keys(as_json: JsonOption = False) -> None:
    """The current key's fingerprint and the retired ones still trusted to have signed."""
    settings = settings_or_exit()
    try:
        keyring = signing.trusted_public_keys(settings.signing_key_file)
    except SigningKeyError as exc:
        raise fail(str(exc)) from None
    document: dict[str, Any] = {
        "key_file": str(settings.signing_key_file),
        "current": keyring.current_fingerprint,
        "retired": [fp for fp in keyring.fingerprints if fp != keyring.current_fingerprint],
    }
    if as_json:
        typer.echo(json.dumps(document, indent=2))
        return
    table = Table("fingerprint (SHA-256 of the public key)", "state", title=str(settings.signing_key_file))
    table.add_row(_grouped(document["current"] or ""), "[green]current: signs[/green]")
    for fp in document["retired"]:
        table.add_row(_grouped(fp), "retired: verifies older signatures")
    console.print(table)


@app.command()
def rotate(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Replace the signing key by a new one; the old public key stays trusted for what it signed."""
    settings = settings_or_exit()
    key_file = settings.signing_key_file
    if key_file is None:
        raise fail("CSU_SIGNING_KEY_FILE is not set: there is no key to rotate")
    try:
        old = signing.Signer.from_file(key_file)
    except SigningKeyError as exc:
        raise fail(str(exc)) from None
    if not yes and not typer.confirm(
        f"Rotate the signing key {key_file} (fingerprint {_grouped(old.fingerprint)})? "
        "Services must be restarted afterwards",
        err=True,
    ):
        raise fail("not rotated", 1)
    new_key = Ed25519PrivateKey.generate()
    new_fingerprint = signing.fingerprint(new_key.public_key())
    record_first(
        settings,
        signing_key_audit.ROTATE_ACTION,
        signing_key_audit.TARGET,
        signing_key_audit.rotation_details(str(key_file), old.fingerprint, new_fingerprint),
    )
    try:
        rotation = signing.rotate(key_file, new_key)
    except (OSError, SigningKeyError) as exc:
        raise fail(f"the key was not rotated: {exc}") from None
    document = {
        "key_file": str(rotation.key_file),
        "old_fingerprint": rotation.old_fingerprint,
        "new_fingerprint": rotation.new_fingerprint,
        "retired_public_key": str(rotation.retired_file),
        "restart_needed": ["gateway", "requisition", "masking"],
    }
    if as_json:
        typer.echo(json.dumps(document, indent=2))
        return
    console.print(f"old key: {_grouped(rotation.old_fingerprint)} (public key kept in {rotation.retired_file})")
    console.print(f"new key: {_grouped(rotation.new_fingerprint)}")
    console.print(
        "[yellow]restart the gateway, requisition and masking services: they sign with the old key until then[/yellow]"
    )


def _grouped(fp: str) -> str:
    """In groups of four, as receipts and csu-verify print it."""
    return " ".join(fp[i : i + 4] for i in range(0, len(fp), 4))
