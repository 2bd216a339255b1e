"""The delivery receipt (récépissé de remise): what was handed over, to whom, how, and how to check it."""

from services.requisition.models import Requisition
from services.requisition.packaging import grouped
from services.requisition.timefmt import paris_human


def render(row: Requisition, fingerprint: str, register_seq: int, entry_hash: str) -> bytes:
    # Imported when printed: fpdf costs ~1 CPU-second at every start of the service otherwise.
    from services.common.pdf import Document

    pdf = Document(f"Récépissé de remise {row.number}")
    pdf.add_page()
    pdf.title_block(
        f"Récépissé de remise — {row.number}",
        f"Remise d'images de vidéoprotection en exécution d'une réquisition judiciaire. Établi le "
        f"{paris_human(row.delivered_us)} (heure de Paris).",
    )
    pdf.heading("Réquisition")
    pdf.pairs(
        [
            ("Numéro", row.req_number),
            ("Autorité", f"{row.req_authority} ({'magistrat' if row.req_authority_kind == 'magistrate' else 'OPJ'})"),
            ("Date", row.req_issued_on),
            ("Service demandeur", row.requesting_service),
            ("Enquêteur", row.officer),
            ("Procédure", row.case_reference),
        ]
    )
    pdf.heading("Remise")
    medium = "support amovible (clé USB)" if row.delivery_medium == "usb" else "téléchargement (fédération)"
    pdf.pairs(
        [
            ("Destinataire", row.recipient_name),
            ("Service", row.recipient_service),
            ("Identité vérifiée", row.recipient_id),
            ("Partenaire", row.recipient_partner or "—"),
            ("Support", medium),
            ("Date et heure", paris_human(row.delivered_us)),
            ("Enregistrée par", row.delivery_recorded_by),
            ("Extraction par", row.extracted_by),
            ("Approuvée par", f"{row.approved_by_name or row.approved_by} le {paris_human(row.approved_us)}"),
        ]
    )
    pdf.heading("Paquet remis")
    pdf.pairs(
        [
            ("Fichier", row.package_filename),
            ("Taille", f"{row.package_size} octets"),
            ("SHA-256 du paquet", row.package_sha256),
            ("SHA-256 du manifeste", row.manifest_sha256),
            ("Chiffré (AES-256)", "oui" if row.package_encrypted else "non"),
        ]
    )
    pdf.grid(
        ["Fichier", "SHA-256", "Octets"],
        [[f["path"], f["sha256"], f["bytes"]] for f in row.package_files],
        [55, 0, 22],
    )
    pdf.heading("Vérification")
    pdf.para(
        "Le paquet contient csu-verify.py (Python 3, sans installation). Il vérifie la signature du manifeste "
        "et l'empreinte de chaque fichier. Empreinte de la clé de signature du CSU à comparer :"
    )
    pdf.set_font(pdf.family, "B", 10)
    pdf.multi_cell(0, 6, pdf.t(grouped(fingerprint)), new_x="LMARGIN", new_y="NEXT")
    pdf.para(f"Inscription au cahier des extractions : entrée n° {register_seq}, empreinte {entry_hash}.")
    pdf.para(
        "Après la remise, la conservation et la destruction de ces images relèvent du destinataire dans le cadre "
        "de la procédure judiciaire ; le CSU a détruit sa copie tampon."
    )
    pdf.ln(8)
    pdf.para("Signature du destinataire :                                      Signature de l'agent du CSU :")
    return pdf.render()
