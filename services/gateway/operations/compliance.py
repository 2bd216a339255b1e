"""The compliance report that feeds the city's data-protection impact assessment (AIPD/DPIA).

What the platform can state about itself, gathered in one document:
- cameras: state, groups, recording profile against the technical norms, retention, authorisation;
- prefectoral authorisations: dates, status, purposes, maximum retention, recipients (no perimeter:
  it reveals where cameras are);
- retention: each camera's setting against its authorisation's maximum and the legal 30 days;
- the access matrix: roles → actions, accounts → role, camera groups and habilitation (granted by,
  expiry, prefecture validation), federation partners → groups and actions;
- masks (MaskingService): per camera the approved mask set, who drew and who approved it, the PTZ
  calibration it is projected with, or the supervisor's signed statement that no private area is
  in view; drafts; open mask-error reports;
- deletion proofs from the archive, each digest recomputed here, and each found, as it stands, in
  the audit trail's erasure records (`recording.erase`, written by the archive at most
  CSU_ARCHIVE_ERASURE_AUDIT_INTERVAL_S after a sweep);
- the audit trail: chain verification, signed checkpoints, every signing key it names and from when;
- the viewing room: the register's declarations and their state; who is in the room now, the
  agents on shift (the field report wants two, day and night), the visitors' stays over the last
  ROOM_PERIOD with their declaration (its reference, never the visitor's name);
- partners' conventions: per partner its convention, scope, expiry and status (federation/);
- the real streams: what each camera sends as ingest measures it, against its declared profile and
  the arrêté's minimum for its use (operations/compliance_streams.py);
- the retention of every other personal datum (operations/retention.py): period, hard cap and legal
  basis per kind, the last erasure as the audit trail records it, what is overdue and due next.
- date, time and camera identity on every image (burned in by masking, or the camera's own
  declared on-screen display), and what the build guarantees of sound and biometrics
  (operations/compliance_identity.py).

Each section is collected on its own: a service that cannot answer makes its section say so (and
the findings list it) instead of failing the whole report. `findings` lists every problem found,
for the reader who has no time for the tables.
"""

import asyncio
import hashlib
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import grpc
from sqlalchemy import Engine
from sqlmodel import col, select

from services.common import audit
from services.common.clock import to_us
from services.common.db import session
from services.common.log import get_logger
from services.common.objectstore import StoreUnavailable
from services.common.pb.csu.v1 import archive_pb2, ingest_pb2, masking_pb2, masking_pb2_grpc
from services.common.settings import LEGAL_MAX_RETENTION_DAYS
from services.common.technical_norms import profile_problem
from services.common.timefmt import iso
from services.gateway.backends import RPC_TIMEOUT_S, Backends
from services.gateway.identity import accounts, audit_log, signing_key_audit
from services.gateway.identity.federation import partners
from services.gateway.identity.models import AuditCheckpoint
from services.gateway.identity.roles import ACTIONS, ROLE_ACTIONS, TOTP_ROLES, VIDEO_ACTIONS
from services.gateway.operations import compliance_identity, compliance_streams, room, visitors
from services.gateway.operations import retention as personal_retention
from services.gateway.operations.models import VisitorDeclaration

log = get_logger(__name__)
# Habilitations expiring this soon are flagged, so their renewal is filed in time.
EXPIRY_WARNING = timedelta(days=60)
# The visitors' stays the report lists: the month before it (the report takes no period of its own).
ROOM_PERIOD = timedelta(days=31)
# The field report: two agents on duty in the viewing room, day and night.
AGENTS_REQUIRED = 2
# Mask queries run concurrently, a few at a time: one camera's two calls must not wait for all others'.
MASK_CALLS_AT_ONCE = 8


def proof_digest(p: archive_pb2.DeletionProof) -> str:
    """The archive's digest of a deletion proof, recomputed (format in services/archive/index.py)."""
    fields = (p.camera_id, p.stream, p.hour_start_us, p.count, p.bytes, p.first_us, p.last_us, " ".join(p.sha256s))
    return hashlib.sha256("|".join(str(v) for v in fields).encode()).hexdigest()


