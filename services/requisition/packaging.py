"""The export package handed to the investigators: one folder, and a zip of it.

    CSU-RQ-2026-00042/
      video/<camera>_<start UTC>.mp4   one per camera and range: H.264 as recorded (never re-encoded),
                                       a timestamp subtitle track (UTC and Paris), the camera's name
      manifest.json                    what was delivered: requisition, cameras and names, ranges in
                                       UTC and Europe/Paris, the archive chain's SHA-256 of every
                                       segment, mask versions, operator, approving manager, the
                                       chain of custody, and the SHA-256 of every other file
      manifest.sig                     Ed25519 signature of manifest.json's exact bytes (deployment key)
      public-key.pem                   the deployment's public key
      SHA256SUMS.txt                   the same hashes for `sha256sum -c`
      README.txt                       French and English
      csu-verify.py                    the verifier (one file, Python standard library only)

The zip may be encrypted (AES-256, WinZip AE-2, as 7-Zip reads it) with a password of at least 12
characters, which is never stored. Built in a temporary folder, uploaded to the exports bucket,
and the folder removed: the only copies of footage are the buffer and the package, both purged at
delivery.
"""

import hashlib
import json
import shutil
import tempfile
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyzipper

from services.common.db import session
from services.common.objectstore import ObjectNotFound
from services.common.refusals import DataLoss, Invalid
from services.requisition import csu_verify
from services.requisition.context import Context
from services.requisition.models import (
    Document,
    ExtractPart,
    ExtractSegment,
    RegisterEntry,
    RequestedRange,
    Requisition,
    Transition,
)
from services.requisition.timefmt import both, paris, utc

MIN_PASSWORD = 12
FORMAT = "csu-export/1"


@dataclass(frozen=True)
class Built:
    package_id: str
    key: str
    filename: str
    sha256: str
    size: int
    manifest_sha256: str
    files: list[dict]
    encrypted: bool


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def grouped(fingerprint: str) -> str:
    return " ".join(fingerprint[i : i + 4] for i in range(0, len(fingerprint), 4))


def readme(row: Requisition, fingerprint: str, encrypted: bool) -> str:
    fp = grouped(fingerprint)
    return f"""CSU — PAQUET D'EXPORT / EXPORT PACKAGE  {row.number}
==========================================================================

FRANÇAIS

Ce dossier contient les images remises en exécution de la réquisition {row.req_number}
({row.req_authority}). Chaque fichier du dossier video/ est une vidéo MP4 (H.264, telle
qu'enregistrée, jamais réencodée) lisible dans VLC ou un navigateur ; elle porte une piste de
sous-titres avec la date et l'heure (UTC et Paris) et le nom de la caméra.

manifest.json décrit la remise (réquisition, caméras, plages horaires en UTC et heure de Paris,
empreintes SHA-256 des segments de l'archive, versions des masques, opérateur, responsable ayant
approuvé, traçabilité) et donne l'empreinte SHA-256 de chaque fichier. manifest.sig est sa
signature Ed25519 par la clé du CSU (public-key.pem).

Vérification (Python 3, sans installation, Windows compris) :
    python csu-verify.py .  --fingerprint "{fp}"
Empreinte de la clé du CSU : {fp}
Comparez-la à celle figurant sur le récépissé de remise. Un octet modifié, un fichier ajouté ou
retiré, ou une signature d'une autre clé sont détectés.

Après la remise, la conservation et la destruction de ces images relèvent du destinataire
(procédure judiciaire) ; le CSU a détruit sa copie tampon.
{"Le zip est chiffré (AES-256) : ouvrez-le avec 7-Zip et le mot de passe communiqué à part." if encrypted else ""}

ENGLISH

This folder holds the footage delivered under requisition {row.req_number} ({row.req_authority}).
Each file in video/ is an MP4 (H.264 as recorded, never re-encoded) that plays in VLC or a web
browser, with a subtitle track giving the date and time (UTC and Paris) and the camera's name.

manifest.json describes the delivery (requisition, cameras, time ranges in UTC and Paris time,
SHA-256 of the archive's segments, mask versions, operator, approving manager, chain of custody)
and gives the SHA-256 of every file. manifest.sig is its Ed25519 signature by the CSU's key
(public-key.pem).

To verify (Python 3, nothing to install, Windows included):
    python csu-verify.py .  --fingerprint "{fp}"
The CSU's key fingerprint: {fp}
Compare it with the one on the delivery receipt. A changed byte, an added or removed file, or a
signature by another key are detected.

After delivery, keeping and destroying this footage is the recipient's responsibility (judicial
procedure); the CSU has destroyed its buffer copy.
{"The zip is encrypted (AES-256): open it with 7-Zip and the password given separately." if encrypted else ""}
"""


