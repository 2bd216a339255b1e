"""Pop-ups in a real browser: an intercom call brings the bollard's camera up on the operator's
console (a visual cue, no sound), the operator takes the call and opens the bollard from it; the
bollards screen and the camera health dashboard (with its charts) show what happened."""

import httpx
import pytest

from tests.e2e.test_console_login import console_login, screenshot
from tests.support.browser import chromium, until
from tests.support.platform import Platform
from tests.support.servers import free_port

pytestmark = pytest.mark.e2e


def test_intercom_call_pops_up_and_the_bollard_opens_from_it(platform: Platform) -> None:
    platform.env["CSU_MASKING_GRPC"] = f"127.0.0.1:{free_port()}"  # masking's own port, not a shared default
    platform.start(["ingest", "masking", "gateway"], timeout=90)
    platform.create_user("olga", "operator", ["*"])
    base = platform.gateway
    registered = platform.admin().post(
        "/api/v1/bollards",
        json={"id": "borne-1", "name": "Borne rue piétonne", "location": "Rue Serpenoise", "camera_id": "demo-2",
              "driver": "simulated"},
    )  # fmt: skip
    assert registered.status_code == 201, registered.text
    token = registered.json()["intercom_token"]

    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        console_login(page, base, "olga")
        page.wait_for_selector("#wall-grid")
        page.wait_for_timeout(1500)  # the notifications socket is open
        call = httpx.post(f"{base}/api/v1/bollards/borne-1/calls", headers={"X-Intercom-Token": token}, timeout=30)
        assert call.status_code == 201, call.text
        page.wait_for_selector(".popup.call.pulse", timeout=30_000)
        assert "Borne rue piétonne" in page.inner_text(".popup.call")
        until(page, "document.querySelector('.popup.call video').currentTime > 0.5", 60, "the bollard's camera playing")
        screenshot(page, "popup-intercom-call")
        page.click(".popup.call button.primary")  # take the call
        page.click(".popup.call button:has-text('Ouvrir la borne')")
        page.click("dialog.modal button[type=submit]")  # no reason: refused on the client
        assert page.evaluate("document.getElementById('bollard-reason').validity.valid") is False
        page.fill("#bollard-reason", "livraison pharmacie")
        page.fill("#bollard-plate", "AB-123-CD")
        page.click("dialog.modal button[type=submit]")
        until(page, "[...document.querySelectorAll('.toast')].some(t => t.textContent.includes('ok'))", 30)

        page.goto(f"{base}/#/bollards")
        until(page, "document.getElementById('bollards-table').textContent.includes('ouverte')", 30, "the bollard open")
        until(page, "document.getElementById('calls-table').textContent.includes('olga')", 30, "the call taken by olga")
        page.wait_for_selector("#bollard-chart rect")
        screenshot(page, "bollards")

        page.goto(f"{base}/#/health")
        page.wait_for_selector("#status-chart rect")
        until(page, "document.getElementById('health-table').textContent.includes('en ligne')", 30)
        page.wait_for_selector("#availability svg, #availability p")
        screenshot(page, "camera-health")
