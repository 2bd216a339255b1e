"""The console in a real browser: TOTP login through the form, the session bar, the security
headers, the language switch, plain-word errors. Also the helpers the other console tests share."""

import re

import httpx
import pyotp
import pytest
from playwright.sync_api import Page

from tests.support import accounts
from tests.support.browser import ARTIFACTS, chromium, until
from tests.support.platform import Platform

pytestmark = pytest.mark.e2e
PASSWORD = Platform.USER_PASSWORD

# Pixel statistics of what a <video> shows: its size, the grey-level spread (0 for a blank frame)
# and, optionally, the worst distance to mask grey (128) inside a normalised box.
FRAME_STATS = """
([selector, box]) => {
  const v = document.querySelector(selector);
  if (!v || !v.videoWidth) return null;
  const c = document.createElement("canvas");
  c.width = v.videoWidth; c.height = v.videoHeight;
  const g = c.getContext("2d");
  g.drawImage(v, 0, 0);
  const all = g.getImageData(0, 0, c.width, c.height).data;
  let sum = 0, sq = 0;
  for (let i = 0; i < all.length; i += 4) { sum += all[i]; sq += all[i] * all[i]; }
  const n = all.length / 4, mean = sum / n;
  let maskWorst = null;
  if (box) {
    const [x0, y0, x1, y1] = box;
    const w = Math.round((x1 - x0) * c.width) - 8, h = Math.round((y1 - y0) * c.height) - 8;
    const m = g.getImageData(Math.round(x0 * c.width) + 4, Math.round(y0 * c.height) + 4, w, h).data;
    maskWorst = 0;
    for (let i = 0; i < m.length; i += 4) {
      for (let k = 0; k < 3; k++) maskWorst = Math.max(maskWorst, Math.abs(m[i + k] - 128));
    }
  }
  const small = document.createElement("canvas");
  small.width = 32; small.height = 24;
  small.getContext("2d").drawImage(v, 0, 0, 32, 24);
  const thumb = Array.from(small.getContext("2d").getImageData(0, 0, 32, 24).data.filter((_, i) => i % 4 === 0));
  const stddev = Math.sqrt(sq / n - mean * mean);
  return {width: c.width, height: c.height, time: v.currentTime, stddev, maskWorst, thumb};
}
"""


def fresh_code(username: str, secret: str) -> str:
    """A TOTP code of a time step this user has not used (the gateway refuses replayed codes)."""
    return accounts.next_code(secret)


def console_login(page: Page, base: str, username: str, password: str = PASSWORD) -> None:
    """Log in through the console's own form: password, then TOTP (enrolling from the secret the
    page shows at first login). The secret is remembered for later logins and API clients."""
    page.goto(f"{base}/")
    page.fill("#login-username", username)
    page.fill("#login-password", password)
    page.click("#login-submit")
    page.wait_for_selector("#login-totp", state="visible", timeout=20_000)
    if page.is_visible("#totp-secret"):
        secret = page.inner_text("#totp-secret").replace(" ", "")
        assert re.fullmatch(r"[A-Z2-7]{16,}", secret), secret
        accounts._SECRETS[(base, username)] = secret
    page.fill("#login-totp", fresh_code(username, accounts._SECRETS[(base, username)]))
    page.click("#login-submit")
    page.wait_for_selector("#session-user", timeout=20_000)


def api_client(base: str, username: str) -> httpx.Client:
    """An API client for a user who enrolled through the console."""
    secret = accounts._SECRETS[(base, username)]
    body = {"username": username, "password": PASSWORD, "totp": fresh_code(username, secret)}
    answer = httpx.post(f"{base}/api/v1/auth/login", json=body, timeout=30).json()
    assert answer.get("status") == "ok", answer
    return httpx.Client(base_url=base, timeout=60, headers={"Authorization": f"Bearer {answer['access_token']}"})


def frame_stats(page: Page, selector: str, box: list[float] | None = None) -> dict | None:
    return page.evaluate(FRAME_STATS, [selector, box])


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"console-{name}.png"))


