"""The compliance report's pieces that need no running service: the PDF says what the data says,
and deletion proofs are checked with the archive's own digest."""

import re
import zlib

from services.archive.index import proof_digest as archive_digest
from services.archive.models import DeletionProof
from services.common.pb.csu.v1 import archive_pb2, ingest_pb2
from services.gateway.identity.federation.partners import Partner
from services.gateway.operations import compliance, compliance_pdf, compliance_streams
from services.gateway.operations.room import RoomPresence

REPORT = {
    "title": "Rapport de conformité — centre de supervision urbaine",
    "generated_at": "2026-11-25T20:00:00Z",
    "generated_by": "auditor-all",
    "legal_max_retention_days": 30,
    "findings": ["camera cam-7: retention 25 d above the authorisation's 15 d"],
    "cameras": {
        "available": True,
        "cameras": [
            {
                "id": "cam-7",
                "name": "Parvis de la mairie",
                "state": "in_service",
                "groups": ["centre"],
                "status": "online",
                "profile": {"width": 1920, "height": 1080, "fps": 25.0, "close_up": False, "meets_norms": True},
                "retention_days": 25,
                "authorisation_ref": "PREF-2026-12",
                "recording_allowed": True,
                "recording_refusal": "",
                "ptz": True,
            }
        ],
    },
    "authorisations": {"available": False, "problem": "authorisations: could not be collected (UNAVAILABLE)"},
    "retention": {
        "available": True,
        "cameras": [
            {
                "camera_id": "cam-7",
                "retention_days": 25,
                "authorisation_ref": "PREF-2026-12",
                "authorisation_max_days": 15,
                "compliant": False,
                "problems": ["retention 25 d above the authorisation's 15 d"],
            }
        ],
    },
    "access": {
        "available": True,
        "actions": ["audit", "live"],
        "roles": {"auditor": ["audit"], "operator": ["live"]},
        "totp_required": True,
        "users": [],
        "partners": [],
    },
    "masks": {
        "available": True,
        "cameras": [
            {
                "camera_id": "cam-7",
                "commissionable": False,
                "approved_version": None,
                "space": None,
                "polygons": 0,
                "author": None,
                "approver": None,
                "approved": None,
                "origin": None,
                "drafts": 1,
                "versions": 1,
                "statement_by": None,
                "statement_signed": None,
                "open_error_reports": 2,
            }
        ],
        "open_error_reports": [],
    },
    "deletion_proofs": {
        "available": True,
        "proofs": 0,
        "digests_verified": 0,
        "digest_mismatches": [],
        "cameras": [],
        "erasures_audited": 0,
        "erasures_not_audited": [],
    },
    "audit_trail": {
        "available": True,
        "chain_ok": False,
        "entries": 41,
        "first_bad_seq": 17,
        "problem": "entry 17 does not match its hash chain",
        "signed_checkpoints": 0,
        "last_checkpoint": None,
        "retention_days": 1095,
        "signing_key": "b" * 64,
        "signing_keys": [
            {
                "fingerprint": "a" * 64,
                "since": "2026-01-05T08:00:00Z",
                "how": "found at start",
                "by": "system",
                "previous_fingerprint": "",
            },
            {
                "fingerprint": "b" * 64,
                "since": "2026-06-01T09:30:00Z",
                "how": "rotated",
                "by": "csuctl:root",
                "previous_fingerprint": "a" * 64,
            },
        ],
    },
    "viewing_room": {
        "available": True,
        "declarations": 3,
        "by_status": {"pending": 1, "validated": 2, "refused": 0, "cancelled": 0},
        "pending_not_mailed": 1,
        "agents_required": 2,
        "agents_on_shift": ["operator-all"],
        "inside": [
            {"kind": "agent", "entered": "2026-11-25T06:00:00Z", "username": "operator-all"},
            {
                "kind": "visitor",
                "entered": "2026-11-25T19:10:00Z",
                "declaration_id": 12,
                "declaration": "CSU-SV-000012",
            },
        ],
        "period": {"from": "2026-10-25T20:00:00Z", "to": "2026-11-25T20:00:00Z"},
        "visitors": [
            {
                "declaration_id": 9,
                "declaration": "CSU-SV-000009",
                "entered": "2026-11-02T13:00:00Z",
                "entered_by": "supervisor-all",
                "exited": "2026-11-02T14:30:00Z",
                "exited_by": "operator-all",
            }
        ],
    },
    "streams": {
        "available": True,
        "norm": "arrêté du 3 août 2007",
        "non_compliant": 1,
        "not_measured": 0,
        "cameras": [
            {
                "camera_id": "cam-7",
                "name": "Parvis de la mairie",
                "declared": {"width": 704, "height": 576, "fps": 10.0},
                "close_up": False,
                "legal_minimum": {"width": 352, "height": 288, "fps": 6.0},
                "measured": {"width": 320, "height": 240, "fps": 9.8},
                "verdict": "non_compliant",
                "status": "non_compliant",
                "problem": "picture 320x240 below the declared 704x576",
                "since": "2026-11-25T19:00:00Z",
            }
        ],
    },
    "personal_data_retention": {
        "available": True,
        "kinds": [
            {
                "kind": "visitors",
                "days": 365,
                "cap_days": 365,
                "basis": "CSI L.252-3 and L.251-4",
                "last_erasure": {"at": "2026-11-30T03:00:00Z", "erased": 4, "up_to": "2025-11-30T03:00:00Z"},
                "due": {"overdue": 0, "next_due_at": "2027-01-15T10:00:00Z"},
            },
            {
                "kind": "requisitions",
                "days": 1095,
                "cap_days": 1095,
                "basis": "CPP art. 60-1",
                "last_erasure": None,
                "due": None,
            },
        ],
    },
    "partner_conventions": {
        "available": True,
        "warning_days": 30,
        "partners": [
            {
                "id": "pn-metz",
                "name": "Police nationale — CSP Metz",
                "active": True,
                "convention_ref": "CONV-57-2026-014",
                "camera_groups": ["centre"],
                "actions": ["live", "ptz"],
                "expires": "2026-11-20T11:00:00Z",
                "status": "expired",
            },
            {
                "id": "pn-old",
                "name": "Ancien partenaire",
                "active": True,
                "convention_ref": None,
                "camera_groups": [],
                "actions": ["live"],
                "expires": None,
                "status": "none",
            },
        ],
    },
    "image_identity": {
        "available": True,
        "text_track": "segments and live view carry a timed-text track",
        "cameras": [
            {
                "camera_id": "parvis-01",
                "name": "Parvis de la mairie",
                "overlay": True,
                "overlay_position": "top-left",
                "camera_osd": False,
                "carried": True,
            },
            {
                "camera_id": "quai-07",
                "name": "Quai",
                "overlay": False,
                "overlay_position": "bottom-right",
                "camera_osd": False,
                "carried": False,
            },
        ],
    },
    "no_sound_no_biometrics": {"audio": "never stored", "biometrics": "none"},
}