def _video_names(parts: list[ExtractPart]) -> dict[int, str]:
    names: dict[int, str] = {}
    used: set[str] = set()
    for part in parts:
        if part.empty:
            continue
        stem = f"video/{part.camera_id}_{utc(part.start_us)[:19].replace('-', '').replace(':', '')}Z"
        name, n = f"{stem}.mp4", 2
        while name in used:
            name, n = f"{stem}-{n}.mp4", n + 1
        used.add(name)
        names[part.position] = name
    return names


def manifest(
    ctx: Context,
    row: Requisition,
    ranges: list[RequestedRange],
    parts: list[tuple[ExtractPart, list[ExtractSegment]]],
    transitions: list[Transition],
    names: dict[int, str],
    created_us: int,
    actor: str,
    package_id: str,
) -> dict:
    cameras: dict[str, dict] = {}
    for r in ranges:
        cameras.setdefault(r.camera_id, {"id": r.camera_id, "name": r.camera_name, "requested": [], "parts": []})
        cameras[r.camera_id]["requested"].append(
            {
                "start_utc": utc(r.start_us),
                "end_utc": utc(r.end_us),
                "start_paris": paris(r.start_us),
                "end_paris": paris(r.end_us),
            }
        )
    for part, segments in parts:
        camera = cameras.setdefault(
            part.camera_id, {"id": part.camera_id, "name": part.camera_name, "requested": [], "parts": []}
        )
        if part.camera_name:
            camera["name"] = part.camera_name
        entry: dict = {
            "start_utc": utc(part.start_us),
            "end_utc": utc(part.end_us),
            "start_paris": paris(part.start_us),
            "end_paris": paris(part.end_us),
            "empty": part.empty,
        }
        if not part.empty:
            entry |= {
                "file": names[part.position],
                "clip": {
                    "first_frame": both(part.clip_start_us),
                    "end": both(part.clip_end_us),
                    "frames": part.frames,
                    "sha256": part.clip_sha256,
                },
                "mask_versions": sorted({g.mask_version for g in segments if g.mask_version}),
                "segments": [
                    {
                        "id": g.segment_id,
                        "start_utc": utc(g.start_us),
                        "end_utc": utc(g.end_us),
                        "sha256": g.sha256,
                        "prev_sha256": g.prev_sha256,
                        "mask_version": g.mask_version,
                        "bytes": g.bytes,
                    }
                    for g in segments
                ],
            }
        camera["parts"].append(entry)
    return {
        "format": FORMAT,
        "package_id": package_id,
        "created": both(created_us) | {"by": actor},
        "signing_key": {"file": "public-key.pem", "fingerprint": ctx.key_fingerprint, "algorithm": "Ed25519"},
        "request": {
            "number": row.number,
            "requesting_service": row.requesting_service,
            "officer": row.officer,
            "case_reference": row.case_reference,
            "reason": row.reason,
            "channel": row.channel,
            "partner": row.partner,
            "requested": both(row.created_us) | {"by": row.requested_by},
        },
        "requisition": {
            "number": row.req_number,
            "authority": row.req_authority,
            "authority_kind": row.req_authority_kind,
            "issued_on": row.req_issued_on,
            "document_sha256": _requisition_sha256(ctx, row),
        },
        "operator": {"username": row.extracted_by, "extracted": both(row.extracted_us or 0)},
        "approval": {
            "manager": row.approved_by,
            "manager_name": row.approved_by_name,
            "approved": both(row.approved_us or 0),
            "register_seq": row.approval_seq,
            "register_entry_hash": _entry_hash(ctx, row.approval_seq),
        },
        "cameras": list(cameras.values()),
        "chain_of_custody": [
            {"at": both(t.at_us), "from": t.from_state, "to": t.to_state, "by": t.actor, "reason": t.reason}
            for t in transitions
        ],
    }


def _requisition_sha256(ctx: Context, row: Requisition) -> str:
    with session(ctx.engine) as s:
        doc = s.get(Document, row.req_document_id) if row.req_document_id else None
        return doc.sha256 if doc else ""


def _entry_hash(ctx: Context, seq: int | None) -> str:
    if not seq:
        return ""
    with session(ctx.engine) as s:
        entry = s.get(RegisterEntry, seq)
        return entry.entry_hash if entry else ""


