"""The compliance report's sections on what every image carries, and what none may carry.

Date, time and camera identity (arrêté du 3 août 2007: recorded images carry them). Two ways put
them in the picture: masking burns a band into every image it re-encodes (the camera's
`osd_overlay`, on by default), and a camera whose stream masking passes through untouched must
carry its own on-screen display, declared as `camera_osd` (masking refuses pass-through without
it: services/masking/modes.py). A camera with neither records images that say nothing of when
or where: a finding. Whatever the picture shows, stored segments and the live view also carry a
timed-text track with the Paris date and time and the camera's name (services/common/fmp4_text.py).

No sound, no biometrics: what the platform records and what it cannot do, with the tests that
fail the build if that changes, so an auditor knows where to check.
"""

from typing import TYPE_CHECKING, Any

from services.common.pb.csu.v1 import ingest_pb2

if TYPE_CHECKING:  # printing imports fpdf only when a report is printed (compliance_pdf)
    from services.common.pdf import Document

TEXT_TRACK = "segments and live view carry a timed-text track: Paris date and time, camera name, every second"


def collect(cameras: list[ingest_pb2.Camera], findings: list[str]) -> dict[str, Any]:
    rows = []
    for c in cameras:
        if c.state == "decommissioned":
            continue
        overlay, own = c.imaging.osd_overlay, c.imaging.camera_osd
        carried = overlay or own
        if not carried:
            findings.append(
                f"camera {c.id}: its images carry no date, time or camera identity "
                "(masking's overlay is off and no camera on-screen display is declared)"
            )
        rows.append(
            {
                "camera_id": c.id,
                "name": c.name,
                "overlay": overlay,
                "overlay_position": c.imaging.osd_position or "top-left",
                "camera_osd": own,
                "carried": carried,
            }
        )
    return {"text_track": TEXT_TRACK, "cameras": rows}


def no_sound_no_biometrics() -> dict[str, Any]:
    """What the build guarantees (the tests named fail it otherwise), for the auditor to check."""
    return {
        "audio": "never stored or shown: ingest keeps the video stream only (tests/e2e/test_no_audio.py)",
        "biometrics": (
            "no face recognition, plate reading or audio analysis in the code or its dependencies "
            "(tests/unit/test_no_biometrics_no_audio.py); the redaction's person detector blurs, it does not identify"
        ),
    }


def render_identity(pdf: "Document", section: dict[str, Any]) -> None:
    pdf.para(
        "Chaque image porte la date, l'heure et l'identité de la caméra : incrustées par le masquage, ou "
        "affichées par la caméra elle-même (OSD déclaré) quand le flux passe sans réencodage. Les segments "
        "enregistrés et la vue en direct portent en outre une piste de texte horodatée (heure de Paris, nom "
        "de la caméra, chaque seconde)."
    )
    pdf.grid(
        ["Caméra", "Nom", "Incrustation", "Position", "OSD caméra", "Conforme"],
        [
            [
                c["camera_id"],
                c["name"],
                "oui" if c["overlay"] else "non",
                c["overlay_position"],
                "déclaré" if c["camera_osd"] else "—",
                "oui" if c["carried"] else "NON",
            ]
            for c in section["cameras"]
        ],
        [30, 0, 24, 26, 24, 20],
    )


def render_no_sound(pdf: "Document") -> None:
    pdf.para(
        "Son : aucune piste audio n'est enregistrée ni diffusée ; seule la vidéo est conservée "
        "(test de bout en bout avec une caméra qui envoie du son)."
    )
    pdf.para(
        "Biométrie : aucune reconnaissance faciale, lecture de plaques ni analyse sonore ; un test de politique "
        "fait échouer la construction si une telle dépendance ou un tel code apparaît. Le détecteur de personnes "
        "de l'occultation floute, il n'identifie pas."
    )
