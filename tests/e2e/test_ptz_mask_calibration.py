"""PTZ masks hold on a dome that is not the deployment's default, end to end.

The simulated dome (ingest) has optics of its own, and its homes' windows are painted in a colour
nothing else in its scene has: a frame leaks when any pixel of that colour is in it. Its masks come
from the camera catalogue, drawn on its home view: approved without a calibration. Then:

1. caught: every stored frame is masked whole, and masking raises masking.ptz_uncalibrated (listed
   in the compliance report too);
2. a mask administrator calibrates the dome in the mask editor's step (reference points at three
   zooms; the fit, computed by masking, is shown with its residual, then saved), draws the windows
   again on its image, and a second administrator approves the set;
3. held: while an operator pans and zooms the dome across the facade, no stored frame shows a
   window, and the frames are not masked whole (the masks follow the windows, not the image).

Fails on a platform that projects PTZ masks with one deployment-wide model: stage 1 sees the
windows (no alarm, no whole-image masking), and the simulator shared that model so nothing could
disagree.
"""

import time
from datetime import UTC, datetime

import httpx
import numpy as np
import pytest

from services.common.optics import unit_vectors
from services.ingest.ptz.sim import PRIVATE_WINDOWS, SIM_OPTICS, scene_direction
from tests.support.accounts import login
from tests.support.media import MASK_GREY, decode_rgb
from tests.support.platform import Platform, wait_for
from tests.support.ptz import clicks, drawn_windows, private_pixels
from tests.support.servers import unique

pytestmark = pytest.mark.e2e
W, H, FPS = 352, 288, 10
ASPECT = W / H
HOME = (0.0, 0.0, 0.0)
FACADE = (-0.06, 0.08, 0.0)
WHY = {"justification": "PTZ mask calibration test"}
# Masking burns the date, time and camera into a band at the top (services/masking/osd.py: text
# 1/36 of the height plus padding, rows 2-17 at 288): a caption, not picture. Whole-image masking is
# judged below it.
OSD_ROWS = H // 10
WINDOW_CENTRES = [scene_direction((x0 + x1) / 2, (y0 + y1) / 2) for x0, y0, x1, y1 in PRIVATE_WINDOWS]


def _segments(client: httpx.Client, camera: str, since: datetime, version: str) -> list[dict]:
    listed = client.get(f"/api/v1/cameras/{camera}/segments").json()
    return [s for s in listed if s["mask_version"] == version and datetime.fromisoformat(s["start"]) >= since]


def _frames(client: httpx.Client, segments: list[dict]) -> list[np.ndarray]:
    frames: list[np.ndarray] = []
    for segment in segments:
        content = client.get(f"/api/v1/segments/{segment['id']}/content", params=WHY)
        assert content.status_code == 200, content.text
        frames += decode_rgb(content.content)
    return frames


def _windows_in_view(position: dict) -> bool:
    """Whether the dome shows a private window at this position (its true optics: the test's eyes)."""
    az, el = (np.array(v) for v in zip(*WINDOW_CENTRES, strict=True))
    camera = SIM_OPTICS.to_camera(unit_vectors(az, el), position["pan"], position["tilt"])
    front = camera[:, 2] > 0
    points = SIM_OPTICS.to_image(camera[front], position["zoom"], ASPECT)
    return bool(((points > 0) & (points < 1)).all(axis=1).any())


def masked_whole(frame: np.ndarray) -> bool:
    return int(np.abs(frame[OSD_ROWS:].astype(int) - MASK_GREY).max()) <= 6


