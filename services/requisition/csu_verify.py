#!/usr/bin/env python3
"""csu-verify: check a CSU export package and print its chain of custody.

    python csu-verify.py PACKAGE [--fingerprint HEX | --key public-key.pem]

PACKAGE is the package folder (as copied from the USB medium) or its zip (a zip encrypted with a
password must be extracted first, e.g. with 7-Zip, and its folder checked).

It checks that:
  - manifest.json is signed (manifest.sig, Ed25519) by the CSU's key;
  - every file listed in the manifest is present and has exactly the SHA-256 it lists;
  - no file is missing and none was added.
A changed byte anywhere, a removed or added file, or a manifest signed by another key makes it
fail (exit code 1). Exit code 0: the package is exactly what the CSU delivered.

The package carries the CSU's public key, but a forger would replace it too: compare the
fingerprint it prints with the one the CSU published (on the receipt and in the register), or pass
it with --fingerprint (or the key itself with --key) and the verifier compares for you.

ONE file, Python 3.8+ standard library only (Ed25519 verification is implemented below from RFC
8032), so it runs on any computer with Python, Windows included, without installing anything.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import sys
import zipfile
from typing import TextIO

FORMAT = "csu-export/1"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
CHUNK = 1024 * 1024

# -- Ed25519 signature verification (RFC 8032, section 5.1.7; reference code of section 6) --------

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493


Point = tuple  # (X, Y, Z, T) in extended homogeneous coordinates


def _inv(x: int) -> int:
    return pow(x, _P - 2, _P)


_D = -121665 * _inv(121666) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def _add(a: Point, b: Point) -> Point:
    # Points in extended homogeneous coordinates (X, Y, Z, T), x = X/Z, y = Y/Z, x*y = T/Z.
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    aa = (y1 - x1) * (y2 - x2) % _P
    bb = (y1 + x1) * (y2 + x2) % _P
    cc = 2 * t1 * t2 * _D % _P
    dd = 2 * z1 * z2 % _P
    e, f, g, h = bb - aa, dd - cc, dd + cc, bb + aa
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _mul(scalar: int, point: Point) -> Point:
    result = (0, 1, 1, 0)  # the neutral element
    while scalar > 0:
        if scalar & 1:
            result = _add(result, point)
        point = _add(point, point)
        scalar >>= 1
    return result


def _equal(a: Point, b: Point) -> bool:
    return (a[0] * b[2] - b[0] * a[2]) % _P == 0 and (a[1] * b[2] - b[1] * a[2]) % _P == 0


def _recover_x(y: int, sign: int) -> int | None:
    if y >= _P:
        return None
    x2 = (y * y - 1) * _inv(_D * y * y + 1)
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P != 0:
        x = x * _SQRT_M1 % _P
    if (x * x - x2) % _P != 0:
        return None
    if (x & 1) != sign:
        x = _P - x
    return x


def _decompress(data: bytes) -> Point | None:
    if len(data) != 32:
        return None
    y = int.from_bytes(data, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    x = _recover_x(y, sign)
    if x is None:
        return None
    return (x, y, 1, x * y % _P)


_GY = 4 * _inv(5) % _P
_GX = 15112221349535400772501151409588531511454012693041857206046113283949847762202  # _recover_x(_GY, 0)
_G = (_GX, _GY, 1, _GX * _GY % _P)


def ed25519_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True when `signature` (64 bytes) is a valid Ed25519 signature of `message` by `public_key` (32 bytes)."""
    if len(public_key) != 32 or len(signature) != 64:
        return False
    a = _decompress(public_key)
    if a is None:
        return False
    r = _decompress(signature[:32])
    if r is None:
        return False
    s = int.from_bytes(signature[32:], "little")
    if s >= _L:
        return False
    h = int.from_bytes(hashlib.sha512(signature[:32] + public_key + message).digest(), "little") % _L
    return _equal(_mul(s, _G), _add(r, _mul(h, a)))


# -- keys -------------------------------------------------------------------------------------------

# DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): SEQUENCE { SEQUENCE { OID 1.3.101.112 }, BIT STRING }.
_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")


class VerifyError(Exception):
    """The package cannot be checked at all (not a package, unreadable key...)."""


