"""The register of extractions as people read it: a printable PDF (Paris times), CSV and JSON
exports for the CNIL or the prefect."""

import csv
import io
import json

from services.common import csvsafe
from services.requisition.models import RegisterEntry
from services.requisition.timefmt import paris_human, utc

KIND_FR = {
    "extraction": "Extraction",
    "requisition_received": "Réquisition reçue",
    "approval": "Approbation (signée)",
    "handover": "Remise",
    "purge": "Destruction",
    "refusal": "Refus",
    "cancellation": "Annulation",
    "closure": "Clôture",
}
CSV_FIELDS = ["seq", "time", "kind", "request_number", "actor", "details", "prev_hash", "entry_hash", "signature"]


def as_dict(entry: RegisterEntry) -> dict:
    return {
        "seq": entry.seq,
        "time": utc(entry.time_us),
        "kind": entry.kind,
        "request_id": entry.request_id,
        "request_number": entry.request_number,
        "actor": entry.actor,
        "details": json.loads(entry.payload_json),
        "prev_hash": entry.prev_hash,
        "entry_hash": entry.entry_hash,
        "signature": entry.signature,
        "key_fingerprint": entry.key_fingerprint,
    }


def to_csv(entries: list[RegisterEntry]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for entry in entries:
        row = as_dict(entry)
        row["details"] = json.dumps(row["details"], ensure_ascii=False, sort_keys=True)
        writer.writerow(csvsafe.row(row))  # no cell a spreadsheet would run as a formula
    return buffer.getvalue().encode("utf-8")


def to_json(entries: list[RegisterEntry]) -> bytes:
    return json.dumps([as_dict(e) for e in entries], ensure_ascii=False, indent=1).encode("utf-8")


def _summary(entry: RegisterEntry) -> str:
    d = json.loads(entry.payload_json)
    lines: list[str] = []
    if d.get("requisition_number"):
        lines.append(
            f"Réquisition {d['requisition_number']} — {d.get('authority', '')} ({d.get('authority_kind', '')})"
        )
    for r in d.get("ranges", []):
        lines.append(f"{r['camera_id']} {r.get('camera_name', '')}: {r['start']} → {r['end']}")
    if d.get("operator"):
        lines.append(f"Opérateur : {d['operator']}")
    if d.get("manager"):
        lines.append(f"Responsable : {d.get('manager_name') or d['manager']}")
    if d.get("buffer_deadline"):
        lines.append(f"Copie tampon jusqu'au {d['buffer_deadline']}")
    if entry.kind == "handover":
        lines.append(
            f"Remis à {d.get('recipient_name')} ({d.get('recipient_service')}), {d.get('medium')}, "
            f"paquet SHA-256 {d.get('package_sha256')}"
        )
    if entry.kind == "purge":
        lines.append(
            f"Motif : {d.get('reason')} — {d.get('objects', 0)} objet(s), {len(d.get('segments', []))} segment(s)"
        )
    if d.get("reason") and entry.kind in ("refusal", "cancellation", "closure"):
        lines.append(f"Motif : {d['reason']}")
    return "\n".join(lines)


def to_pdf(
    entries: list[RegisterEntry], verdict_text: str, printed_by: str, printed_us: int, fingerprint: str
) -> bytes:
    # Imported when printed: fpdf costs ~1 CPU-second at every start of the service otherwise.
    from services.common.pdf import Document

    pdf = Document("Cahier des extractions", landscape=True)
    pdf.add_page()
    pdf.title_block(
        "Cahier des extractions",
        f"Imprimé le {paris_human(printed_us)} (heure de Paris) par {printed_by}. {len(entries)} entrée(s). "
        f"Intégrité : {verdict_text}. Empreinte de la clé de signature : {fingerprint}.",
    )
    pdf.grid(
        ["N°", "Date (Paris)", "Nature", "Demande", "Agent", "Détails", "Empreinte"],
        [
            [
                e.seq,
                paris_human(e.time_us),
                KIND_FR.get(e.kind, e.kind),
                e.request_number,
                e.actor,
                _summary(e),
                e.entry_hash[:16] + "…",
            ]
            for e in entries
        ],
        [10, 30, 30, 28, 28, 0, 32],
    )
    return pdf.render()
