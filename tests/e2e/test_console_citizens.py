"""Citizens' right of access through the console in a real browser: the clerk's intake (identity
document uploaded), the operator's search with the requester's box drawn on a frame, the redaction
job's progress, the kiosk session's code, and the kiosk page — which shows the redacted clip with no
way to keep it (no link, no <video>, no blob: URL; the API refuses every other session).

Processes: ingest, masking (redaction jobs), gateway; the archive and the requisition service
in-process on the test's servers, as in the requisition service's own tests."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from services.common.clock import from_us
from tests.e2e.test_console_login import api_client, console_login, screenshot
from tests.support.archive import T0_US
from tests.support.browser import chromium, until
from tests.support.platform import Platform, wait_for
from tests.support.requisition import LoopThread, RequisitionStack, jpeg_bytes, stack_behind_platform
from tests.support.servers import S3Server, free_port, unique

pytestmark = pytest.mark.e2e
CAM = "cam-a"
S = 1_000_000
PARIS = ZoneInfo("Europe/Paris")

# What the kiosk page exposes that could carry the clip away.
KIOSK_LEAKS = """async () => {
  const html = document.documentElement.outerHTML;
  const get = await fetch('/api/v1/kiosk/clips/0');
  const headless = await fetch('/api/v1/kiosk/clips/0', {method: 'POST'});
  return {
    links: document.querySelectorAll('a[href], [download]').length,
    media: document.querySelectorAll('video, audio, source, object, embed, iframe').length,
    blobInDom: html.includes('blob:'),
    blobResources: performance.getEntriesByType('resource').filter(e => e.name.startsWith('blob:')).length,
    getStatus: get.status, noHeader: headless.status,
  };
}"""


def paris(us: int) -> str:
    return from_us(us).astimezone(PARIS).strftime("%Y-%m-%dT%H:%M:%S")


@pytest.fixture
def env(
    platform: Platform, tmp_path: Path, database_url: str, s3: S3Server, nats_url: str
) -> Iterator[tuple[Platform, RequisitionStack, LoopThread]]:
    masking = {"CSU_MASKING_GRPC": f"127.0.0.1:{free_port()}", "CSU_BUCKET_REDACTIONS": unique("red-")}
    with stack_behind_platform(
        platform, tmp_path, database_url, s3, nats_url, camera=(CAM, "Rue Serpenoise"), seconds=12,
        services=["ingest", "masking", "gateway"], env=masking, masking_target=masking["CSU_MASKING_GRPC"],
    ) as (st, bg):  # fmt: skip
        yield platform, st, bg


def test_intake_search_redaction_and_a_kiosk_that_keeps_nothing(
    env: tuple[Platform, RequisitionStack, LoopThread],
) -> None:
    platform, st, _ = env
    base = platform.gateway
    platform.create_user("claire", "clerk", ["*"])  # a request is on cameras: her groups must cover them
    platform.create_user("oscar", "operator", ["*"])

    with chromium() as browser:
        clerk = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        console_login(clerk, base, "claire")
        clerk.goto(f"{base}/#/citizens")
        clerk.click("#cit-new")
        clerk.fill("#cit-form-full_name", "Camille Durand")
        clerk.fill("#cit-form-birth_date", "1987-04-12")
        clerk.fill("#cit-form-id_document_number", "X4RTBPFW4")
        clerk.fill("#cit-form-contact", "camille.durand@example.org")
        clerk.fill("#cit-form-place", "Rue Serpenoise, devant la pharmacie")
        clerk.fill("#cit-form-camera_ids", CAM)
        clerk.fill("#cit-form-window_start", paris(T0_US + 2 * S))
        clerk.fill("#cit-form-window_end", paris(T0_US + 8 * S))
        clerk.fill("#cit-form-description", "manteau rouge, sac à dos")
        clerk.click("#cit-form button[type=submit]")  # the identity document is missing: the browser says so
        assert clerk.evaluate("document.getElementById('cit-document').validity.valueMissing") is True
        clerk.set_input_files("#cit-document", {"name": "cni.jpg", "mimeType": "image/jpeg", "buffer": jpeg_bytes()})
        clerk.click("#cit-form button[type=submit]")
        until(clerk, "document.getElementById('cit-detail')?.textContent.includes('Camille Durand')", 30)
        request_id = clerk.evaluate("location.hash.split('/')[2]")
        number = clerk.evaluate("document.querySelector('#cit-detail dd').textContent")
        assert number.startswith("DA-")

        # The operator: no identity shown; draws the requester's box on a frame, confirms, redacts.
        operator = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        console_login(operator, base, "oscar")
        operator.goto(f"{base}/#/citizens/{request_id}")
        operator.wait_for_selector("#cit-load")
        assert "Camille" not in operator.inner_text("#cit-detail")
        operator.click("#cit-load")
        until(operator, "document.getElementById('cit-video').readyState >= 2", 120, "the window's footage")
        operator.evaluate("(v => { v.pause(); v.currentTime = 1.0; })(document.getElementById('cit-video'))")
        until(operator, "Math.abs(document.getElementById('cit-video').currentTime - 1.0) < 0.2", 20)
        box = operator.locator("#cit-canvas").bounding_box()
        assert box is not None
        operator.mouse.move(box["x"] + box["width"] * 0.40, box["y"] + box["height"] * 0.30)
        operator.mouse.down()
        operator.mouse.move(box["x"] + box["width"] * 0.60, box["y"] + box["height"] * 0.70, steps=6)
        operator.mouse.up()
        until(operator, "document.getElementById('cit-boxes').textContent.startsWith('1 ')", 10, "one box drawn")
        operator.fill("#cit-note", "visible à 3 s, manteau rouge")
        operator.click("#cit-found")
        until(operator, "document.getElementById('cit-detail').textContent.includes('personne trouvée')", 30)
        # The panel was drawn again: draw the box again on the fresh player, then launch the job.
        operator.click("#cit-load")
        until(operator, "document.getElementById('cit-video').readyState >= 2", 120)
        operator.evaluate("(v => { v.pause(); v.currentTime = 1.0; })(document.getElementById('cit-video'))")
        until(operator, "Math.abs(document.getElementById('cit-video').currentTime - 1.0) < 0.2", 20)
        box = operator.locator("#cit-canvas").bounding_box()
        operator.mouse.move(box["x"] + box["width"] * 0.40, box["y"] + box["height"] * 0.30)
        operator.mouse.down()
        operator.mouse.move(box["x"] + box["width"] * 0.60, box["y"] + box["height"] * 0.70, steps=6)
        operator.mouse.up()
        operator.click("#cit-redact")
        until(operator, "document.querySelector('#cit-detail tr.job') !== null", 30, "the job listed")
        screenshot(operator, "citizen-redaction")
        until(operator, "document.querySelector('#cit-detail tr.job').textContent.includes('terminée')", 300,
              "the redaction job done, its progress followed")  # fmt: skip

        # The clerk opens a kiosk session: a one-time code to type on the viewing-room kiosk. The
        # services' clock is brought to the present first: it starts at the hour the test session
        # began, and the gateway sizes the kiosk cookie from its own clock (a session ending "in the
        # past" got a cookie of one second, and the kiosk lost it mid-test).
        st.clock.advance(max(timedelta(0), datetime.now(UTC) - st.clock.now()))
        clerk.reload()
        clerk.wait_for_selector("#cit-kiosk")
        clerk.click("#cit-kiosk")
        clerk.wait_for_selector("#cit-code")
        code = clerk.inner_text("#cit-code")

        # Every other session is refused the clip.
        for client in (api_client(base, "oscar"), api_client(base, "claire"), httpx.Client(base_url=base)):
            assert client.post("/api/v1/kiosk/clips/0", headers={"X-CSU-Kiosk": "1"}).status_code == 401

        kiosk = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
        kiosk.goto(f"{base}/kiosk")
        kiosk.fill("#code", "123")
        kiosk.click("button[type=submit]")
        assert "10" in kiosk.inner_text("#kiosk-error")  # the code's format, said on the client
        kiosk.fill("#code", code)
        kiosk.click("button[type=submit]")
        painted = "window.kioskState.frames > 20 || window.kioskState.error !== ''"
        try:
            wait_for(lambda: kiosk.evaluate(painted), 120, "the redacted clip painted on the kiosk")
        except AssertionError as exc:
            screenshot(kiosk, "kiosk-failed")
            raise AssertionError(f"{exc}: {kiosk.evaluate('JSON.stringify(window.kioskState)')}") from exc
        assert kiosk.evaluate("window.kioskState.frames") > 20, kiosk.evaluate("JSON.stringify(window.kioskState)")
        assert kiosk.evaluate("window.kioskState.requestNumber") == number
        leaks = kiosk.evaluate(KIOSK_LEAKS)
        assert leaks == {"links": 0, "media": 0, "blobInDom": False, "blobResources": 0, "getStatus": 405,
                         "noHeader": 403}, leaks  # fmt: skip
        screenshot(kiosk, "kiosk")
        until(kiosk, "window.kioskState.ended", 120, "the clip played to its end")
        assert kiosk.evaluate("window.kioskState.error") == ""

        # The outcome: a refusal needs its legal ground (client check); viewed closes the request.
        clerk.select_option("#cit-outcome-outcome", "refused")
        clerk.click("#cit-outcome button[type=submit]")
        until(clerk, "document.querySelector('#cit-outcome .error').textContent.length > 0", 10)
        clerk.select_option("#cit-outcome-outcome", "viewed")
        clerk.click("#cit-outcome button[type=submit]")
        until(clerk, "document.getElementById('cit-detail').textContent.includes('images consultées')", 30)
        screenshot(clerk, "citizen-request-closed")
