"""Held to the norms: a real RTSP camera sending 320x240 while declared as 704x576 is reported,
with what was measured, everywhere an operator, a manager or an auditor looks: its status (not
"online"), an alarm, the compliance report (JSON and PDF), and its recorded timeline, while its
footage is still recorded (losing it would be worse).

Fails on a platform that only checks the declared profile: the camera was "degraded" with no alarm,
no report line and no mark (and a 4 fps stream declared at 6 was "online").
"""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.support.media import decode_rgb, write_clip
from tests.support.platform import Platform, wait_for
from tests.support.rtsp import RtspCamera, rtsp_server_available

pytestmark = pytest.mark.e2e
CAMERA = "cam-small"
FPS = 10


@pytest.fixture
def small_camera(tmp_path: Path) -> RtspCamera:
    problem = rtsp_server_available()
    assert problem is None, problem
    clip = write_clip(tmp_path / "small.mp4", seconds=4, fps=FPS, size=(320, 240))
    with RtspCamera(clip, loop=True) as camera:
        yield camera


def _camera(client: httpx.Client) -> dict:
    return next(c for c in client.get("/api/v1/cameras").json() if c["id"] == CAMERA)


def test_a_320x240_camera_declared_704x576_is_reported_and_still_recorded(
    platform: Platform, small_camera: RtspCamera
) -> None:
    platform.env["CSU_SEGMENT_DURATION_S"] = "3"
    platform.set_cameras(
        [
            {
                "id": CAMERA,
                "name": "Rue basse (320x240)",
                "source": small_camera.url,
                "masks": [],
                "profile": {"width": 704, "height": 576, "fps": FPS},
            }
        ]
    )
    started = datetime.now(UTC)
    platform.start(["ingest", "masking", "archive", "gateway"])
    operator, maintenance, auditor = (platform.client(r) for r in ("operator", "maintenance", "auditor"))

    # The status: not online, with the measured picture and the norm it misses.
    camera = wait_for(lambda: (c := _camera(operator))["status"] == "non_compliant" and c, 60, "non_compliant")
    assert camera["status_reason"] == (
        "picture 320x240 below the declared 704x576; below the arrêté du 3 août 2007 minimum for stored streams "
        "(352x288 at 6 fps)"
    )
    details = operator.get(f"/api/v1/cameras/{CAMERA}").json()
    assert (details["metrics"]["width"], details["metrics"]["height"]) == (320, 240)

    # The alarm, for whoever watches camera health, with the figures.
    alarms = wait_for(
        lambda: [a for a in maintenance.get("/api/v1/alarms").json() if a["kind"] == "camera.non_compliant"],
        30,
        "the non-compliance alarm",
    )
    [alarm] = alarms
    assert alarm["camera_id"] == CAMERA and "measured 320x240 at" in alarm["message"]
    assert "declared 704x576 at 10 fps" in alarm["message"] and "recording goes on" in alarm["message"]

    # Recording goes on: stored segments of the camera's real 320x240 picture.
    segments = wait_for(
        lambda: (s := operator.get(f"/api/v1/cameras/{CAMERA}/segments").json()) and len(s) >= 2 and s,
        60,
        "two stored segments",
    )
    content = operator.get(
        f"/api/v1/segments/{segments[0]['id']}/content", params={"justification": "held-to-norms test"}
    )
    assert content.status_code == 200
    frames = decode_rgb(content.content)
    assert frames and frames[0].shape[:2] == (240, 320)

    # The timeline: recorded, and marked non-compliant over what was recorded.
    window = {"start": (started - timedelta(minutes=1)).isoformat(), "end": datetime.now(UTC).isoformat()}
    timeline = operator.get(f"/api/v1/cameras/{CAMERA}/timeline", params=window).json()
    assert timeline["covered"], timeline
    [mark] = timeline["marks"]
    assert mark["reason"] == "stream_non_compliant" and "320x240" in mark["detail"]
    first = min(datetime.fromisoformat(c["start"]) for c in timeline["covered"])
    assert datetime.fromisoformat(mark["start"]) <= first + timedelta(seconds=5)
    assert datetime.fromisoformat(mark["end"]) >= datetime.fromisoformat(timeline["covered"][-1]["end"])

    # The compliance report: a finding and a line in the streams section, in the PDF too.
    report = auditor.get("/api/v1/compliance/report").json()
    [row] = report["streams"]["cameras"]
    assert row["camera_id"] == CAMERA and row["verdict"] == "non_compliant"
    assert row["measured"]["width"] == 320 and row["measured"]["height"] == 240
    assert row["declared"] == {"width": 704, "height": 576, "fps": 10.0}
    assert 8.0 <= row["measured"]["fps"] <= 12.0
    assert any(f.startswith(f"camera {CAMERA}: stream below the norms since") for f in report["findings"])
    pdf = auditor.get("/api/v1/compliance/report.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
