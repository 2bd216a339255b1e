"""The compliance report as a printable PDF (A4, French headings, Paris times), from the same data
as the JSON report (operations.compliance.collect).

Fonts and layout are the platform's printable documents' (services/common/pdf.py).
"""

from datetime import datetime
from pathlib import Path
from typing import Any

from services.common.pdf import FONT_DIRS, Document
from services.common.timefmt import PARIS
from services.gateway.operations import compliance_identity, compliance_streams


def _when(value: str | None) -> str:
    if not value:
        return "—"
    return f"{datetime.fromisoformat(value.replace('Z', '+00:00')).astimezone(PARIS):%d/%m/%Y %H:%M}"


def _day(value: str | None) -> str:
    if not value:
        return "—"
    return f"{datetime.fromisoformat(value.replace('Z', '+00:00')).astimezone(PARIS):%d/%m/%Y}"


def _unavailable(pdf: Document, section: dict[str, Any]) -> bool:
    if section.get("available"):
        return False
    pdf.para(f"Section indisponible : {section.get('problem', 'raison inconnue')}")
    return True


def render(report: dict[str, Any], font_dirs: tuple[Path, ...] = FONT_DIRS) -> bytes:
    pdf = Document(report["title"], font_dirs=font_dirs)
    pdf.add_page()
    pdf.title_block(
        report["title"],
        f"Établi le {_when(report['generated_at'])} (heure de Paris) par {report['generated_by']}. "
        f"Durée de conservation légale maximale : {report['legal_max_retention_days']} jours.",
    )

    pdf.heading("1. Constats")
    findings = report["findings"]
    if findings:
        for finding in findings:
            pdf.para(f"• {finding}")
    else:
        pdf.para("Aucun écart constaté.")

    pdf.heading("2. Caméras")
    cameras = report["cameras"]
    if not _unavailable(pdf, cameras):
        pdf.grid(
            ["Caméra", "Nom", "État", "Groupes", "Profil", "Normes", "Conserv.", "Autorisation", "Enregistre"],
            [
                [
                    c["id"],
                    c["name"],
                    c["state"],
                    ", ".join(c["groups"]),
                    f"{c['profile']['width']}x{c['profile']['height']} {c['profile']['fps']:g} i/s"
                    + (" (gros plan)" if c["profile"]["close_up"] else ""),
                    "oui" if c["profile"]["meets_norms"] else "NON",
                    f"{c['retention_days']} j",
                    c["authorisation_ref"],
                    "oui" if c["recording_allowed"] else f"non : {c['recording_refusal']}",
                ]
                for c in cameras["cameras"]
            ],
            [20, 26, 18, 20, 24, 14, 15, 22, 27],
        )

    pdf.heading("3. Autorisations préfectorales")
    authorisations = report["authorisations"]
    if not _unavailable(pdf, authorisations):
        pdf.grid(
            ["Référence", "Décision", "Expiration", "Statut", "Finalités", "Conserv. max", "Destinataires", "Caméras"],
            [
                [
                    a["reference"],
                    _day(a["decision"]),
                    _day(a["expiry"]),
                    a["status"],
                    ", ".join(a["purposes"]),
                    f"{a['max_retention_days']} j",
                    ", ".join(a["recipients"]),
                    ", ".join(a["camera_ids"]),
                ]
                for a in authorisations["authorisations"]
            ],
            [24, 18, 18, 16, 34, 14, 30, 32],
        )

    pdf.heading("4. Durées de conservation")
    retention = report["retention"]
    if not retention["available"]:
        pdf.para("Section indisponible : la liste des caméras n'a pas pu être obtenue.")
    else:
        pdf.grid(
            ["Caméra", "Conservation", "Autorisation", "Maximum autorisé", "Conforme", "Écarts"],
            [
                [
                    r["camera_id"],
                    f"{r['retention_days']} j",
                    r["authorisation_ref"],
                    f"{r['authorisation_max_days']} j" if r["authorisation_max_days"] is not None else None,
                    "oui" if r["compliant"] else "NON",
                    "; ".join(r["problems"]),
                ]
                for r in retention["cameras"]
            ],
            [28, 22, 30, 26, 16, 64],
        )

    pdf.heading("5. Matrice des accès")
    access = report["access"]
    if not _unavailable(pdf, access):
        pdf.para("Second facteur (TOTP) exigé : " + ("oui" if access["totp_required"] else "NON (développement)"))
        pdf.grid(
            ["Rôle", "Actions permises"],
            [[role, ", ".join(actions)] for role, actions in access["roles"].items()],
            [40, 146],
        )
        pdf.para("Comptes nominatifs et habilitations :")
        pdf.grid(
            ["Compte", "Rôle", "Actif", "Groupes", "Accordée par", "Expiration", "Validation préf.", "Écarts"],
            [
                [
                    u["username"],
                    u["role"],
                    "oui" if u["active"] else "non",
                    ", ".join(u["camera_groups"]),
                    u["granted_by"],
                    _day(u["expires"]),
                    f"{u['prefecture_ref'] or ''} {_day(u['prefecture_validated'])}".strip(),
                    "; ".join(u["problems"]),
                ]
                for u in access["users"]
            ],
            [24, 20, 10, 22, 20, 18, 30, 42],
        )
        pdf.para("Partenaires de la fédération (police nationale) :")
        pdf.grid(
            ["Partenaire", "Nom", "Groupes", "Actions", "Actif", "Certificat jusqu'au"],
            [
                [
                    p["id"],
                    p["name"],
                    ", ".join(p["camera_groups"]),
                    ", ".join(p["actions"]),
                    "oui" if p["active"] else "révoqué",
                    _day(p["certificate_expires"]),
                ]
                for p in access["partners"]
            ],
            [28, 40, 36, 32, 20, 30],
        )

    pdf.heading("6. Masques de confidentialité")
    masks = report["masks"]
    if not _unavailable(pdf, masks):
        pdf.grid(
            [
                "Caméra",
                "Mise en service",
                "Version approuvée",
                "Zones",
                "Dessinée par",
                "Approuvée par",
                "Le",
                "Déclaration sans zone privée",
                "Brouillons",
                "Signalements ouverts",
            ],
            [
                [
                    m["camera_id"],
                    "possible" if m["commissionable"] else "NON",
                    m["approved_version"],
                    m["polygons"],
                    m["author"],
                    m["approver"],
                    _day(m["approved"]),
                    f"{m['statement_by']} {_day(m['statement_signed'])}" if m["statement_by"] else None,
                    m["drafts"],
                    m["open_error_reports"],
                ]
                for m in masks["cameras"]
            ],
            [20, 18, 18, 12, 20, 20, 17, 26, 13, 22],
        )

    pdf.heading("7. Preuves d'effacement")
    deletion = report["deletion_proofs"]
    if not _unavailable(pdf, deletion):
        missing = len(deletion["erasures_not_audited"])
        pdf.para(
            f"{deletion['proofs']} preuve(s) d'effacement ; empreintes recalculées et conformes : "
            f"{deletion['digests_verified']}/{deletion['proofs']} ; inscrites au journal d'audit : "
            f"{deletion['erasures_audited']}/{deletion['proofs']}"
            + (f", {missing} attendue(s) et absente(s)." if missing else ".")
        )
        pdf.grid(
            [
                "Caméra",
                "Preuves",
                "Segments",
                "Octets",
                "Plus ancien effacé",
                "Plus récent",
                "Dernier passage",
                "Conserv.",
            ],
            [
                [
                    c["camera_id"],
                    c["proofs"],
                    c["segments"],
                    c["bytes"],
                    _when(c["oldest"]),
                    _when(c["newest"]),
                    _when(c["last_sweep"]),
                    f"{c['max_retention_days']} j",
                ]
                for c in deletion["cameras"]
            ],
            [26, 16, 18, 24, 28, 28, 28, 18],
        )

    pdf.heading("8. Journal d'audit")
    audit = report["audit_trail"]
    if not _unavailable(pdf, audit):
        state = "intègre" if audit["chain_ok"] else f"ALTÉRÉ : {audit['problem']}"
        pdf.para(
            f"Chaîne de hachage : {state} ({audit['entries']} entrées vérifiées). "
            f"Points de contrôle signés : {audit['signed_checkpoints']}, "
            f"le dernier le {_when(audit['last_checkpoint'])}. "
            f"Conservation du journal : {audit['retention_days']} jours."
        )
        pdf.para(f"Clé de signature de ce serveur : {audit['signing_key']}. Clés de signature nommées par le journal :")
        how = {"rotated": "rotation (csuctl)", "found at start": "constatée au démarrage"}
        pdf.grid(
            ["Depuis", "Empreinte (SHA-256 de la clé publique)", "Comment", "Par"],
            [[_when(k["since"]), k["fingerprint"], how[k["how"]], k["by"]] for k in audit["signing_keys"]],
            [26, 100, 32, 28],
        )

    pdf.heading("9. Salle de visionnage : registre et présences")
    register = report["viewing_room"]
    if not _unavailable(pdf, register):
        by_status = register["by_status"]
        pdf.para(
            f"{register['declarations']} déclaration(s) : {by_status['validated']} validée(s), "
            f"{by_status['pending']} en attente, {by_status['refused']} refusée(s), "
            f"{by_status['cancelled']} annulée(s) ; "
            f"{register['pending_not_mailed']} pas encore transmise(s) à la préfecture."
        )
        agents = register["agents_on_shift"]
        pdf.para(
            f"Agents en service dans la salle : {len(agents)} (exigés : {register['agents_required']})"
            + (f" — {', '.join(agents)}." if agents else ".")
        )
        pdf.para("Présents dans la salle :")
        pdf.grid(
            ["Qui", "Compte ou déclaration", "Entré le"],
            [
                [
                    "agent" if p["kind"] == "agent" else "visiteur",
                    p.get("username") or p.get("declaration") or "[effacé]",
                    _when(p["entered"]),
                ]
                for p in register["inside"]
            ],
            [30, 80, 76],
        )
        period = register["period"]
        pdf.para(
            f"Visiteurs reçus du {_day(period['from'])} au {_day(period['to'])} "
            "(désignés par leur déclaration, sans leur nom) :"
        )
        pdf.grid(
            ["Déclaration", "Entré le", "Par", "Sorti le", "Par"],
            [
                [
                    v["declaration"] or "[effacé]",
                    _when(v["entered"]),
                    v["entered_by"],
                    _when(v["exited"]),
                    v["exited_by"],
                ]
                for v in register["visitors"]
            ],
            [36, 38, 36, 38, 38],
        )

    pdf.heading("10. Flux réels et normes techniques (arrêté du 3 août 2007)")
    streams = report["streams"]
    if not _unavailable(pdf, streams):
        compliance_streams.render(pdf, streams, _when)

    pdf.heading("11. Conservation des données personnelles (hors images et journal d'audit)")
    personal = report["personal_data_retention"]
    if not _unavailable(pdf, personal):
        names = {
            "visitors": "Registre des visiteurs",
            "room_presence": "Présences en salle",
            "bollard_plates": "Plaques (bornes)",
            "intercom_calls": "Appels d'interphone",
            "journal": "Main courante",
            "citizen_requests": "Demandes d'accès",
            "requisitions": "Réquisitions",
        }
        rows = []
        for k in personal["kinds"]:
            last, due = k["last_erasure"], k["due"]
            rows.append(
                [
                    names.get(k["kind"], k["kind"]),
                    f"{k['days']} j (max {k['cap_days']})",
                    k["basis"],
                    f"{last['erased']} le {_when(last['at'])} (avant {_day(last['up_to'])})" if last else "—",
                    "—" if due is None else f"{due['overdue']} en retard ; prochain {_day(due['next_due_at'])}",
                ]
            )
        pdf.grid(["Donnée", "Durée", "Fondement", "Dernier effacement", "À effacer"], rows, [30, 22, 0, 40, 34])

    pdf.heading("12. Conventions des partenaires (police nationale)")
    conventions = report["partner_conventions"]
    if not _unavailable(pdf, conventions):
        status = {"valid": "en vigueur", "expiring": "expire bientôt", "expired": "EXPIRÉE", "none": "AUCUNE"}
        pdf.para(f"Alerte {conventions['warning_days']} jours avant l'expiration ; accès refusé après.")
        pdf.grid(
            ["Partenaire", "Nom", "Convention", "Groupes", "Actions", "Expiration", "Statut", "Actif"],
            [
                [
                    p["id"],
                    p["name"],
                    p["convention_ref"] or "—",
                    ", ".join(p["camera_groups"]),
                    ", ".join(p["actions"]),
                    _day(p["expires"]),
                    status.get(p["status"], p["status"]),
                    "oui" if p["active"] else "révoqué",
                ]
                for p in conventions["partners"]
            ],
            [22, 32, 28, 24, 22, 20, 22, 16],
        )

    pdf.heading("13. Date, heure et identité de la caméra sur les images (arrêté du 3 août 2007)")
    identity = report["image_identity"]
    if not _unavailable(pdf, identity):
        compliance_identity.render_identity(pdf, identity)

    pdf.heading("14. Ni son ni biométrie")
    compliance_identity.render_no_sound(pdf)
    return pdf.render()
