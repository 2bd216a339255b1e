"""PTZ on a wall tile in a real browser: drag on the picture to move the (simulated) camera and see
its image change, go to a preset, and a refused command that names who holds the camera."""

import pytest

from tests.e2e.test_console_login import api_client, console_login, frame_stats, screenshot
from tests.support.browser import chromium, until
from tests.support.platform import Platform, wait_for
from tests.support.servers import free_port

pytestmark = pytest.mark.e2e
CAMERA = "ptz-parvis"
URL = f"simptz://{CAMERA}?width=352&height=288&fps=8"


def thumb(page) -> list[int] | None:  # type: ignore[no-untyped-def]
    stats = frame_stats(page, ".tile[data-index='0'] video")
    return stats["thumb"] if stats and stats["time"] > 0.5 and stats["stddev"] > 10 else None


def difference(a: list[int], b: list[int]) -> float:
    return sum(abs(x - y) for x, y in zip(a, b, strict=True)) / len(a)


def test_drag_to_move_presets_and_refusal_naming_the_holder(platform: Platform) -> None:
    platform.set_cameras(
        [{"id": CAMERA, "name": "Parvis (PTZ)", "source": URL, "masks": [], "ptz_driver": "simulated", "ptz_url": URL,
          "groups": ["centre"], "profile": {"width": 352, "height": 288, "fps": 8}}]
    )  # fmt: skip
    platform.env["CSU_MASKING_GRPC"] = f"127.0.0.1:{free_port()}"  # masking's own port, not a shared default
    platform.start(["ingest", "masking", "gateway"], timeout=90)
    platform.create_user("paul", "operator", ["centre"])
    base = platform.gateway
    supervisor = platform.client("supervisor", ["centre"])
    ptz = f"/api/v1/cameras/{CAMERA}/ptz"
    wait_for(lambda: supervisor.get(ptz).json().get("position"), 60, "the simulated PTZ driver connected")

    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        console_login(page, base, "paul")
        operator = api_client(base, "paul")
        page.click("#grid-0-1")
        page.click(f".tree-camera[data-camera='{CAMERA}']")
        before = wait_for(lambda: thumb(page), 90, "the PTZ camera playing in the tile")
        start = operator.get(ptz).json()["position"]

        page.click(".tile[data-index='0'] [data-tool='ptz']")
        until(page, "document.querySelector('.ptz-info')?.textContent.includes('Caméra libre')", 20, "the PTZ panel")
        box = page.locator(".ptz-pad").bounding_box()
        assert box is not None
        cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.move(cx, cy)
        page.mouse.down()
        page.mouse.move(cx + box["width"] * 0.35, cy + 10, steps=8)
        wait_for(
            lambda: operator.get(ptz).json()["position"]["pan"] > start["pan"] + 0.2, 30, "the camera panning right"
        )
        page.mouse.up()
        until(page, "document.querySelector('.ptz-info').textContent.includes('Pilotée par vous')", 20, "holder shown")
        wait_for(lambda: not operator.get(ptz).json()["moving"], 20, "the camera stopped after the drag")
        after = wait_for(lambda: (t := thumb(page)) and difference(before, t) > 12 and t, 30, "the picture changed")
        assert difference(before, after) > 12
        screenshot(page, "ptz-tile")

        # A preset chosen in the panel moves the camera there.
        assert supervisor.put(
            f"{ptz}/presets/Fontaine", json={"position": {"pan": -0.6, "tilt": 0.0, "zoom": 0.2}}
        ).is_success
        until(page, "[...document.querySelectorAll('.ptz-presets option')].some(o => o.value === 'Fontaine')", 20)
        page.select_option(".ptz-presets", "Fontaine")
        page.click("[data-ptz='goto']")
        wait_for(lambda: abs(operator.get(ptz).json()["position"]["pan"] + 0.6) < 0.02, 30, "the camera at the preset")

        # A supervisor takes the camera: the operator's command is refused, naming the holder.
        assert supervisor.post(f"{ptz}/move", json={"kind": "relative", "pan": 0.1}).is_success
        page.click("[data-ptz='ptz.zoomIn']")
        refusal = "held by supervisor-centre (priority 80"
        until(page, f"document.querySelector('.ptz-message').textContent.includes('{refusal}')", 20, "the refusal")
        until(page, "document.querySelector('.ptz-info').textContent.includes('supervisor-centre')", 20)
        assert "Traceback" not in page.inner_text(".ptz-message")
        screenshot(page, "ptz-refused")