def test_totp_login_session_bar_headers_language_and_errors(platform: Platform) -> None:
    platform.start(["ingest", "gateway"])
    platform.create_user("odile", "operator", ["*"], expires="2027-06-30T12:00:00Z")
    base = platform.gateway

    page_answer = httpx.get(f"{base}/", timeout=10)
    csp = page_answer.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "'unsafe-inline'" not in csp
    assert f"ws://127.0.0.1:{platform.gateway_port}" in csp and "img-src 'self' data: blob:" in csp
    assert "<script>" not in page_answer.text and "<script " in page_answer.text  # module files only
    assert httpx.get(f"{base}/static/../console.py", timeout=10).status_code == 404
    assert httpx.get(f"{base}/static/js/app.js", timeout=10).headers["content-type"].startswith("text/javascript")

    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on(
            "console",
            lambda msg: msg.type == "error" and "Content Security Policy" in msg.text and errors.append(msg.text),
        )
        page.goto(f"{base}/")
        # Client-side validation: nothing is sent without a username.
        page.click("#login-submit")
        assert page.evaluate("document.getElementById('login-username').validity.valid") is False
        # A wrong password: the server's reason in plain words.
        page.fill("#login-username", "odile")
        page.fill("#login-password", "not-the-password")
        page.click("#login-submit")
        until(page, "document.getElementById('login-error').textContent.length > 0")
        message = page.inner_text("#login-error")
        assert "Traceback" not in message and "{" not in message
        # First login: the enrolment QR code and its secret; a wrong code is refused in words.
        page.fill("#login-password", PASSWORD)
        page.click("#login-submit")
        page.wait_for_selector("#totp-secret")
        assert page.locator("#login-enrol svg.qr path").count() == 1
        secret = page.inner_text("#totp-secret").replace(" ", "")
        accounts._SECRETS[(base, "odile")] = secret
        screenshot(page, "login-totp-enrolment")
        page.fill("#login-totp", "12345")
        page.click("#login-submit")
        assert page.evaluate("document.getElementById('login-totp').validity.valid") is False
        wrong = f"{(int(pyotp.TOTP(secret).now()) + 500000) % 1000000:06d}"
        page.fill("#login-totp", wrong)
        page.click("#login-submit")
        until(page, "document.getElementById('login-error').textContent.includes('TOTP')")
        page.fill("#login-totp", fresh_code("odile", secret))
        page.click("#login-submit")
        page.wait_for_selector("#session-user")
        assert "Odile" in page.inner_text("#session-user")
        assert page.inner_text("#session-habilitation") == "Habilitation valable jusqu'au 30/06/2027"
        # The menu follows the role: an operator gets the wall, never the administration.
        assert (
            page.is_visible("#nav-wall") and not page.is_visible("#nav-users") and not page.is_visible("#nav-cameras")
        )
        # Every string goes through the dictionaries; both languages have the same keys.
        keys = page.evaluate(
            "Promise.all([import('/static/js/lang/fr.js'), import('/static/js/lang/en.js')])"
            ".then(([f, e]) => [Object.keys(f.default).sort(), Object.keys(e.default).sort()])"
        )
        assert keys[0] == keys[1] and len(keys[0]) > 200
        page.select_option("#session select.lang", "en")
        until(
            page, "document.getElementById('session-habilitation').textContent.startsWith('Habilitation valid until')"
        )
        assert page.inner_text("#nav-wall") == "Video wall"
        page.select_option("#session select.lang", "fr")
        until(page, "document.getElementById('nav-wall').textContent === \"Mur d'images\"")
        # Logging out ends the session: the login form again, the API refuses the old cookie.
        # The logout reloads the page (location.replace): wait for that load, not for a login form
        # the old page may already show (a poll answered 401), or the check below runs as the
        # page goes ("Execution context was destroyed", seen once in a full run).
        with page.expect_navigation():
            page.click("#logout")
        page.wait_for_selector("#login-username")
        assert page.evaluate("fetch('/api/v1/console/me').then(r => r.status)") == 401
        # Second login: no enrolment, a TOTP code only.
        console_login(page, base, "odile")
        assert not page.is_visible("#login-enrol")
        assert errors == [], errors
