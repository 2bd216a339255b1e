"""The compliance report's section on the real streams (arrêté du 3 août 2007, DESIGN §8.4).

The cameras section says whether each declared recording profile meets the norms; this one says
whether what each camera really sends does. Ingest measures the main stream (picture size from its
sequence parameter set, frame rate over a 5 s window) and marks a stream below its profile or below
the minimum for its use "non_compliant" (services/common/technical_norms.py), with the finding and since when;
the figures here are those of the report's moment. A camera not streaming cannot be measured: it
is listed as such, not as compliant.
"""

from typing import TYPE_CHECKING, Any

from services.common.pb.csu.v1 import ingest_pb2
from services.common.technical_norms import ARRETE, CLOSE_UP, STORED
from services.common.timefmt import iso

if TYPE_CHECKING:  # printing imports fpdf only when a report is printed (compliance_pdf)
    from services.common.pdf import Document

NON_COMPLIANT = "non_compliant"
# Statuses in which the main stream flows, so its measure means something.
MEASURED = ("online", "degraded", NON_COMPLIANT)


def collect(cameras: list[ingest_pb2.Camera], findings: list[str]) -> dict[str, Any]:
    rows = []
    for c in cameras:
        if c.state == "decommissioned":
            continue
        minimum = CLOSE_UP if c.profile.close_up else STORED
        measured = c.status in MEASURED and c.metrics.width > 0
        verdict = NON_COMPLIANT if c.status == NON_COMPLIANT else "compliant" if measured else "not_measured"
        row = {
            "camera_id": c.id,
            "name": c.name,
            "declared": {"width": c.profile.width, "height": c.profile.height, "fps": c.profile.fps},
            "close_up": c.profile.close_up,
            "legal_minimum": {"width": minimum.width, "height": minimum.height, "fps": minimum.fps},
            "measured": (
                {"width": c.metrics.width, "height": c.metrics.height, "fps": round(c.metrics.fps, 1)}
                if measured
                else None
            ),
            "verdict": verdict,
            "status": c.status,
            "problem": c.status_reason if verdict == NON_COMPLIANT else "",
            "since": iso(c.status_since_us) if verdict == NON_COMPLIANT else None,
        }
        if verdict == NON_COMPLIANT:
            findings.append(
                f"camera {c.id}: stream below the norms since {row['since']} (measured {c.metrics.width}x"
                f"{c.metrics.height} at {c.metrics.fps:.1f} fps): {c.status_reason}"
            )
        rows.append(row)
    return {
        "norm": ARRETE,
        "non_compliant": sum(r["verdict"] == NON_COMPLIANT for r in rows),
        "not_measured": sum(r["verdict"] == "not_measured" for r in rows),
        "cameras": rows,
    }


def render(pdf: "Document", section: dict[str, Any], when: Any) -> None:
    """The section's table; `when` formats an ISO instant in Paris time."""
    pdf.para(
        f"Ce que chaque caméra transmet réellement, mesuré par la plateforme (taille d'image lue dans le flux, "
        f"cadence sur 5 s), comparé au profil déclaré et au minimum de l'{section['norm']} pour son usage. "
        f"Flux sous les normes : {section['non_compliant']} ; non mesurés (caméra sans flux) : "
        f"{section['not_measured']}."
    )
    verdicts = {"compliant": "conforme", NON_COMPLIANT: "NON CONFORME", "not_measured": "non mesuré"}

    def figures(value: dict[str, Any] | None) -> str | None:
        return f"{value['width']}x{value['height']} {value['fps']:g} i/s" if value else None

    pdf.grid(
        ["Caméra", "Déclaré", "Minimum légal", "Mesuré", "Verdict", "Depuis", "Constat"],
        [
            [
                r["camera_id"],
                figures(r["declared"]),
                (figures(r["legal_minimum"]) or "") + (" (gros plan)" if r["close_up"] else ""),
                figures(r["measured"]),
                verdicts[r["verdict"]],
                when(r["since"]) if r["since"] else None,
                r["problem"],
            ]
            for r in section["cameras"]
        ],
        [22, 24, 28, 24, 20, 22, 0],
    )