def _page_text(pdf: bytes) -> str:
    """The text drawn by the core font (Tj strings of the page content streams, inflated)."""
    shown = []
    for stream in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S):
        try:
            content = zlib.decompress(stream)
        except zlib.error:
            continue
        shown += [m.decode("latin-1") for m in re.findall(rb"\(((?:[^\\)]|\\.)*)\) ?Tj", content)]
    return re.sub(r"\\(.)", r"\1", " ".join(shown))


def test_pdf_carries_the_findings_and_every_section() -> None:
    pdf = compliance_pdf.render(REPORT, font_dirs=())  # the core font: its text can be read back here
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    text = _page_text(pdf)
    for expected in [
        "1. Constats",
        "retention 25 d above the authorisation's 15 d",
        "Parvis de la mairie",
        "PREF-2026-12",
        "NON",  # the non-compliant retention
        "Section indisponible : authorisations: could not be collected (UNAVAILABLE)",
        "Signalements ouverts",
        "ALT",  # the broken audit chain ("ALTÉRÉ")
        "entry 17 does not match its hash chain",
        "Clé de signature de ce serveur : " + "b" * 64,
        "05/01/2026 09:00",  # each key named by the trail, from when (Paris time), how and by whom
        "constatée au démarrage",
        "01/06/2026 11:30",
        "rotation (csuctl)",
        "csuctl:root",
        "3 d\xe9claration(s)",
        "10. Flux r\xe9els et normes techniques",
        "320x240 9.8 i/s",
        "NON CONFORME",
        "25/11/2026 20:00",
        "picture 320x240 below the declared 704x576",
        "11. Conservation des donn\xe9es personnelles",
        "Registre des visiteurs",
        "365 j (max 365)",
        "CSI L.252-3 and L.251-4",
        "4 le 30/11/2026 04:00",
        "0 en retard ; prochain 15/01/2027",
        "9. Salle de visionnage",
        "Agents en service dans la salle : 1 (exig\xe9s : 2)",
        "operator-all",
        "CSU-SV-000012",
        "25/11/2026 20:10",  # the visitor inside, since (Paris time)
        "du 25/10/2026 au 25/11/2026",
        "CSU-SV-000009",
        "02/11/2026 15:30",
        "12. Conventions des partenaires",
        "CONV-57-2026-014",
        "20/11/2026",
        "EXPIR\xc9E",
        "AUCUNE",
        "13. Date, heure et identit\xe9 de la cam\xe9ra",
        "quai-07",
        "bottom-right",
        "14. Ni son ni biom\xe9trie",
    ]:
        assert expected in text, expected


