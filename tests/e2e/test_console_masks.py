"""The mask editor in a real browser: a supervisor draws a polygon on the camera's snapshot and
submits it; the draft's preview is masked; a second mask administrator approves it in the console;
the live tile on the wall then shows the area grey."""

import pytest

from services.common.cameras import DEMO_WINDOW_MASK
from tests.e2e.test_console_login import console_login, frame_stats, screenshot
from tests.support.browser import chromium, until
from tests.support.platform import Platform, wait_for
from tests.support.servers import free_port

pytestmark = pytest.mark.e2e
CAMERA = "cam-m"
(X0, Y0), (X1, Y1) = DEMO_WINDOW_MASK[0], DEMO_WINDOW_MASK[2]
BOX = [X0, Y0, X1, Y1]

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


def test_draw_submit_approve_and_see_the_mask_on_the_live_tile(platform: Platform) -> None:
    platform.set_cameras([{"id": CAMERA, "name": "Parvis (masques)", "source": "demo://plaza?seed=5", "masks": []}])
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