async def _section(name: str, collect: Callable[[], Awaitable[dict[str, Any]]], findings: list[str]) -> dict[str, Any]:
    try:
        return {"available": True} | await collect()
    except Exception as exc:  # noqa: BLE001 - one section down must not hide the others
        log.warning("compliance section unavailable", section=name, error=str(exc) or type(exc).__name__)
        reason = exc.details() if isinstance(exc, grpc.aio.AioRpcError) else None
        message = f"{name}: could not be collected ({reason or type(exc).__name__})"
        findings.append(message)
        return {"available": False, "problem": message}


async def collect(b: Backends, generated_by: str) -> dict[str, Any]:
    now = b.clock.now()
    now_us = to_us(now)
    findings: list[str] = []
    cameras_pb: list[ingest_pb2.Camera] = []
    authorisations_pb: list[ingest_pb2.Authorisation] = []

    async def cameras() -> dict[str, Any]:
        answer = await b.ingest.ListCameras(ingest_pb2.ListCamerasRequest(), timeout=RPC_TIMEOUT_S)
        cameras_pb.extend(answer.cameras)
        rows = []
        for c in answer.cameras:
            norm = profile_problem(c.profile.width, c.profile.height, c.profile.fps, c.profile.close_up)
            if norm and c.state != "decommissioned":
                findings.append(f"camera {c.id}: {norm}")
            rows.append(
                {
                    "id": c.id,
                    "name": c.name,
                    "state": c.state,
                    "groups": list(c.groups),
                    "status": c.status,
                    "profile": {
                        "width": c.profile.width,
                        "height": c.profile.height,
                        "fps": c.profile.fps,
                        "close_up": c.profile.close_up,
                        "meets_norms": norm is None,
                    },
                    "retention_days": c.retention_days,
                    "authorisation_ref": c.authorisation_ref,
                    "recording_allowed": c.recording_allowed,
                    "recording_refusal": c.recording_refusal,
                    "ptz": bool(c.ptz_driver),
                }
            )
        return {"cameras": rows}

    async def authorisations() -> dict[str, Any]:
        answer = await b.ingest.ListAuthorisations(ingest_pb2.ListAuthorisationsRequest(), timeout=RPC_TIMEOUT_S)
        authorisations_pb.extend(answer.authorisations)
        rows = []
        for a in answer.authorisations:
            if a.status in ("expired", "expiring"):
                findings.append(f"authorisation {a.reference}: {a.status} (expiry {iso(a.expiry_us)})")
            if a.max_retention_days > LEGAL_MAX_RETENTION_DAYS:
                findings.append(f"authorisation {a.reference}: maximum retention above {LEGAL_MAX_RETENTION_DAYS} days")
            rows.append(
                {
                    "reference": a.reference,
                    "decision": iso(a.decision_us),
                    "expiry": iso(a.expiry_us),
                    "status": a.status,
                    "purposes": list(a.purposes),
                    "max_retention_days": a.max_retention_days,
                    "recipients": list(a.recipients),
                    "camera_ids": list(a.camera_ids),
                }
            )
        return {"authorisations": rows}

    camera_section = await _section("cameras", cameras, findings)
    authorisation_section = await _section("authorisations", authorisations, findings)
    retention = _retention(cameras_pb, authorisations_pb, findings) if camera_section["available"] else None
    streams = (
        {"available": True} | compliance_streams.collect(cameras_pb, findings)
        if camera_section["available"]
        else {"available": False, "problem": "streams: the camera list could not be obtained"}
    )
    image_identity = (
        {"available": True} | compliance_identity.collect(cameras_pb, findings)
        if camera_section["available"]
        else {"available": False, "problem": "image identity: the camera list could not be obtained"}
    )

    async def deletion() -> dict[str, Any]:
        answer = await b.archive.ListDeletionProofs(archive_pb2.DeletionProofsRequest(), timeout=RPC_TIMEOUT_S)
        proofs = list(answer.proofs)
        # A proof swept before the archive's last erasure round (plus two sweeps) must be in the trail;
        # older than the trail's retention, its record is purged with it.
        rounds = b.settings.archive_erasure_audit_interval_s + 2 * b.settings.archive_sweep_interval_s
        due_us = to_us(now - timedelta(seconds=rounds))
        kept_us = to_us(now - timedelta(days=b.settings.audit_retention_days))
        erasures = await asyncio.to_thread(_erasures_in_trail, b.engine, proofs, kept_us, due_us, findings)
        return _deletion_summary(proofs, findings) | erasures

    async def masks() -> dict[str, Any]:
        if not camera_section["available"]:
            raise RuntimeError("the camera list is needed to ask for each camera's masks")
        return await _masks(b.masking, cameras_pb, findings)

    mask_section = await _section("masks", masks, findings)
    deletion_section = await _section("deletion proofs", deletion, findings)
    access_section = await _section("access matrix", lambda: asyncio.to_thread(_access, b, now_us, findings), findings)
    audit_section = await _section("audit trail", lambda: asyncio.to_thread(_audit, b, findings), findings)
    register_section = await _section(
        "viewing room", lambda: asyncio.to_thread(_viewing_room, b, now_us, findings), findings
    )
    conventions_section = await _section(
        "partner conventions",
        lambda: asyncio.to_thread(lambda: partner_conventions(partners.all_partners(b.engine), now_us, findings)),
        findings,
    )
    personal_section = await _section(
        "personal data retention", lambda: personal_retention.report(b, findings), findings
    )
    if register_section.get("pending_not_mailed"):
        findings.append(
            f"viewing-room register: {register_section['pending_not_mailed']} declaration(s) not yet mailed to the "
            "prefecture"
        )
    return {
        "title": "Rapport de conformité — centre de supervision urbaine",
        "generated_at": iso(now_us),
        "generated_by": generated_by,
        "legal_max_retention_days": LEGAL_MAX_RETENTION_DAYS,
        "findings": findings,
        "cameras": camera_section,
        "authorisations": authorisation_section,
        "retention": {"available": retention is not None, "cameras": retention or []},
        "access": access_section,
        "masks": mask_section,
        "deletion_proofs": deletion_section,
        "audit_trail": audit_section,
        "viewing_room": register_section,
        "streams": streams,
        "personal_data_retention": personal_section,
        "partner_conventions": conventions_section,
        "image_identity": image_identity,
        "no_sound_no_biometrics": compliance_identity.no_sound_no_biometrics(),
    }