def public_key_from_pem(text: str) -> bytes:
    """The 32 raw bytes of an Ed25519 public key in PEM (SubjectPublicKeyInfo)."""
    lines = [line.strip() for line in text.strip().splitlines()]
    if not lines or lines[0] != "-----BEGIN PUBLIC KEY-----" or lines[-1] != "-----END PUBLIC KEY-----":
        raise VerifyError("the public key is not a PEM 'PUBLIC KEY'")
    try:
        der = base64.b64decode("".join(lines[1:-1]), validate=True)
    except ValueError:
        raise VerifyError("the public key's PEM is not valid base64") from None
    if len(der) != 44 or not der.startswith(_SPKI_PREFIX):
        raise VerifyError("the public key is not an Ed25519 key")
    return der[len(_SPKI_PREFIX) :]


def fingerprint(raw_key: bytes) -> str:
    """SHA-256 of the raw public key, hex, in groups of four (what the CSU publishes)."""
    digest = hashlib.sha256(raw_key).hexdigest()
    return " ".join(digest[i : i + 4] for i in range(0, 64, 4))


def normalise_fingerprint(value: str) -> str:
    cleaned = value.strip().lower()
    if cleaned.startswith("sha256:"):
        cleaned = cleaned[7:]
    cleaned = "".join(c for c in cleaned if c not in " :-")
    if len(cleaned) != 64 or any(c not in "0123456789abcdef" for c in cleaned):
        raise VerifyError("a fingerprint is 64 hexadecimal digits (spaces and colons allowed)")
    return cleaned


# -- reading a package (a folder or a zip) ----------------------------------------------------------


class _Folder:
    def __init__(self, root: str) -> None:
        self.root = root
        self.label = root

    def names(self) -> list[str]:
        found = []
        for folder, _dirs, files in os.walk(self.root):
            for name in files:
                path = os.path.join(folder, name)
                found.append(os.path.relpath(path, self.root).replace(os.sep, "/"))
        return found

    def read(self, name: str) -> bytes:
        with open(os.path.join(self.root, *name.split("/")), "rb") as f:
            return f.read()

    def sha256(self, name: str) -> tuple[str, int]:
        digest = hashlib.sha256()
        size = 0
        with open(os.path.join(self.root, *name.split("/")), "rb") as f:
            while True:
                chunk = f.read(CHUNK)
                if not chunk:
                    break
                digest.update(chunk)
                size += len(chunk)
        return digest.hexdigest(), size

    def close(self) -> None:
        pass


class _Zip:
    def __init__(self, path: str) -> None:
        self.label = path
        try:
            self.zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise VerifyError(f"cannot open the zip: {exc}") from None
        infos = [i for i in self.zip.infolist() if not i.is_dir()]
        if any(i.flag_bits & 0x1 for i in infos):
            self.zip.close()
            raise VerifyError(
                "the zip is encrypted: extract it with its password (e.g. with 7-Zip), then check the folder"
            )
        tops = {i.filename.split("/", 1)[0] for i in infos}
        # The package's zip holds one folder; a zip of the folder's contents works too.
        self.prefix = (tops.pop() + "/") if len(tops) == 1 and all("/" in i.filename for i in infos) else ""
        self.infos = {i.filename[len(self.prefix) :]: i for i in infos}

    def names(self) -> list[str]:
        return list(self.infos)

    def read(self, name: str) -> bytes:
        return self.zip.read(self.infos[name])

    def sha256(self, name: str) -> tuple[str, int]:
        digest = hashlib.sha256()
        size = 0
        with self.zip.open(self.infos[name]) as f:
            while True:
                chunk = f.read(CHUNK)
                if not chunk:
                    break
                digest.update(chunk)
                size += len(chunk)
        return digest.hexdigest(), size

    def close(self) -> None:
        self.zip.close()


def open_package(path: str) -> _Folder | _Zip:
    if os.path.isdir(path):
        if not os.path.exists(os.path.join(path, MANIFEST)):
            # The folder the zip was extracted into may hold the package folder.
            inner = [d for d in os.listdir(path) if os.path.isfile(os.path.join(path, d, MANIFEST))]
            if len(inner) == 1:
                return _Folder(os.path.join(path, inner[0]))
        return _Folder(path)
    if os.path.isfile(path) and zipfile.is_zipfile(path):
        return _Zip(path)
    raise VerifyError(f"{path} is neither a package folder nor a zip")


# -- verification -----------------------------------------------------------------------------------


class Report:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.notes: list[str] = []
        self.manifest: dict | None = None
        self.fingerprint = ""
        self.key_source = ""
        self.signature_ok = False
        self.files_checked = 0

    @property
    def ok(self) -> bool:
        return not self.problems and self.signature_ok


def verify_package(path: str, expected_key_pem: str | None = None, expected_fingerprint: str | None = None) -> Report:
    """Check the package at `path`; returns a Report (raises VerifyError when it cannot be read at all)."""
    report = Report()
    package = open_package(path)
    try:
        _verify(package, report, expected_key_pem, expected_fingerprint)
    finally:
        package.close()
    return report


