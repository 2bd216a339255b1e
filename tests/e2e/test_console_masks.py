"""The mask editor in a real browser: a supervisor draws a polygon on the camera's snapshot and
submits it; the draft's preview is masked; a second mask administrator approves it in the console;
the live tile on the wall then shows the area grey. Then the PTZ calibration step on a dome: the
supervisor clicks landmarks on snapshots at three positions and two zooms, sees the fit and each
point's residual, and saves it."""

import httpx
import pytest

from services.common.cameras import DEMO_WINDOW_MASK
from services.ingest.ptz.sim import SIM_OPTICS
from tests.e2e.test_console_login import console_login, frame_stats, screenshot
from tests.support.browser import chromium, until
from tests.support.platform import Platform, wait_for
from tests.support.ptz import LANDMARKS, image_points
from tests.support.servers import free_port

pytestmark = pytest.mark.e2e
CAMERA = "cam-m"
(X0, Y0), (X1, Y1) = DEMO_WINDOW_MASK[0], DEMO_WINDOW_MASK[2]
BOX = [X0, Y0, X1, Y1]
DOME = "dome-m"
DOME_URL = f"simptz://{DOME}?width=352&height=288&fps=8"

# Worst distance to mask grey inside the box, on an <img> (the preview).
IMAGE_GREY = """
([selector, [x0, y0, x1, y1]]) => {
  const img = document.querySelector(selector);
  if (!img || !img.complete || !img.naturalWidth) return null;
  const c = document.createElement("canvas");
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const g = c.getContext("2d");
  g.drawImage(img, 0, 0);
  const w = Math.round((x1 - x0) * c.width) - 16, h = Math.round((y1 - y0) * c.height) - 16;
  const m = g.getImageData(Math.round(x0 * c.width) + 8, Math.round(y0 * c.height) + 8, w, h).data;
  let worst = 0;
  for (let i = 0; i < m.length; i += 4) for (let k = 0; k < 3; k++) worst = Math.max(worst, Math.abs(m[i + k] - 128));
  return worst;
}
"""


def _snapshot_at(client: httpx.Client, position: tuple[float, float, float]) -> bool:
    shot = client.get(f"/api/v1/cameras/{DOME}/masks-preview")
    seen = [float(v) for v in shot.headers.get("X-Ptz-Position", "9,9,9").split(",")]
    return all(abs(a - b) < 2e-4 for a, b in zip(seen, position, strict=True))


