"""The video wall in a real browser: a 4-tile layout playing in every tile, drag and drop from the
tree, sub-stream on the grid and main stream maximised, saved personal and shared layouts, the
second screen following the first, and a dead camera shown "offline since"."""

import pytest

from services.common.cameras import DEMO_WINDOW_MASK
from tests.e2e.test_console_login import console_login, frame_stats, screenshot
from tests.support.browser import chromium, until
from tests.support.platform import Platform, wait_for
from tests.support.servers import free_port

pytestmark = pytest.mark.e2e


def camera(n: int, group: str, **extra: object) -> dict:
    return {"id": f"cam-{n}", "name": f"Caméra {n}", "source": f"demo://plaza?seed={n}", "masks": [DEMO_WINDOW_MASK],
            "groups": [group]} | extra  # fmt: skip


def playing(page, index: int) -> bool:  # type: ignore[no-untyped-def]
    """The tile's video advances and shows a real picture (not a blank frame)."""
    selector = f".tile[data-index='{index}'] video"
    first = frame_stats(page, selector)
    if not first or first["time"] < 0.5:
        return False
    page.wait_for_timeout(700)
    second = frame_stats(page, selector)
    return bool(second and second["time"] > first["time"] and second["stddev"] > 20 and second["width"] == 704)


TILES = "[...document.querySelectorAll('.tile')].map(t => t.dataset.camera || '').join()"


def empty_the_wall(page, first_four: str) -> None:  # type: ignore[no-untyped-def]
    """A wall never arranged before opens on the user's first four cameras; clear it to arrange it."""
    until(page, f"{TILES} === '{first_four}'", 20, "the wall opened on the user's first four cameras")
    for index in range(4):
        page.click(f".tile[data-index='{index}'] [data-tool='clear']")
    until(page, f"{TILES} === ',,,'", 10, "an empty wall")