def _verify(
    package: _Folder | _Zip, report: Report, expected_key_pem: str | None, expected_fingerprint: str | None
) -> None:
    names = set(package.names())
    if MANIFEST not in names:
        raise VerifyError(f"no {MANIFEST}: this is not a CSU export package")
    manifest_bytes = package.read(MANIFEST)
    try:
        manifest = json.loads(manifest_bytes.decode("utf-8"))
    except ValueError:
        report.problems.append(f"{MANIFEST} is not valid JSON (it was changed)")
        return
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        report.problems.append(f"{MANIFEST} is not a {FORMAT} manifest")
        return
    report.manifest = manifest

    # The key: the one given by the user, else the package's own (to compare with the published one).
    key_file = (manifest.get("signing_key") or {}).get("file", "public-key.pem")
    package_key = None
    if key_file in names:
        try:
            package_key = public_key_from_pem(package.read(key_file).decode("ascii", "replace"))
        except VerifyError as exc:
            report.problems.append(f"{key_file}: {exc}")
    else:
        report.problems.append(f"the public key file {key_file} is missing")
    key: bytes | None
    if expected_key_pem is not None:
        key = public_key_from_pem(expected_key_pem)
        report.key_source = "the key you gave (--key)"
        if package_key is not None and package_key != key:
            report.problems.append("the package's public key is NOT the key you gave: it was not signed by the CSU")
    else:
        key = package_key
        report.key_source = "the package's own public-key.pem"
    if key is not None:
        report.fingerprint = fingerprint(key)
        if expected_fingerprint is not None:
            if normalise_fingerprint(report.fingerprint) != normalise_fingerprint(expected_fingerprint):
                report.problems.append("the signing key's fingerprint is NOT the one you gave: not signed by the CSU")
            else:
                report.key_source += ", matching the fingerprint you gave"

    # The signature over the manifest's exact bytes.
    if SIGNATURE not in names:
        report.problems.append(f"the signature {SIGNATURE} is missing")
    elif key is not None:
        try:
            signature = base64.b64decode(package.read(SIGNATURE).strip(), validate=True)
        except ValueError:
            signature = b""
        if ed25519_verify(key, manifest_bytes, signature):
            report.signature_ok = True
        else:
            report.problems.append(
                f"the signature of {MANIFEST} is NOT valid with this key: the manifest was changed or signed by "
                "another key"
            )

    # Every listed file, with its hash; nothing missing, nothing added.
    listed: dict[str, dict] = {}
    for entry in manifest.get("files") or []:
        listed[str(entry.get("path"))] = entry
    for name in sorted(listed):
        entry = listed[name]
        if name not in names:
            report.problems.append(f"missing file: {name}")
            continue
        digest, size = package.sha256(name)
        report.files_checked += 1
        if digest != entry.get("sha256") or size != entry.get("bytes"):
            report.problems.append(
                f"changed file: {name} (its SHA-256 is {digest}, the manifest says {entry.get('sha256')})"
            )
    for name in sorted(names - set(listed) - {MANIFEST, SIGNATURE}):
        report.problems.append(f"added file (not in the manifest): {name}")
    _chain_notes(manifest, report)


def _chain_notes(manifest: dict, report: Report) -> None:
    """Each extracted piece's segments follow each other in the archive's hash chain."""
    breaks = 0
    for camera in manifest.get("cameras") or []:
        for part in camera.get("parts") or []:
            segments = part.get("segments") or []
            # (Indexes, not itertools.pairwise: this file must run on Python 3.8.)
            for i in range(1, len(segments)):
                if segments[i].get("prev_sha256") != segments[i - 1].get("sha256"):
                    breaks += 1
    if breaks:
        report.notes.append(
            f"{breaks} segment link(s) of the archive's hash chain are not consecutive inside a range "
            "(a gap in the recording at the CSU)"
        )


# -- output -----------------------------------------------------------------------------------------


def _when(value: object) -> str:
    if isinstance(value, dict):
        text = value.get("paris") or value.get("utc") or "?"
        if value.get("utc"):
            text += f"  (UTC {value['utc']})"
        return text
    return str(value or "?")


