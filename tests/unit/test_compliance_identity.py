"""The compliance report's image-identity section: a camera whose images carry no date, time or
identity (masking's overlay off, no camera OSD declared) is a finding; either way is enough."""

from services.common.pb.csu.v1 import ingest_pb2
from services.gateway.operations import compliance_identity


def _camera(camera_id: str, overlay: bool, own: bool, state: str = "in_service") -> ingest_pb2.Camera:
    imaging = ingest_pb2.CameraImaging(osd_overlay=overlay, camera_osd=own, osd_position="bottom-right")
    return ingest_pb2.Camera(id=camera_id, name=camera_id.title(), state=state, imaging=imaging)


def test_a_camera_with_neither_overlay_nor_its_own_osd_is_a_finding() -> None:
    findings: list[str] = []
    section = compliance_identity.collect(
        [
            _camera("burned", overlay=True, own=False),
            _camera("own-osd", overlay=False, own=True),
            _camera("bare", overlay=False, own=False),
            _camera("gone", overlay=False, own=False, state="decommissioned"),
        ],
        findings,
    )
    rows = {r["camera_id"]: r for r in section["cameras"]}
    assert set(rows) == {"burned", "own-osd", "bare"}  # a decommissioned camera records nothing
    assert [rows[c]["carried"] for c in ("burned", "own-osd", "bare")] == [True, True, False]
    assert rows["burned"]["overlay_position"] == "bottom-right"
    assert findings == [
        "camera bare: its images carry no date, time or camera identity "
        "(masking's overlay is off and no camera on-screen display is declared)"
    ]