def test_an_uncalibrated_dome_is_caught_and_a_calibrated_one_keeps_its_windows_masked(platform: Platform) -> None:
    camera = unique("dome-")
    url = f"simptz://{camera}?width={W}&height={H}&fps={FPS}"
    platform.env["CSU_SEGMENT_DURATION_S"] = "2"
    platform.set_cameras(
        [
            {
                "id": camera,
                "name": "Dôme du parvis",
                "source": url,
                "ptz_driver": "simulated",
                "ptz_url": url,
                "profile": {"width": W, "height": H, "fps": FPS},
                # The windows as drawn on the home view, converted through the default optics.
                "masks": drawn_windows(HOME, ASPECT),
            }
        ]
    )
    started = datetime.now(UTC)
    platform.start(["ingest", "masking", "archive", "gateway"])
    platform.create_user("sandra", "supervisor")
    sandra = login(platform.gateway, "sandra", Platform.USER_PASSWORD)
    admin, operator, maintenance = platform.admin(), platform.client("operator"), platform.client("maintenance")

    # 1. Caught: masked whole, and an alarm.
    alarm = wait_for(
        lambda: [a for a in maintenance.get("/api/v1/alarms").json() if a["kind"] == "masking.ptz_uncalibrated"],
        60,
        "the uncalibrated PTZ alarm",
    )[0]
    assert alarm["camera_id"] == camera and "approved without a calibration" in alarm["message"]
    stored = wait_for(lambda: _segments(operator, camera, started, "v1")[:2], 60, "segments of the catalogue set")
    frames = _frames(operator, stored)
    assert frames and all(masked_whole(f) for f in frames), "not masked whole"
    report = platform.client("auditor").get("/api/v1/compliance/report").json()
    assert (
        f"camera {camera}: PTZ masks approved without a calibration of the camera: its image is masked whole"
        in (report["findings"])
    )
    assert sandra.get(f"/api/v1/cameras/{camera}/ptz-calibration").json()["calibrated"] is False

    # 2. The calibration step: the fit is shown with its residual, then saved; the windows drawn again.
    points = clicks(ASPECT)
    calibration = f"/api/v1/cameras/{camera}/ptz-calibration"
    shown = sandra.post(calibration, json={"points": points})
    assert shown.status_code == 200, shown.text
    fit = shown.json()
    assert fit["version"] is None and fit["problem"] == "" and fit["rms_px"] < 1.5
    assert len(fit["points"]) == len(points) and all(p["residual_px"] < 3 for p in fit["points"])
    assert fit["optics"]["pan_direction"] == -1 and "zoom_exponent" in fit["fitted"]
    refused = sandra.post(calibration, json={"points": points[:3], "save": True})
    assert refused.status_code == 422 and "landmark" in refused.json()["detail"]
    assert operator.post(calibration, json={"points": points}).status_code == 403
    saved = sandra.post(calibration, json={"points": points, "save": True, "comment": "repères de la façade"})
    assert saved.status_code == 200 and saved.json()["version"] == 1, saved.text
    draft = sandra.post(
        f"/api/v1/cameras/{camera}/masks",
        json={
            "polygons": [{"points": p, "label": "fenêtre"} for p in drawn_windows(FACADE, ASPECT)],
            "drawn_at": dict(zip(("pan", "tilt", "zoom"), FACADE, strict=True)),
            "comment": "fenêtres redessinées après calibration",
        },
    )
    assert draft.status_code == 201 and draft.json()["calibration_version"] == 1, draft.text
    approved = admin.post(f"/api/v1/cameras/{camera}/masks/{draft.json()['version']}/approve", json={})
    assert approved.status_code == 200, approved.text
    calibrated_from = datetime.now(UTC)
    auditor = platform.client("auditor")
    trail = wait_for(
        lambda: len(t := auditor.get("/api/v1/audit", params={"action": "mask.calibration"}).json()) >= 2 and t,
        30,
        "the calibration in the audit trail",
    )
    assert sorted((e["actor"], e["action"], e["outcome"]) for e in trail) == [
        ("sandra", "mask.calibration.save", "ok"),  # the saved one, and the refused attempt as such
        ("sandra", "mask.calibration.save", "refused"),
    ]
    assert "landmark" in next(e for e in trail if e["outcome"] == "refused")["details"]["reason"]

    # 3. Held: the operator pans and zooms across the facade; positions sampled as it goes.
    ptz = f"/api/v1/cameras/{camera}/ptz"
    assert operator.post(f"{ptz}/move", json={"kind": "absolute", "pan": FACADE[0], "tilt": FACADE[1]}).is_success
    wait_for(lambda: not operator.get(ptz).json()["moving"], 20, "the dome at the facade")
    seen: list[dict] = []
    script = [
        ({"kind": "continuous", "pan": -0.08}, 1.5),
        ({"kind": "continuous", "zoom": 0.5}, 1.5),
        ({"kind": "continuous", "pan": 0.08, "tilt": 0.05}, 1.5),
        ({"kind": "absolute", "pan": -0.075, "tilt": 0.05, "zoom": 1.0}, 2.5),
        ({"kind": "continuous", "pan": 0.03, "zoom": -0.4}, 2.0),
        ({"kind": "stop"}, 0.5),
    ]
    for body, seconds in script:
        assert operator.post(f"{ptz}/move", json=body).is_success
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            seen.append(operator.get(ptz).json()["position"])
            time.sleep(0.25)
    moved_until = datetime.now(UTC)
    assert sum(_windows_in_view(p) for p in seen) >= len(seen) // 2, "the windows were hardly in view"
    assert max(p["zoom"] for p in seen) > 0.9 and len({round(p["pan"], 2) for p in seen}) > 5

    version = approved.json()["mask_version"]
    segments = wait_for(
        lambda: (
            (s := _segments(operator, camera, calibrated_from, version))
            and max(datetime.fromisoformat(x["end"]) for x in s) >= moved_until
            and s
        ),
        60,
        "the motion's segments stored",
    )
    frames = _frames(operator, segments)
    assert len(frames) >= FPS * 8
    leaks = [n for n, f in enumerate(frames) if private_pixels(f).sum() > 0]
    assert not leaks, f"{len(leaks)} of {len(frames)} frames show a private window (first: {leaks[0]})"
    whole = sum(masked_whole(f) for f in frames)
    assert whole < len(frames) // 4, f"{whole} of {len(frames)} frames masked whole: the masks do not follow"