def test_draw_submit_approve_and_see_the_mask_on_the_live_tile(platform: Platform) -> None:
    platform.set_cameras(
        [
            {"id": CAMERA, "name": "Parvis (masques)", "source": "demo://plaza?seed=5", "masks": []},
            {
                "id": DOME,
                "name": "Dôme (calibration)",
                "source": DOME_URL,
                "ptz_driver": "simulated",
                "ptz_url": DOME_URL,
                "masks": [],
                "profile": {"width": 352, "height": 288, "fps": 8},
            },
        ]
    )
    platform.env["CSU_MASKING_GRPC"] = f"127.0.0.1:{free_port()}"  # masking's own port, not a shared default
    platform.start(["ingest", "masking", "gateway"], timeout=90)
    platform.create_user("sandra", "supervisor", ["*"])
    base = platform.gateway
    platform.admin().close()  # enrols the admin's TOTP, so the console test can log in as admin

    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1500, "height": 1000})
        wall = context.new_page()
        console_login(wall, base, "sandra")
        wall.click("#grid-0-1")
        wall.click(f".tree-camera[data-camera='{CAMERA}']")
        selector = ".tile[data-index='0'] video"
        wait_for(lambda: (s := frame_stats(wall, selector, BOX)) and s["stddev"] > 20, 90, "the live tile playing")
        assert frame_stats(wall, selector, BOX)["maskWorst"] > 30, "the windows are not masked yet"

        editor = context.new_page()
        editor.goto(f"{base}/#/masks/{CAMERA}")
        editor.wait_for_selector("#mask-snapshot")
        editor.click("#mask-snapshot")
        until(editor, "document.getElementById('mask-image').naturalWidth > 0", 60, "the snapshot")
        box = editor.locator("#mask-canvas").bounding_box()
        assert box is not None
        points = [(X0, Y0), (X1, Y0), (X1, Y1), (X0, Y1), (X0, Y0)]  # back to the first point closes it
        for x, y in points:
            editor.mouse.click(box["x"] + x * box["width"], box["y"] + y * box["height"])
        until(editor, "document.querySelectorAll('#mask-polygons li').length === 1", 10, "one polygon drawn")
        editor.fill("#mask-polygons li input", "fenêtres de l'immeuble")
        editor.fill("#mask-comment", "Fenêtres des logements, façade nord")
        editor.click("#mask-submit")
        until(editor, "document.getElementById('mask-preview').naturalWidth > 0", 60, "the draft's preview")
        assert editor.evaluate(IMAGE_GREY, ["#mask-preview", BOX]) <= 12, "the preview does not show the draft's mask"
        assert "attend un second administrateur" in editor.inner_text("#mask-versions")
        screenshot(editor, "mask-editor")
        # Not approved yet: the live picture is unchanged.
        assert frame_stats(wall, selector, BOX)["maskWorst"] > 30

        # Four eyes: another mask administrator approves it in the console.
        admin = browser.new_context(viewport={"width": 1500, "height": 1000}).new_page()
        console_login(admin, base, "admin", Platform.ADMIN_PASSWORD)
        admin.goto(f"{base}/#/masks/{CAMERA}")
        admin.wait_for_selector("#mask-versions [data-approve]")
        admin.click("#mask-versions [data-approve]")
        until(admin, "document.getElementById('mask-versions').textContent.includes('approuvé')", 30)

        wait_for(lambda: frame_stats(wall, selector, BOX)["maskWorst"] <= 8, 60, "the mask on the live tile")
        screenshot(wall, "wall-mask-applied")

        # The PTZ calibration step, on a dome: landmarks clicked on snapshots at three positions.
        sandra = platform.client("supervisor")
        editor.goto(f"{base}/#/masks/{DOME}")
        until(editor, "!document.getElementById('mask-calibration').hidden", 30, "the calibration step")
        assert "Non calibrée" in editor.inner_text("#calib-status")
        facade_pan, facade_tilt = SIM_OPTICS.position(*LANDMARKS["window C, bottom left"])
        editor.click("#calib-toggle")
        clicked = 0
        for position in ((facade_pan + 0.02, facade_tilt + 0.03, 0.0), (facade_pan - 0.04, facade_tilt - 0.05, 0.0),
                         (facade_pan + 0.005, facade_tilt + 0.01, 0.5)):  # fmt: skip
            ptz = f"/api/v1/cameras/{DOME}/ptz"
            target = {"kind": "absolute", "pan": position[0], "tilt": position[1], "zoom": position[2]}
            assert sandra.post(f"{ptz}/move", json=target).status_code == 200
            # The snapshot is the latest keyframe's image: wait until one was taken there.
            wait_for(lambda p=position: _snapshot_at(sandra, p), 30, f"a keyframe at {position}")
            before = editor.inner_text("#mask-shot-info")
            editor.click("#mask-snapshot")
            until(editor, f"document.getElementById('mask-shot-info').textContent !== {before!r}", 20, "the snapshot")
            box = editor.locator("#mask-canvas").bounding_box()
            assert box is not None
            for name, direction in LANDMARKS.items():
                [(x, y)] = image_points([direction], position, 352 / 288)
                if 0.03 < x < 0.97 and 0.03 < y < 0.97:
                    editor.fill("#calib-landmark", name)
                    editor.mouse.click(box["x"] + x * box["width"], box["y"] + y * box["height"])
                    clicked += 1
        until(editor, f"document.querySelectorAll('#calib-points tbody tr').length === {clicked}", 10, "the points")
        editor.click("#calib-fit")
        until(editor, "document.getElementById('calib-result').textContent.includes('px')", 30, "the fit shown")
        assert "Ajustement" in editor.inner_text("#calib-result"), editor.inner_text("#calib-result")
        assert " px" in editor.inner_text("#calib-points")  # each point's residual
        screenshot(editor, "ptz-calibration")
        editor.click("#calib-save")
        until(editor, "document.getElementById('calib-status').textContent.includes('Calibrée (v1')", 30, "saved")
        assert sandra.get(f"/api/v1/cameras/{DOME}/ptz-calibration").json()["version"] == 1