def _retention(
    cameras: list[ingest_pb2.Camera], authorisations: list[ingest_pb2.Authorisation], findings: list[str]
) -> list[dict[str, Any]]:
    by_ref = {a.reference: a for a in authorisations}
    rows = []
    for c in cameras:
        authorisation = by_ref.get(c.authorisation_ref)
        allowed = min(authorisation.max_retention_days, LEGAL_MAX_RETENTION_DAYS) if authorisation else None
        problems = []
        if c.retention_days > LEGAL_MAX_RETENTION_DAYS:
            problems.append(f"retention {c.retention_days} d above the legal {LEGAL_MAX_RETENTION_DAYS} d")
        if not c.authorisation_ref:
            problems.append("no prefectoral authorisation")
        elif authorisation is None and by_ref:
            problems.append(f"authorisation {c.authorisation_ref} not found")
        elif allowed is not None and c.retention_days > allowed:
            problems.append(f"retention {c.retention_days} d above the authorisation's {allowed} d")
        if c.state != "decommissioned":
            findings.extend(f"camera {c.id}: {p}" for p in problems)
        rows.append(
            {
                "camera_id": c.id,
                "retention_days": c.retention_days,
                "authorisation_ref": c.authorisation_ref,
                "authorisation_max_days": authorisation.max_retention_days if authorisation else None,
                "compliant": not problems,
                "problems": problems,
            }
        )
    return rows