def test_four_tile_wall_layouts_second_screen_and_offline_camera(platform: Platform) -> None:
    platform.set_cameras(
        [
            camera(1, "centre", sub_source="demo://street?seed=11"),
            camera(2, "centre"),
            camera(3, "nord"),
            camera(4, "nord"),
            {"id": "cam-dead", "name": "Caméra en panne", "source": "rtsp://127.0.0.1:9/nothing", "masks": [],
             "groups": ["nord"]},
        ]
    )  # fmt: skip
    platform.env["CSU_MASKING_GRPC"] = f"127.0.0.1:{free_port()}"  # masking's own port, not a shared default
    platform.start(["ingest", "masking", "gateway"], timeout=90)
    platform.create_user("olivier", "operator", ["*"])
    base = platform.gateway
    supervisor = platform.client("supervisor")
    shared = supervisor.post(
        "/api/v1/console/layouts", json={"name": "Centre-ville", "shared": True, "grid": 4, "tiles": ["cam-2", "cam-1"]}
    )
    assert shared.status_code == 201, shared.text

    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1500, "height": 950})
        page = context.new_page()
        console_login(page, base, "olivier")
        page.wait_for_selector(".tree-camera[data-camera='cam-1']")
        empty_the_wall(page, "cam-1,cam-2,cam-3,cam-4")  # cam-dead comes fifth
        page.click("#grid-0-4")
        # Drag from the tree (by group) onto a tile; click fills the next empty tile.
        page.drag_and_drop(".tree-camera[data-camera='cam-1']", ".tile[data-index='0']")
        until(page, "document.querySelector(\".tile[data-index='0']\").dataset.camera === 'cam-1'", 10)
        for n in (2, 3, 4):
            page.click(f".tree-camera[data-camera='cam-{n}']")
        for index in range(4):
            wait_for(lambda i=index: playing(page, i), 120, f"video playing in tile {index}")
        # Masks are burned in before anything reaches the wall.
        (x0, y0), (x1, y1) = DEMO_WINDOW_MASK[0], DEMO_WINDOW_MASK[2]
        assert frame_stats(page, ".tile[data-index='2'] video", [x0, y0, x1, y1])["maskWorst"] <= 8
        # Each tile says when the frame on screen was captured (Europe/Paris), from the stream itself.
        until(
            page,
            "/\\d{2}:\\d{2}:\\d{2}/.test(document.querySelector(\".tile[data-index='2'] .tile-clock\").textContent)",
            10,
        )
        screenshot(page, "wall-4-tiles")

        # cam-1 has a sub-stream: the grid plays it, masked like the main stream (masking has a lane
        # per stream); maximised, the tile shows the main stream.
        player = "[...window.csuPlayers].find(p => p.cameraId === 'cam-1' && !p.stopped)"
        until(
            page,
            f"{player}?.stream === 'sub' && {player}.activeStream === 'sub' && {player}.state.kind === 'live'",
            60,
            "cam-1's masked sub-stream on the grid",
        )
        wait_for(lambda: playing(page, 0), 60, "the sub-stream playing")
        assert frame_stats(page, ".tile[data-index='0'] video", [x0, y0, x1, y1])["maskWorst"] <= 8
        page.click(".tile[data-index='0'] [data-tool='maximise']")
        until(page, f"{player}?.stream === 'main' && {player}.activeStream === 'main'", 30, "cam-1 on its main stream")
        wait_for(lambda: playing(page, 0), 60, "the maximised tile playing")
        screenshot(page, "wall-maximised")
        page.click(".tile[data-index='0'] [data-tool='maximise']")
        until(page, f"{player}?.stream === 'sub'", 30, "the grid stream again")
        until(page, "[...window.csuPlayers].filter(p => !p.stopped).length === 4", 30, "the other tiles resumed")

        # Save the layout as a personal one; switch to 1 tile; load it back.
        page.click("#layout-save-as")
        page.fill("#layout-name", "Ma ronde de nuit")
        assert page.locator("#layout-shared").count() == 0  # operators do not share layouts
        page.click("dialog.modal button[type=submit]")
        until(
            page,
            "[...document.querySelectorAll('#layout-select option')].some(o => o.textContent === 'Ma ronde de nuit')",
            10,
        )
        assert "Centre-ville — supervisor-all" in page.inner_text("#layout-select")
        page.click("#grid-0-1")
        until(page, "document.querySelectorAll('.tile').length === 1", 10)
        page.reload()
        page.wait_for_selector("#layout-select")
        until(page, "document.querySelectorAll('.tile').length === 1", 10, "the wall restored after a reload")
        # The layouts list is fetched on its own after the reload: it may come after the wall.
        mine = until(
            page,
            "[...document.querySelectorAll('#layout-select option')]"
            ".find(o => o.textContent === 'Ma ronde de nuit')?.value",
            10,
            "the saved layout listed after the reload",
        )
        page.select_option("#layout-select", mine)
        until(
            page,
            "[...document.querySelectorAll('.tile')].map(t => t.dataset.camera).join() === 'cam-1,cam-2,cam-3,cam-4'",
            10,
        )
        for index in range(4):
            wait_for(lambda i=index: playing(page, i), 60, f"video playing in tile {index} after loading the layout")

        # Bad input is refused in words by the API too. The session's cookie goes with the console's
        # own Origin, as the console page sends it; a cookie from elsewhere is refused before the role.
        olivier = page.context.request
        own = {"Origin": base}
        refused = olivier.post(
            f"{base}/api/v1/console/layouts",
            data={"name": "x", "shared": True, "grid": 4, "tiles": []},
            headers=own,
        )
        assert refused.status == 403 and "supervisors" in refused.json()["detail"]
        bad = olivier.post(f"{base}/api/v1/console/layouts", data={"name": "y", "grid": 5, "tiles": []}, headers=own)
        assert bad.status == 422

        # The second screen follows the first window: a camera dropped on its map plays there.
        second = context.new_page()
        second.goto(f"{base}/#/screen2")
        second.wait_for_selector("#wall-grid")
        until(page, "document.getElementById('screen2-status').textContent.includes('ouvert')", 20, "screen 2 seen")
        page.click("#grid-1-1")
        page.drag_and_drop(".tree-camera[data-camera='cam-3']", "#screen2-map .map-cell[data-index='0']")
        until(second, "document.querySelector(\".tile[data-index='0']\").dataset.camera === 'cam-3'", 20)
        wait_for(lambda: playing(second, 0), 60, "video playing on the second screen")
        screenshot(second, "wall-second-screen")

        # A dead camera: the tile says since when it is offline, in words.
        page.drag_and_drop(".tree-camera[data-camera='cam-dead']", ".tile[data-index='3']")
        until(
            page,
            "document.querySelector(\".tile[data-index='3'] .tile-alert\")"
            "?.textContent.startsWith('hors ligne depuis ')",
            60,
        )
        assert page.locator(".tile[data-index='3'].offline").count() == 1
        screenshot(page, "wall-offline-tile")