def print_report(report: Report, out: TextIO) -> None:
    def line(text: str = "") -> None:
        out.write(text + "\n")

    m = report.manifest or {}
    line("=" * 78)
    line("CSU export package — chain of custody / chaîne de traçabilité")
    line("=" * 78)
    if m:
        request = m.get("request") or {}
        requisition = m.get("requisition") or {}
        operator = m.get("operator") or {}
        approval = m.get("approval") or {}
        created = m.get("created") or {}
        line(f"Request / demande          : {request.get('number', '?')}  ({request.get('requesting_service', '')})")
        line(f"Officer / enquêteur        : {request.get('officer', '')}")
        line(f"Case / procédure           : {request.get('case_reference', '')}")
        line(
            f"Requisition / réquisition  : {requisition.get('number', '?')} by {requisition.get('authority', '?')}"
            f" ({requisition.get('authority_kind', '?')}), issued {requisition.get('issued_on', '?')}"
        )
        line(f"  its scan's SHA-256       : {requisition.get('document_sha256', '?')}")
        line(f"Extracted by / extrait par : {operator.get('username', '?')} on {_when(operator.get('extracted'))}")
        line(
            f"Approved by / approuvé par : {approval.get('manager', '?')} ({approval.get('manager_name', '')})"
            f" on {_when(approval.get('approved'))}"
        )
        entry = f"#{approval.get('register_seq', '?')}  {approval.get('register_entry_hash', '')}"
        line(f"  register entry           : {entry}")
        line(f"Package built / constitué  : {_when(created)} by {created.get('by', '?')}")
        line()
        line("Footage / images:")
        for camera in m.get("cameras") or []:
            line(f"  Camera {camera.get('id', '?')} — {camera.get('name', '')}")
            for part in camera.get("parts") or []:
                span = f"{part.get('start_paris')} -> {part.get('end_paris')}  (Paris)"
                if part.get("empty"):
                    line(f"    {span}  nothing recorded / aucun enregistrement")
                    continue
                line(f"    {span}")
                line(f"    {part.get('start_utc')} -> {part.get('end_utc')}  (UTC)   {part.get('file')}")
                masks = ", ".join(part.get("mask_versions") or []) or "?"
                line(f"    {len(part.get('segments') or [])} archived segment(s), masks {masks}")
        line()
        line("Custody / traçabilité:")
        for step in m.get("chain_of_custody") or []:
            reason = f"  ({step['reason']})" if step.get("reason") else ""
            line(
                f"  {_when(step.get('at'))}  {step.get('from') or '-'} -> {step.get('to')}  by {step.get('by')}{reason}"
            )
        line()
    line("-" * 78)
    line("SIGNING KEY FINGERPRINT / EMPREINTE DE LA CLÉ (SHA-256):")
    line(f"    {report.fingerprint or '(no key)'}")
    line(f"  key used: {report.key_source}")
    if "matching" not in report.key_source and "--key" not in report.key_source:
        line("  !! Compare this fingerprint with the one the CSU published (receipt, register),")
        line("  !! or run again with --fingerprint. / Comparez cette empreinte avec celle publiée par le CSU.")
    line("-" * 78)
    line(f"Files checked / fichiers vérifiés: {report.files_checked}")
    line(f"Signature: {'valid / valide' if report.signature_ok else 'NOT VALID / NON VALIDE'}")
    for note in report.notes:
        line(f"Note: {note}")
    for problem in report.problems:
        line(f"PROBLEM / PROBLÈME: {problem}")
    line("=" * 78)
    if report.ok:
        line("RESULT: OK — the package is exactly what the CSU signed. / RÉSULTAT : conforme.")
    else:
        line("RESULT: FAILED — do not rely on this package. / RÉSULTAT : NON CONFORME.")
    line("=" * 78)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="csu-verify", description="Check a CSU export package (folder or zip) and print its chain of custody."
    )
    parser.add_argument("package", help="the package folder or its zip")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--fingerprint", help="the CSU's published key fingerprint (64 hex digits)")
    group.add_argument("--key", help="the CSU's public key file (PEM)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    try:
        # Windows consoles may not encode every character: never crash on output.
        sys.stdout.reconfigure(errors="replace")  # type: ignore[union-attr]
    except (AttributeError, ValueError):
        pass
    try:
        key_pem = None
        if args.key:
            with open(args.key, encoding="ascii", errors="replace") as f:
                key_pem = f.read()
        if args.fingerprint:
            normalise_fingerprint(args.fingerprint)
        report = verify_package(args.package, key_pem, args.fingerprint)
    except (VerifyError, OSError) as exc:
        sys.stderr.write(f"csu-verify: {exc}\n")
        return 2
    if args.json:
        document = {
            "ok": report.ok,
            "signature_ok": report.signature_ok,
            "fingerprint": report.fingerprint,
            "files_checked": report.files_checked,
            "problems": report.problems,
            "notes": report.notes,
        }
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    else:
        print_report(report, sys.stdout)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