def test_the_streams_section_reports_what_each_camera_really_sends() -> None:
    def camera(
        cid: str, status: str, reason: str = "", state: str = "in_service", **metrics: float
    ) -> ingest_pb2.Camera:
        return ingest_pb2.Camera(
            id=cid, name=cid.upper(), state=state, status=status, status_reason=reason,
            status_since_us=1_764_097_200_000_000,
            profile=ingest_pb2.RecordingProfile(width=704, height=576, fps=12.0, close_up=cid == "close"),
            metrics=ingest_pb2.CameraMetrics(**metrics),  # type: ignore[arg-type]
        )  # fmt: skip

    findings: list[str] = []
    section = compliance_streams.collect(
        [
            camera(
                "small", "non_compliant", "picture 320x240 below the declared 704x576", width=320, height=240, fps=12
            ),
            camera("close", "non_compliant", "frame rate below the declared 12 fps", width=704, height=576, fps=8.04),
            camera("fine", "online", width=704, height=576, fps=12.1),
            camera("dark", "offline", "Connection refused"),
            camera("gone", "offline", state="decommissioned"),
        ],
        findings,
    )
    rows = {r["camera_id"]: r for r in section["cameras"]}
    assert set(rows) == {"small", "close", "fine", "dark"} and section["non_compliant"] == 2
    assert rows["small"]["measured"] == {"width": 320, "height": 240, "fps": 12.0}
    assert rows["small"]["verdict"] == "non_compliant" and rows["small"]["since"] == "2025-11-25T19:00:00Z"
    assert rows["close"]["legal_minimum"] == {"width": 704, "height": 576, "fps": 12.0}
    assert rows["close"]["measured"]["fps"] == 8.0 and rows["close"]["problem"].startswith("frame rate")
    assert rows["fine"]["verdict"] == "compliant" and rows["fine"]["problem"] == ""
    # A camera that sends nothing cannot be said to comply.
    assert rows["dark"]["verdict"] == "not_measured" and rows["dark"]["measured"] is None
    assert section["not_measured"] == 1
    assert findings == [
        "camera small: stream below the norms since 2025-11-25T19:00:00Z (measured 320x240 at 12.0 fps): picture "
        "320x240 below the declared 704x576",
        "camera close: stream below the norms since 2025-11-25T19:00:00Z (measured 704x576 at 8.0 fps): frame rate "
        "below the declared 12 fps",
    ]


def test_pdf_prints_with_a_unicode_font_when_the_system_has_one() -> None:
    fonts = tuple(d for d in compliance_pdf.FONT_DIRS if (d / "DejaVuSans.ttf").exists())
    pdf = compliance_pdf.render(REPORT | {"findings": ["œuvre → caméra « Parvis »"]}, font_dirs=fonts)
    assert pdf.startswith(b"%PDF-")
    if fonts:
        assert b"DejaVu" in pdf
    else:
        assert b"Helvetica" in pdf


def test_deletion_proof_digests_are_recomputed_as_the_archive_computes_them() -> None:
    hashes = ["a" * 64, "b" * 64]
    row = DeletionProof(
        camera_id="cam-7",
        stream="main",
        hour_start_us=1_764_000_000_000_000,
        count=2,
        bytes=4096,
        first_us=1_764_000_000_000_000,
        last_us=1_764_000_120_000_000,
        sha256s=" ".join(hashes),
        digest="",
        swept_us=1_765_000_000_000_000,
        retention_days=15,
    )
    row.digest = archive_digest(row)
    proof = archive_pb2.DeletionProof(
        camera_id=row.camera_id,
        stream=row.stream,
        hour_start_us=row.hour_start_us,
        count=row.count,
        bytes=row.bytes,
        first_us=row.first_us,
        last_us=row.last_us,
        sha256s=hashes,
        digest=row.digest,
        swept_us=row.swept_us,
        retention_days=row.retention_days,
    )
    findings: list[str] = []
    summary = compliance._deletion_summary([proof], findings)
    assert summary["digests_verified"] == 1 and findings == []
    proof.count = 1  # a proof altered after the fact
    summary = compliance._deletion_summary([proof], findings)
    assert summary["digests_verified"] == 0 and "digest does not match" in findings[0]