async def _masks(
    stub: "masking_pb2_grpc.MaskingServiceAsyncStub", cameras: list[ingest_pb2.Camera], findings: list[str]
) -> dict[str, Any]:
    """Per camera: the approved mask set (who drew it, who approved it), or the supervisor's signed
    statement that no private area is in view; pending drafts; open mask-error reports."""
    gate = asyncio.Semaphore(MASK_CALLS_AT_ONCE)

    async def one(camera: ingest_pb2.Camera) -> tuple[list[masking_pb2.MaskSet], masking_pb2.CommissioningStatus]:
        async with gate:
            sets = await stub.ListMaskSets(masking_pb2.ListMaskSetsRequest(camera_id=camera.id), timeout=RPC_TIMEOUT_S)
            status = await stub.GetCommissioningStatus(
                masking_pb2.CommissioningStatusRequest(camera_id=camera.id), timeout=RPC_TIMEOUT_S
            )
        return list(sets.sets), status

    answers = await asyncio.gather(*(one(c) for c in cameras))
    reports = await stub.ListMaskErrors(masking_pb2.ListMaskErrorsRequest(status="open"), timeout=RPC_TIMEOUT_S)
    open_reports = Counter(r.camera_id for r in reports.reports)
    rows = []
    for camera, (sets, status) in zip(cameras, answers, strict=True):
        approved = next((m for m in sets if m.status == "approved"), None)
        statement = status.statement if status.has_statement else None
        if camera.state == "in_service" and not status.commissionable:
            findings.append(f"camera {camera.id}: in service without an approved mask set or a signed statement")
        if open_reports[camera.id]:
            findings.append(f"camera {camera.id}: {open_reports[camera.id]} open mask error report(s)")
        uncalibrated = (
            approved is not None
            and bool(camera.ptz_driver and approved.space == "ptz" and approved.polygons)
            and not approved.calibration_version
        )
        if uncalibrated and camera.state != "decommissioned":
            findings.append(
                f"camera {camera.id}: PTZ masks approved without a calibration of the camera: its image is masked whole"
            )
        rows.append(
            {
                "camera_id": camera.id,
                "commissionable": status.commissionable,
                "approved_version": approved.mask_version if approved else None,
                "space": approved.space if approved else None,
                "polygons": len(approved.polygons) if approved else 0,
                "author": approved.author if approved else None,
                "approver": approved.approver if approved else None,
                "approved": iso(approved.approved_us) if approved and approved.approved_us else None,
                "origin": approved.origin if approved else None,
                "drafts": sum(1 for m in sets if m.status == "draft"),
                "versions": len(sets),
                "statement_by": statement.supervisor if statement else None,
                "statement_signed": iso(statement.signed_us) if statement else None,
                "open_error_reports": open_reports[camera.id],
                # PTZ sets: the calibration they are projected with (None: none, the camera is masked whole).
                "calibration_version": (approved.calibration_version or None) if approved else None,
            }
        )
    return {
        "cameras": rows,
        "open_error_reports": [
            {
                "id": r.id,
                "camera_id": r.camera_id,
                "reported": iso(r.reported_us),
                "reporter": r.reporter,
                "mask_version": r.mask_version,
            }
            for r in reports.reports
        ],
    }


def _deletion_summary(proofs: list[archive_pb2.DeletionProof], findings: list[str]) -> dict[str, Any]:
    per_camera: dict[str, dict[str, Any]] = {}
    mismatches = []
    for p in proofs:
        row = per_camera.setdefault(
            p.camera_id,
            {
                "camera_id": p.camera_id,
                "proofs": 0,
                "segments": 0,
                "bytes": 0,
                "oldest": None,
                "newest": None,
                "last_sweep": None,
                "max_retention_days": 0,
            },
        )
        row["proofs"] += 1
        row["segments"] += p.count
        row["bytes"] += p.bytes
        row["oldest"] = min(filter(None, [row["oldest"], p.first_us]), default=None)
        row["newest"] = max(filter(None, [row["newest"], p.last_us]), default=None)
        row["last_sweep"] = max(filter(None, [row["last_sweep"], p.swept_us]), default=None)
        row["max_retention_days"] = max(row["max_retention_days"], p.retention_days)
        if proof_digest(p) != p.digest:
            mismatches.append({"camera_id": p.camera_id, "hour_start": iso(p.hour_start_us), "digest": p.digest})
            findings.append(f"deletion proof of {p.camera_id} at {iso(p.hour_start_us)}: digest does not match")
        if p.retention_days > LEGAL_MAX_RETENTION_DAYS:
            findings.append(f"deletion proof of {p.camera_id}: applied retention {p.retention_days} d above the law")
    cameras = []
    for row in sorted(per_camera.values(), key=lambda r: r["camera_id"]):
        cameras.append(row | {k: iso(row[k]) for k in ("oldest", "newest", "last_sweep")})
    return {
        "proofs": len(proofs),
        "digests_verified": len(proofs) - len(mismatches),
        "digest_mismatches": mismatches,
        "cameras": cameras,
    }


