"""The console in Firefox (Debian's Firefox ESR, which decodes H.264 through the system's libavcodec),
as the Chromium tests use it: TOTP login, the session bar with the user's name and habilitation
expiry, and a 4-tile wall playing masked live video (fMP4 over WebSocket into Media Source) in every
tile."""

import base64
import hashlib
import re
from datetime import UTC, datetime, timedelta

import pytest

from services.common.cameras import DEMO_WINDOW_MASK
from tests.e2e.test_console_login import console_login, frame_stats, screenshot
from tests.e2e.test_console_wall import camera, empty_the_wall, playing
from tests.support.browser import firefox, until
from tests.support.platform import Platform, wait_for
from tests.support.servers import free_port

pytestmark = pytest.mark.e2e
# Before a screenshot, Playwright's BiDi backend adds <style>body {}</style> to the page (to sync
# animations); Firefox applies the page's CSP to it, blocks it and says so with this hash.
PLAYWRIGHT_STYLE = "sha256-" + base64.b64encode(hashlib.sha256(b"body {}").digest()).decode()
CSP_WORDS = re.compile(r"Content.Security.Policy|settings blocked")


def test_firefox_login_session_bar_and_four_tile_wall_playing_masked_video(platform: Platform) -> None:
    platform.set_cameras([camera(1, "centre"), camera(2, "centre"), camera(3, "nord"), camera(4, "nord")])
    platform.env["CSU_MASKING_GRPC"] = f"127.0.0.1:{free_port()}"  # masking's own port, not a shared default
    platform.start(["ingest", "masking", "gateway"], timeout=90)
    expires = (datetime.now(UTC) + timedelta(days=200)).replace(hour=12, minute=0, second=0, microsecond=0)
    platform.create_user("fabienne", "operator", ["*"], expires=expires.strftime("%Y-%m-%dT%H:%M:%SZ"))
    base = platform.gateway

    with firefox() as browser:
        context = browser.new_context(viewport={"width": 1500, "height": 950})
        page = context.new_page()
        # Firefox reports a CSP violation as a page error ("The page’s settings blocked ..."); the one
        # Playwright's own screenshots cause (PLAYWRIGHT_STYLE) is not the console's.
        errors: list[str] = []
        page.on("pageerror", lambda exc: PLAYWRIGHT_STYLE not in str(exc) and errors.append(str(exc)))
        page.on("console", lambda msg: msg.type == "error" and CSP_WORDS.search(msg.text) and errors.append(msg.text))
        console_login(page, base, "fabienne")
        assert "Firefox/" in page.evaluate("navigator.userAgent")
        assert "Fabienne" in page.inner_text("#session-user")
        assert page.inner_text("#session-habilitation") == f"Habilitation valable jusqu'au {expires:%d/%m/%Y}"

        page.wait_for_selector(".tree-camera[data-camera='cam-1']")
        empty_the_wall(page, "cam-1,cam-2,cam-3,cam-4")
        page.click("#grid-0-4")
        # A click on a camera of the tree fills the next empty tile (a drop cannot be tested here: see below).
        for n in (1, 2, 3, 4):
            page.click(f".tree-camera[data-camera='cam-{n}']")
        until(
            page,
            "[...document.querySelectorAll('.tile')].map(t => t.dataset.camera).join() === 'cam-1,cam-2,cam-3,cam-4'",
            10,
        )
        for index in range(4):
            wait_for(lambda i=index: playing(page, i), 120, f"video playing in tile {index} in Firefox")
        codecs = page.evaluate("[...window.csuPlayers].map(p => p.codec)")
        assert len(codecs) == 4 and all(codec.startswith("avc1.") for codec in codecs), codecs
        assert page.evaluate(
            "[...window.csuPlayers].every(p => p.state.kind === 'live'"
            ' && MediaSource.isTypeSupported(`video/mp4; codecs="${p.codec}"`))'
        )
        # Masks are burned in before anything reaches the wall, in every tile.
        (x0, y0), (x1, y1) = DEMO_WINDOW_MASK[0], DEMO_WINDOW_MASK[2]
        for index in range(4):
            stats = frame_stats(page, f".tile[data-index='{index}'] video", [x0, y0, x1, y1])
            assert stats is not None and stats["maskWorst"] <= 8, (index, stats and stats["maskWorst"])
        screenshot(page, "firefox-wall-4-tiles")

        # Dragging a camera from the tree: Firefox's drag session starts and a tile accepts it
        # (dragover sees the camera's type in DataTransfer.types). Firefox 153 ESR's WebDriver ends
        # a synthesized drag session on mouse up without dispatching "drop" (a FIXME in its
        # EventUtils), so the drop itself is tested in Chromium only (test_console_wall.py).
        page.hover(".tree-camera[data-camera='cam-2']")
        page.mouse.down()
        box = page.locator(".tile[data-index='0']").bounding_box()
        assert box is not None
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, steps=8)
        until(page, "document.querySelector(\".tile[data-index='0']\").classList.contains('drop')", 10, "dragover")
        page.mouse.up()
        assert errors == [], errors
