"""The live view in a real browser: the page plays, keeps up, and shows the masks."""

import pytest

from services.common.cameras import DEMO_WINDOW_MASK
from tests.support.browser import ARTIFACTS, chromium
from tests.support.platform import Platform

pytestmark = pytest.mark.e2e

# Reads the frame on screen into a canvas: pixel statistics of the whole image and of the mask.
FRAME_STATS = """
([x0, y0, x1, y1]) => {
  const v = document.getElementById("video");
  const c = document.createElement("canvas");
  c.width = v.videoWidth; c.height = v.videoHeight;
  const g = c.getContext("2d");
  g.drawImage(v, 0, 0);
  const all = g.getImageData(0, 0, c.width, c.height).data;
  let sum = 0, sq = 0;
  for (let i = 0; i < all.length; i += 4) { sum += all[i]; sq += all[i] * all[i]; }
  const n = all.length / 4, mean = sum / n;
  const w = Math.round((x1 - x0) * c.width) - 8, h = Math.round((y1 - y0) * c.height) - 8;
  const m = g.getImageData(Math.round(x0 * c.width) + 4, Math.round(y0 * c.height) + 4, w, h).data;
  let worst = 0;
  for (let i = 0; i < m.length; i += 4) for (let k = 0; k < 3; k++) worst = Math.max(worst, Math.abs(m[i + k] - 128));
  return {width: c.width, height: c.height, stddev: Math.sqrt(sq / n - mean * mean), maskWorst: worst};
}
"""


def test_live_page_plays_masked_video_in_chromium(platform: Platform) -> None:
    platform.start(["ingest", "masking", "gateway"])  # the demo cameras
    token = platform.client("operator").headers["Authorization"].removeprefix("Bearer ")
    with chromium() as browser:
        context = browser.new_context()
        # The session cookie the login page would set (the console's login is tested with the console).
        context.add_cookies([{"name": "csu_session", "value": token, "url": platform.gateway}])
        page = context.new_page()
        page.goto(f"{platform.gateway}/api/v1/cameras/demo-1/live")
        page.wait_for_function("document.getElementById('video').currentTime > 1", timeout=30_000)
        # It keeps playing, and plays near the live edge. How fast frames reach the screen is the
        # latency benchmark's business (bench/latency.py): on a loaded machine the pace may dip, so
        # these wait for the state rather than time it.
        first = page.evaluate("document.getElementById('video').currentTime")
        page.wait_for_function(f"document.getElementById('video').currentTime > {first + 1.5}", timeout=15_000)
        page.wait_for_function(
            "(v => v.buffered.length > 0 && v.buffered.end(v.buffered.length - 1) - v.currentTime < 1.5)"
            "(document.getElementById('video'))",
            timeout=15_000,
        )
        (x0, y0), (x1, y1) = DEMO_WINDOW_MASK[0], DEMO_WINDOW_MASK[2]
        stats = page.evaluate(FRAME_STATS, [x0, y0, x1, y1])
        assert (stats["width"], stats["height"]) == (704, 576)
        assert stats["stddev"] > 20, "the frame on screen is blank"
        assert stats["maskWorst"] <= 8, "the masked windows are not grey on screen"
        assert page.inner_text("#state") == "en direct"
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "live-view-demo-1.png"))