DAY_US = 86_400_000_000
NOW_US = 1_764_100_800_000_000  # 2025-11-25T20:00:00Z


def _partner(pid: str, ref: str = "", expires_us: int | None = None, active: bool = True) -> Partner:
    return Partner(
        id=pid, name=pid.upper(), cert_sha256=pid, cert_subject=pid, cert_expires_us=NOW_US + 400 * DAY_US,
        assertion_key_pem="", camera_groups=["centre"], actions=["ptz", "live"], created_by="admin",
        created_us=NOW_US - 400 * DAY_US, active=active, convention_ref=ref, convention_expires_us=expires_us,
    )  # fmt: skip


def test_the_conventions_section_gives_each_partners_status_and_flags_the_registered_ones_without_one() -> None:
    findings: list[str] = []
    section = compliance.partner_conventions(
        [
            _partner("valid", "CONV-1", NOW_US + 90 * DAY_US),
            _partner("soon", "CONV-2", NOW_US + 10 * DAY_US),
            _partner("over", "CONV-3", NOW_US - DAY_US),
            _partner("never"),
            _partner("gone", "CONV-4", NOW_US - DAY_US, active=False),  # revoked: nothing left to do
        ],
        NOW_US,
        findings,
    )
    rows = {p["id"]: p for p in section["partners"]}
    assert {pid: p["status"] for pid, p in rows.items()} == {
        "valid": "valid",
        "soon": "expiring",
        "over": "expired",
        "never": "none",
        "gone": "expired",
    }
    assert rows["valid"] == {
        "id": "valid",
        "name": "VALID",
        "active": True,
        "convention_ref": "CONV-1",
        "camera_groups": ["centre"],
        "actions": ["live", "ptz"],
        "expires": "2026-02-23T20:00:00Z",
        "status": "valid",
    }
    assert rows["never"]["convention_ref"] is None and rows["never"]["expires"] is None
    assert section["warning_days"] == 30
    assert findings == [
        "partner soon: convention CONV-2 expires on 2025-12-05T20:00:00Z",
        "partner over: convention CONV-3 expired on 2025-11-24T20:00:00Z and the partner is still registered "
        "(renew the convention or revoke the partner)",
        "partner never: registered without a convention with the city",
    ]


def test_the_room_section_shows_who_is_inside_and_names_visitors_by_their_declaration_only() -> None:
    agent = RoomPresence(
        id=1, kind="agent", username="operator-all", entered_us=NOW_US - 3600_000_000, entered_by="operator-all"
    )
    guest = RoomPresence(
        id=2, kind="visitor", declaration_id=12, entered_us=NOW_US - 600_000_000, entered_by="operator-all"
    )
    left = RoomPresence(
        id=3, kind="visitor", declaration_id=9, entered_us=NOW_US - 2 * DAY_US, entered_by="supervisor-all",
        exited_us=NOW_US - 2 * DAY_US + 3600_000_000, exited_by="operator-all",
    )  # fmt: skip
    erased = RoomPresence(
        id=4, kind="visitor", entered_us=NOW_US - 20 * DAY_US, entered_by="", exited_us=NOW_US - 20 * DAY_US
    )
    findings: list[str] = []
    section = compliance.room_presence([agent, guest], [left, erased, guest], NOW_US, findings)
    assert section["agents_on_shift"] == ["operator-all"] and section["agents_required"] == 2
    assert section["inside"] == [
        {"kind": "agent", "entered": "2025-11-25T19:00:00Z", "username": "operator-all"},
        {"kind": "visitor", "entered": "2025-11-25T19:50:00Z", "declaration_id": 12, "declaration": "CSU-SV-000012"},
    ]
    assert section["period"] == {"from": "2025-10-25T20:00:00Z", "to": "2025-11-25T20:00:00Z"}
    assert [(v["declaration"], v["entered_by"], v["exited"]) for v in section["visitors"]] == [
        ("CSU-SV-000009", "supervisor-all", "2025-11-23T21:00:00Z"),
        (None, "", "2025-11-05T20:00:00Z"),
        ("CSU-SV-000012", "operator-all", None),
    ]
    assert findings == [
        "viewing room: 1 agent(s) on shift now; the field report requires 2 agents on duty day and night"
    ]
    # Two agents on shift: no finding.
    colleague = RoomPresence(
        id=5, kind="agent", username="supervisor-all", entered_us=NOW_US, entered_by="supervisor-all"
    )
    findings.clear()
    assert compliance.room_presence([agent, colleague], [], NOW_US, findings)["agents_on_shift"] == [
        "operator-all",
        "supervisor-all",
    ]
    assert findings == []