def _erasures_in_trail(
    engine: Engine, proofs: list[archive_pb2.DeletionProof], kept_us: int, due_us: int, findings: list[str]
) -> dict[str, Any]:
    """Which proofs, as they stand (digest), an erasure record of the audit trail names; those swept
    between `kept_us` and `due_us` and named by none are erasures the trail does not show."""
    named: set[str] = set()
    after = 0
    while page := audit_log.search(engine, action=audit.RECORDING_ERASE, after_seq=after, limit=500):
        for entry in page:
            named.update(str(p.get("digest", "")) for p in json.loads(entry.details_json).get("proofs", []))
        after = page[-1].seq
    missing = [p for p in proofs if p.digest not in named and kept_us <= p.swept_us <= due_us]
    if missing:
        first = min(missing, key=lambda p: p.hour_start_us)
        findings.append(
            f"deletion proofs: {len(missing)} not in the audit trail (erasures it does not show), "
            f"the first of {first.camera_id} at {iso(first.hour_start_us)}"
        )
    return {
        "erasures_audited": sum(p.digest in named for p in proofs),
        "erasures_not_audited": [{"camera_id": p.camera_id, "hour_start": iso(p.hour_start_us)} for p in missing],
    }


def _access(b: Backends, now_us: int, findings: list[str]) -> dict[str, Any]:
    users = []
    warn_us = now_us + int(EXPIRY_WARNING.total_seconds() * 1e6)
    for u in accounts.all_users(b.engine):
        problems = []
        video = bool(ROLE_ACTIONS.get(u.role, frozenset()) & VIDEO_ACTIONS)
        if video and u.prefecture_validated_us is None:
            problems.append("habilitation not validated by the prefecture")
        if u.expires_us is not None and u.expires_us <= now_us:
            problems.append("habilitation expired")
        elif u.expires_us is not None and u.expires_us <= warn_us:
            problems.append("habilitation expires within 60 days")
        if b.settings.require_totp and u.role in TOTP_ROLES and not u.totp_confirmed:
            problems.append("no TOTP second factor enrolled yet")
        if u.active and video:
            findings.extend(f"account {u.username}: {p}" for p in problems if "TOTP" not in p)
        users.append(
            {
                "username": u.username,
                "display_name": u.display_name,
                "role": u.role,
                "active": u.active,
                "camera_groups": list(u.camera_groups),
                "granted_by": u.granted_by,
                "granted": iso(u.granted_us),
                "expires": iso(u.expires_us),
                "prefecture_ref": u.prefecture_ref,
                "prefecture_validated": iso(u.prefecture_validated_us),
                "playback_days": u.playback_days,
                "totp_enrolled": u.totp_confirmed,
                "problems": problems,
            }
        )
    partner_rows = [
        {
            "id": p.id,
            "name": p.name,
            "camera_groups": list(p.camera_groups),
            "actions": sorted(p.actions),
            "ptz_priority": p.ptz_priority,
            "active": p.active,
            "certificate_expires": iso(p.cert_expires_us),
            "revoked": iso(p.revoked_us),
        }
        for p in partners.all_partners(b.engine)
    ]
    return {
        "actions": sorted(ACTIONS),
        "roles": {role: sorted(actions) for role, actions in sorted(ROLE_ACTIONS.items())},
        "totp_required": b.settings.require_totp,
        "users": users,
        "partners": partner_rows,
    }


def _audit(b: Backends, findings: list[str]) -> dict[str, Any]:
    try:
        verdict = audit_log.verify_anchored(b.engine, b.signer.keyring(), b.anchors, b.cadence)
    except StoreUnavailable as exc:
        findings.append(f"audit trail: the heads published outside the database cannot be read ({exc})")
        verdict = audit_log.verify_chain(b.engine, b.signer.keyring(), cadence=b.cadence)
    with session(b.engine) as s:
        checkpoints = list(s.exec(select(AuditCheckpoint.signed_us)))
    if not verdict.ok:
        findings.append(f"audit trail: {verdict.problem}")
    keys = signing_key_audit.key_history(b.engine)
    if key_finding := signing_key_audit.mismatch(keys, b.signer.fingerprint):
        findings.append(key_finding)
    return {
        "chain_ok": verdict.ok,
        "entries": verdict.entries,
        "first_bad_seq": verdict.first_bad_seq,
        "problem": verdict.problem,
        "signed_checkpoints": len(checkpoints),
        "last_checkpoint": iso(max(checkpoints)) if checkpoints else None,
        "retention_days": b.settings.audit_retention_days,
        "signing_key": b.signer.fingerprint,
        "signing_keys": [
            {
                "fingerprint": k.fingerprint,
                "since": iso(k.since_us),
                "how": "rotated" if k.action == signing_key_audit.ROTATE_ACTION else "found at start",
                "by": k.actor,
                "previous_fingerprint": k.previous_fingerprint,
            }
            for k in keys
        ],
    }