def build(
    ctx: Context,
    row: Requisition,
    ranges: list[RequestedRange],
    parts: list[tuple[ExtractPart, list[ExtractSegment]]],
    transitions: list[Transition],
    created_us: int,
    actor: str,
    password: str,
    progress: Callable[[float], None] = lambda fraction: None,
) -> Built:
    """Build the folder and its zip, upload the zip to the exports bucket; returns what was built.

    `progress` hears how far it has got, 0 to 1, counted in bytes: the clips go through four passes
    (download, hashed on the way; zip; the zip's hash; upload) and everything else is small beside them.
    """
    if password and len(password) < MIN_PASSWORD:
        raise Invalid(f"the package password must have at least {MIN_PASSWORD} characters")
    package_id = uuid.uuid4().hex
    folder_name = f"CSU-{row.number}"
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="package-", dir=ctx.work_dir))
    total = 4 * max(sum(p.clip_bytes for p, _ in parts if not p.empty), 1)
    done = 0

    def advance(size: int) -> None:
        nonlocal done
        done += size
        progress(done / total)

    try:
        folder = tmp / folder_name
        (folder / "video").mkdir(parents=True)
        names = _video_names([p for p, _ in parts])
        digests: dict[str, str] = {}  # path in the folder -> SHA-256; the clips' hashed as they arrive
        for part, _segments in parts:
            if part.empty:
                continue
            path = folder / names[part.position]
            digest = hashlib.sha256()
            try:
                with path.open("wb") as f:
                    for chunk in ctx.extractions.iter_chunks(part.clip_key):
                        f.write(chunk)
                        digest.update(chunk)
                        advance(len(chunk))
            except ObjectNotFound as exc:
                raise DataLoss(f"the buffer copy of {part.camera_id} is missing: {exc}") from exc
            if digest.hexdigest() != part.clip_sha256:
                raise DataLoss(f"the buffer copy of {part.camera_id} does not match its SHA-256: not delivered")
            digests[names[part.position]] = digest.hexdigest()
        (folder / "public-key.pem").write_text(ctx.signer.public_pem())
        shutil.copyfile(csu_verify.__file__, folder / "csu-verify.py")
        (folder / "README.txt").write_text(readme(row, ctx.key_fingerprint, bool(password)), encoding="utf-8")
        listed = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        for name in listed:
            if name not in digests:
                digests[name] = _sha256_file(folder / name)
        sums = "".join(f"{digests[name]}  {name}\n" for name in listed)
        (folder / "SHA256SUMS.txt").write_text(sums, encoding="ascii")
        digests["SHA256SUMS.txt"] = _sha256_file(folder / "SHA256SUMS.txt")
        listed = sorted(digests)
        files = [{"path": n, "sha256": digests[n], "bytes": (folder / n).stat().st_size} for n in listed]
        document = manifest(ctx, row, ranges, parts, transitions, names, created_us, actor, package_id)
        document["files"] = files
        manifest_bytes = (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
        (folder / "manifest.json").write_bytes(manifest_bytes)
        (folder / "manifest.sig").write_text(ctx.signer.sign(manifest_bytes) + "\n", encoding="ascii")
        zip_name = f"{folder_name}.zip"
        zip_path = tmp / zip_name
        _zip(folder, zip_path, folder_name, password, advance)
        key = f"packages/{row.id}/{package_id}/{zip_name}"
        zip_sha256 = _sha256_file(zip_path)
        advance(zip_path.stat().st_size)
        ctx.exports.ensure_bucket()
        ctx.exports.put_file(key, zip_path, {"sha256": zip_sha256}, "application/zip")
        advance(zip_path.stat().st_size)
        return Built(
            package_id=package_id,
            key=key,
            filename=zip_name,
            sha256=zip_sha256,
            size=zip_path.stat().st_size,
            manifest_sha256=hashlib.sha256(manifest_bytes).hexdigest(),
            files=[*files, *_signed_files(folder)],
            encrypted=bool(password),
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _signed_files(folder: Path) -> list[dict]:
    return [
        {"path": n, "sha256": _sha256_file(folder / n), "bytes": (folder / n).stat().st_size}
        for n in ("manifest.json", "manifest.sig")
    ]


def _zip(folder: Path, target: Path, top: str, password: str, zipped: Callable[[int], None]) -> None:
    """Zip the folder under `top`; `zipped` hears the size of every file once it is in."""
    paths = sorted(p for p in folder.rglob("*") if p.is_file())
    if password:
        with pyzipper.AESZipFile(target, "w", compression=pyzipper.ZIP_DEFLATED, encryption=pyzipper.WZ_AES) as z:
            z.setpassword(password.encode())
            z.setencryption(pyzipper.WZ_AES, nbits=256)
            for path in paths:
                z.write(path, f"{top}/{path.relative_to(folder).as_posix()}", compress_type=_method(path))
                zipped(path.stat().st_size)
        return
    with zipfile.ZipFile(target, "w", allowZip64=True) as z:
        for path in paths:
            z.write(path, f"{top}/{path.relative_to(folder).as_posix()}", compress_type=_method(path))
            zipped(path.stat().st_size)


def _method(path: Path) -> int:
    # Video does not compress; text does.
    return zipfile.ZIP_STORED if path.suffix == ".mp4" else zipfile.ZIP_DEFLATED