def partner_conventions(partner_list: list[partners.Partner], now_us: int, findings: list[str]) -> dict[str, Any]:
    """Each partner's convention: reference, scope, expiry, status. A partner still active whose
    convention has ended or was never recorded is refused at the door (security.py), but is a
    finding: its registration outlives the agreement it rests on."""
    rows = []
    for p in partner_list:
        status = partners.convention_status(p, now_us)
        if p.active and status == partners.CONVENTION_EXPIRED:
            findings.append(
                f"partner {p.id}: convention {p.convention_ref} expired on {iso(p.convention_expires_us)} and the "
                "partner is still registered (renew the convention or revoke the partner)"
            )
        elif p.active and status == partners.NO_CONVENTION:
            findings.append(f"partner {p.id}: registered without a convention with the city")
        elif p.active and status == partners.CONVENTION_EXPIRING:
            findings.append(f"partner {p.id}: convention {p.convention_ref} expires on {iso(p.convention_expires_us)}")
        rows.append(
            {
                "id": p.id,
                "name": p.name,
                "active": p.active,
                "convention_ref": p.convention_ref or None,
                "camera_groups": list(p.camera_groups),
                "actions": sorted(p.actions),
                "expires": iso(p.convention_expires_us),
                "status": status,
            }
        )
    return {"warning_days": partners.CONVENTION_WARNING.days, "partners": rows}


def room_presence(
    inside: list[room.RoomPresence], stays: list[room.RoomPresence], now_us: int, findings: list[str]
) -> dict[str, Any]:
    """Who is in the room now and the visitors' stays of the period. Visitors are named by their
    declaration's reference only: their identity is personal data, kept in the register (and erased
    with it), which the reader can consult with the right to."""

    def declaration(r: room.RoomPresence) -> dict[str, Any]:
        # An erased stay points at no declaration any more (operations/retention.py).
        ref = visitors.reference_of(r.declaration_id) if r.declaration_id is not None else None
        return {"declaration_id": r.declaration_id, "declaration": ref}

    agents = [r.username for r in inside if r.kind == room.AGENT]
    if len(agents) < AGENTS_REQUIRED:
        findings.append(
            f"viewing room: {len(agents)} agent(s) on shift now; the field report requires {AGENTS_REQUIRED} agents "
            "on duty day and night"
        )
    start_us = now_us - int(ROOM_PERIOD.total_seconds() * 1e6)
    return {
        "agents_required": AGENTS_REQUIRED,
        "agents_on_shift": agents,
        "inside": [
            {"kind": r.kind, "entered": iso(r.entered_us)}
            | ({"username": r.username} if r.kind == room.AGENT else declaration(r))
            for r in inside
        ],
        "period": {"from": iso(start_us), "to": iso(now_us)},
        "visitors": [
            declaration(r)
            | {
                "entered": iso(r.entered_us),
                "entered_by": r.entered_by,
                "exited": iso(r.exited_us),
                "exited_by": r.exited_by,
            }
            for r in stays
        ],
    }


def _viewing_room(b: Backends, now_us: int, findings: list[str]) -> dict[str, Any]:
    start_us = now_us - int(ROOM_PERIOD.total_seconds() * 1e6)
    inside = [r for r, _ in room.inside(b.engine)]
    presence = room.RoomPresence
    with session(b.engine) as s:
        # Every visitor's stay that overlaps the period: begun in it, or before it and not left before it.
        stays = list(
            s.exec(
                select(presence)
                .where(col(presence.kind) == room.VISITOR, col(presence.entered_us) <= now_us)
                .where(col(presence.exited_us).is_(None) | (col(presence.exited_us) >= start_us))
                .order_by(col(presence.entered_us))
            )
        )
    return _register(b) | room_presence(inside, stays, now_us, findings)


def _register(b: Backends) -> dict[str, Any]:
    with session(b.engine) as s:
        rows = list(s.exec(select(VisitorDeclaration.status, VisitorDeclaration.mail_status)))
    statuses = Counter(status for status, _ in rows)
    unsent = sum(1 for status, mail in rows if status == "pending" and mail != "sent")
    return {
        "declarations": len(rows),
        "by_status": {name: statuses.get(name, 0) for name in ("pending", "validated", "refused", "cancelled")},
        "pending_not_mailed": unsent,
    }
