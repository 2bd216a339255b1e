"""Attacks on the gateway's door, over HTTP against a running gateway: guessing TOTP codes after
the right password, replaying a code, racing the lock, spreading guesses over addresses, forging
X-Forwarded-For, cross-site requests riding the session cookie, filling the audit trail with
made-up tokens; weak passwords, and changing and resetting passwords.

One platform for the module. The gateway believes forwarded headers from 127.0.0.2 only (its
"ingress"): a client bound to 127.0.0.2 speaks for the address it puts in X-Forwarded-For, so the
tests can be many clients; anything from 127.0.0.1 (the tests' usual address) is believed as is.
"""

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pyotp
import pytest
from typer.testing import CliRunner
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from services.csuctl.app import app as cli_app
from tests.e2e.test_console_login import console_login
from tests.support import accounts
from tests.support.accounts import login, next_code
from tests.support.browser import chromium, until
from tests.support.platform import Platform, wait_for
from tests.support.servers import S3Server, database, delete_streams
from tests.support.together import at_once

pytestmark = pytest.mark.e2e
PROXY = "127.0.0.2"
PASSWORD = Platform.USER_PASSWORD
WRONG = "wrong username or password"
ADDRESS_BUDGET = 8
AUDIT_WINDOW_S = 3


@pytest.fixture(scope="module")
def door(tmp_path_factory: pytest.TempPathFactory, nats_url: str, s3: S3Server) -> Iterator[Platform]:
    workdir = tmp_path_factory.mktemp("door")
    with database(workdir) as url:
        p = Platform(workdir, nats_url, url, s3)
        p.env |= {
            "CSU_TRUSTED_PROXIES": PROXY,
            "CSU_LOGIN_ADDRESS_MAX_FAILURES": str(ADDRESS_BUDGET),
            "CSU_REFUSAL_AUDIT_WINDOW_S": str(AUDIT_WINDOW_S),
        }
        p.start(["ingest", "gateway"])
        try:
            yield p
        finally:
            killed = p.stop()
            asyncio.run(delete_streams(nats_url, {p.nats_prefix}))
        assert not killed, p.logs()


def from_address(base: str, address: str) -> httpx.Client:
    """A client the gateway sees as `address`: connected from the trusted proxy, forwarding for it."""
    transport = httpx.HTTPTransport(local_address=PROXY)
    return httpx.Client(base_url=base, transport=transport, headers={"X-Forwarded-For": address}, timeout=60)


def post_login(base: str, address: str, body: dict[str, Any]) -> httpx.Response:
    with from_address(base, address) as client:
        return client.post("/api/v1/auth/login", json=body)


def enrolled(door: Platform, username: str, role: str = "operator") -> str:
    """A user with a confirmed authenticator; returns its TOTP secret."""
    door.create_user(username, role)
    login(door.gateway, username, PASSWORD).close()
    return accounts._SECRETS[(door.gateway, username)]


def wrong_code(secret: str) -> str:
    """A code no step of the next minutes has (so it stays wrong while the test runs)."""
    totp = pyotp.TOTP(secret)
    now = int(time.time()) // totp.interval
    taken = {totp.generate_otp(now + d) for d in range(-2, 6)}
    return next(code for code in (f"{n:06d}" for n in range(1_000_000)) if code not in taken)


def audit(door: Platform, **params: Any) -> list[dict[str, Any]]:
    with door.client("auditor") as auditor:
        answer = auditor.get("/api/v1/audit", params={"limit": 1000} | params)
        assert answer.status_code == 200, answer.text
        return answer.json()


def test_thirty_wrong_totp_codes_after_the_right_password_lock_the_account(door: Platform) -> None:
    secret = enrolled(door, "tina")
    wrong = wrong_code(secret)
    # An attacker who has the password, guessing codes from ever new addresses.
    answers = [
        post_login(door.gateway, f"198.51.100.{i + 1}", {"username": "tina", "password": PASSWORD, "totp": wrong})
        for i in range(30)
    ]
    assert all(a.status_code == 401 for a in answers), [a.status_code for a in answers]
    details = Counter(a.json()["detail"] for a in answers)
    assert details == {"wrong TOTP code": 5, WRONG: 25}, details
    right = {"username": "tina", "password": PASSWORD, "totp": next_code(secret)}
    refused = post_login(door.gateway, "198.51.100.200", right)
    assert (refused.status_code, refused.json()["detail"]) == (401, WRONG)
    locks = wait_for(lambda: audit(door, action="auth.lock", target="user:tina"), 30, "the lock in the audit trail")
    assert len(locks) == 1 and locks[0]["details"]["last_failure"] == "wrong TOTP code"


def test_a_totp_code_is_used_once(door: Platform) -> None:
    secret = enrolled(door, "rita")
    body = {"username": "rita", "password": PASSWORD, "totp": next_code(secret)}
    assert post_login(door.gateway, "192.0.2.10", body).status_code == 200
    replayed = post_login(door.gateway, "192.0.2.10", body)
    assert replayed.status_code == 401 and "already been used" in replayed.json()["detail"]
    # Three logins at once with one new code: one session.
    body["totp"] = next_code(secret)
    answers = at_once(3, lambda i: post_login(door.gateway, f"192.0.2.{20 + i}", body))
    assert sorted(a.status_code for a in answers) == [200, 401, 401], [a.text for a in answers]


def test_thirty_parallel_wrong_passwords_are_five_evaluated_and_locked_looks_unknown(door: Platform) -> None:
    door.create_user("paula", "operator")
    answers = at_once(
        30, lambda i: post_login(door.gateway, f"198.18.0.{i + 1}", {"username": "paula", "password": f"guess-{i}-x"})
    )
    assert {(a.status_code, a.json()["detail"]) for a in answers} == {(401, WRONG)}
    locked = post_login(door.gateway, "198.18.1.1", {"username": "paula", "password": PASSWORD})
    unknown = post_login(door.gateway, "198.18.1.2", {"username": "pauline-x", "password": PASSWORD})
    assert (locked.status_code, locked.json()) == (unknown.status_code, unknown.json()) == (401, {"detail": WRONG})

    def evaluated() -> list[dict[str, Any]]:
        entries = audit(door, action="auth.login", target="user:paula")
        return [e for e in entries if e["details"].get("reason") == "wrong password"]

    wait_for(lambda: len(evaluated()) >= 5, 30, "the evaluated attempts in the audit trail")
    assert len(evaluated()) == 5


def test_per_address_limit_and_forwarded_for_only_from_the_proxy(door: Platform) -> None:
    def origin_of(name: str) -> str | None:
        for entry in audit(door, action="auth.login"):
            if entry["actor"] == name or name in entry["details"].get("samples", []):
                return entry["origin_ip"]
        return None

    # From a peer that is not the proxy, X-Forwarded-For is not believed: this client is
    # 127.0.0.1, whatever it says; from the proxy, it is.
    forged = httpx.post(
        f"{door.gateway}/api/v1/auth/login",
        json={"username": "forger", "password": "guessing-123"},
        headers={"X-Forwarded-For": "192.0.2.50"},
        timeout=30,
    )
    assert forged.status_code == 401
    assert (
        post_login(door.gateway, "192.0.2.51", {"username": "proxied", "password": "guessing-123"}).status_code == 401
    )
    assert wait_for(lambda: origin_of("forger"), 30, "the forger's refusal") == "127.0.0.1"
    assert wait_for(lambda: origin_of("proxied"), 30, "the proxied refusal") == "192.0.2.51"

    # An address that used its budget waits (429, Retry-After); others do not, nor does a client
    # that merely claims to be it.
    for n in range(ADDRESS_BUDGET):
        answer = post_login(door.gateway, "192.0.2.50", {"username": f"ghost-{n}", "password": "guessing-123"})
        assert answer.status_code == 401, answer.text
    blocked = post_login(door.gateway, "192.0.2.50", {"username": "ghost-x", "password": "guessing-123"})
    assert blocked.status_code == 429 and "too many failed logins" in blocked.json()["detail"]
    assert 0 < int(blocked.headers["Retry-After"]) <= 600
    assert (
        post_login(door.gateway, "192.0.2.52", {"username": "ghost-y", "password": "guessing-123"}).status_code == 401
    )
    claims = httpx.post(
        f"{door.gateway}/api/v1/auth/login",
        json={"username": "ghost-z", "password": "guessing-123"},
        headers={"X-Forwarded-For": "192.0.2.50"},
        timeout=30,
    )
    assert claims.status_code == 401


def test_weak_passwords_are_refused(door: Platform) -> None:
    with door.admin() as admin:
        for weak in ("123456789012", "password1234", "azertyuiop12"):
            body = {"username": "weakling", "display_name": "W", "role": "operator", "password": weak}
            refused = admin.post("/api/v1/users", json=body)
            assert refused.status_code == 422 and "too easy to guess" in refused.json()["detail"], (weak, refused.text)
        assert "weakling" not in {u["username"] for u in admin.get("/api/v1/users").json()}


def _session(base: str, username: str, password: str, secret: str) -> httpx.Client:
    """A session of its own (not the helper's cached one)."""
    body = {"username": username, "password": password, "totp": next_code(secret)}
    answer = httpx.post(f"{base}/api/v1/auth/login", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    return httpx.Client(base_url=base, timeout=30, headers={"Authorization": f"Bearer {answer.json()['access_token']}"})


def test_change_own_password_and_admin_reset(door: Platform) -> None:
    base = door.gateway
    secret = enrolled(door, "carla")
    second = login(base, "carla", PASSWORD)  # the session of the enrolment
    first = _session(base, "carla", PASSWORD, secret)
    change = "/api/v1/auth/password"
    wrong = first.post(change, json={"current_password": "not-my-password", "new_password": "Trois-Chats-Gris-77"})
    assert wrong.status_code == 401 and wrong.json()["detail"] == WRONG
    weak = first.post(change, json={"current_password": PASSWORD, "new_password": "azertyuiop12"})
    assert weak.status_code == 422 and "too easy to guess" in weak.json()["detail"]
    changed = first.post(change, json={"current_password": PASSWORD, "new_password": "Trois-Chats-Gris-77"})
    assert changed.status_code == 200 and changed.json()["other_sessions_revoked"] >= 1
    assert second.get("/api/v1/auth/me").status_code == 401
    assert first.get("/api/v1/auth/me").status_code == 200
    old = httpx.post(f"{base}/api/v1/auth/login", json={"username": "carla", "password": PASSWORD}, timeout=30)
    assert old.status_code == 401
    renewed = _session(base, "carla", "Trois-Chats-Gris-77", secret)

    # The password is forgotten: an admin resets it.
    with door.admin() as admin:
        reset = admin.post("/api/v1/users/carla/reset-password")
        assert reset.status_code == 200, reset.text
        one_time = reset.json()["one_time_password"]
        assert reset.json()["sessions_revoked"] >= 2
    assert first.get("/api/v1/auth/me").status_code == 401 and renewed.get("/api/v1/auth/me").status_code == 401
    with_otp = {"username": "carla", "password": one_time}
    step = httpx.post(f"{base}/api/v1/auth/login", json=with_otp, timeout=30).json()
    assert step["status"] == "password_change_required" and step["access_token"] is None
    weak_new = httpx.post(f"{base}/api/v1/auth/login", json=with_otp | {"new_password": "password1234"}, timeout=30)
    assert weak_new.status_code == 422
    chosen = with_otp | {"new_password": "Quatre-Merles-Noirs-58"}
    assert httpx.post(f"{base}/api/v1/auth/login", json=chosen, timeout=30).json()["status"] == "totp_required"
    done = httpx.post(f"{base}/api/v1/auth/login", json=chosen | {"totp": next_code(secret)}, timeout=30)
    assert done.status_code == 200 and done.json()["status"] == "ok"
    again = httpx.post(f"{base}/api/v1/auth/login", json=with_otp, timeout=30)
    assert again.status_code == 401  # single use

    actions = {(e["action"], e["outcome"]) for e in audit(door, target="user:carla")}
    assert {("auth.password_change", "ok"), ("auth.password_change", "refused"), ("users.reset_password", "ok")} <= (
        actions
    )
    assert not any(one_time in str(e) for e in audit(door, target="user:carla"))


def test_cookie_requests_from_another_origin_are_refused(door: Platform) -> None:
    base = door.gateway
    secret = enrolled(door, "cora")

    def cookie_session() -> str:
        return httpx.post(
            f"{base}/api/v1/auth/login",
            json={"username": "cora", "password": PASSWORD, "totp": next_code(secret)},
            timeout=30,
        ).json()["access_token"]

    token = accounts._TOKENS[(base, "cora", PASSWORD)]  # the session of the enrolment, as a cookie
    cookie = {"Cookie": f"csu_session={token}"}
    evil = httpx.post(f"{base}/api/v1/auth/logout", headers=cookie | {"Origin": "http://evil.example"}, timeout=30)
    assert evil.status_code == 403 and "cross-origin" in evil.json()["detail"]
    no_origin = httpx.post(f"{base}/api/v1/auth/logout", headers=cookie, timeout=30)
    assert no_origin.status_code == 403
    sibling = httpx.post(f"{base}/api/v1/auth/logout", headers=cookie | {"Referer": "http://127.0.0.1:1/x"}, timeout=30)
    assert sibling.status_code == 403  # another port is another origin
    assert httpx.get(f"{base}/api/v1/auth/me", headers=cookie, timeout=30).status_code == 200  # still logged in

    ws_url = base.replace("http://", "ws://") + "/api/v1/notifications"
    with pytest.raises(InvalidStatus) as refused:
        ws_connect(ws_url, additional_headers=cookie | {"Origin": "http://evil.example"}, open_timeout=10)
    assert refused.value.response.status_code == 403
    with ws_connect(ws_url, additional_headers=cookie | {"Origin": base}, open_timeout=10) as ws:
        ws.close()

    # A bearer token is never sent by a browser on its own: no Origin needed.
    other = cookie_session()
    bearer = httpx.post(f"{base}/api/v1/auth/logout", headers={"Authorization": f"Bearer {other}"}, timeout=30)
    assert bearer.status_code == 204
    same_origin = httpx.post(f"{base}/api/v1/auth/logout", headers=cookie | {"Origin": base}, timeout=30)
    assert same_origin.status_code == 204
    assert httpx.get(f"{base}/api/v1/auth/me", headers=cookie, timeout=30).status_code == 401


def test_made_up_tokens_leave_a_bounded_trail(door: Platform) -> None:
    address = "203.0.113.77"
    with from_address(door.gateway, address) as prober:
        for _ in range(200):
            answer = prober.get("/api/v1/cameras", headers={"Authorization": f"Bearer {uuid.uuid4().hex}"})
            assert answer.status_code == 401

    def entries() -> list[dict[str, Any]]:
        return [e for e in audit(door, action="auth.refused") if e["origin_ip"] == address]

    def counted() -> int:
        return sum(e["details"].get("count", 1) for e in entries())

    wait_for(lambda: counted() >= 200, 30, "the summaries of 200 refusals")
    assert counted() == 200
    # One entry at once and one summary per window (the 200 may straddle a window's end).
    assert 2 <= len(entries()) <= 4, entries()
    assert any(e["details"].get("summary") and e["details"]["count"] > 100 for e in entries())


def test_csuctl_resets_a_password_like_the_api(door: Platform) -> None:
    secret = enrolled(door, "olga")
    session = login(door.gateway, "olga", PASSWORD)
    result = CliRunner().invoke(cli_app, ["users", "reset-password", "olga", "--json"], env=door.env)
    assert result.exit_code == 0, result.output
    reset = json.loads(result.stdout[result.stdout.index("{") :])
    assert reset["username"] == "olga" and reset["sessions_revoked"] >= 1
    assert session.get("/api/v1/auth/me").status_code == 401
    one_time = {"username": "olga", "password": reset["one_time_password"]}
    step = httpx.post(f"{door.gateway}/api/v1/auth/login", json=one_time, timeout=30).json()
    assert step["status"] == "password_change_required"
    chosen = one_time | {"new_password": "Cinq-Renards-Roux-93", "totp": next_code(secret)}
    assert httpx.post(f"{door.gateway}/api/v1/auth/login", json=chosen, timeout=30).json()["status"] == "ok"
    unknown = CliRunner().invoke(cli_app, ["users", "reset-password", "nobody"], env=door.env)
    assert unknown.exit_code == 2 and "unknown account 'nobody'" in unknown.output
    entries = wait_for(lambda: audit(door, action="users.reset_password", target="user:olga"), 30, "the reset")
    assert entries[0]["actor"].startswith("csuctl:") and reset["one_time_password"] not in str(entries)


def test_the_console_changes_a_password_and_replaces_a_reset_one(door: Platform) -> None:
    base = door.gateway
    door.create_user("denise", "operator")
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        console_login(page, base, "denise")
        secret = accounts._SECRETS[(base, "denise")]
        # Her own password, from the session bar: the current one is checked, then replaced.
        page.click("#change-password")
        page.fill("#password-change-current_password", "not-my-password")
        page.fill("#password-change-new_password", "Six-Hiboux-Blancs-31")
        page.click("#password-change button[type=submit]")
        until(page, "document.querySelector('#password-change .error').textContent.includes('wrong')")
        page.fill("#password-change-current_password", PASSWORD)
        page.click("#password-change button[type=submit]")
        page.wait_for_selector("#password-change", state="detached")
        assert page.is_visible("#session-user")  # this session goes on
        assert post_login(base, "192.0.2.90", {"username": "denise", "password": PASSWORD}).status_code == 401

        # Forgotten: an admin resets it; the console asks for a new one at the next login, and
        # says how many attempts failed in between.
        with door.admin() as admin:
            one_time = admin.post("/api/v1/users/denise/reset-password").json()["one_time_password"]
        assert post_login(base, "192.0.2.91", {"username": "denise", "password": "guessing-denise"}).status_code == 401
        page.reload()
        page.fill("#login-username", "denise")
        page.fill("#login-password", one_time)
        page.click("#login-submit")
        page.wait_for_selector("#login-new-password", state="visible")
        page.fill("#login-new-password", "Sept-Loutres-Grises-64")
        page.click("#login-submit")
        page.wait_for_selector("#login-totp", state="visible")
        page.fill("#login-totp", next_code(secret))
        page.click("#login-submit")
        page.wait_for_selector("#session-user")
        # The old password tried after the change, and a guess: 2 failed attempts since her last login.
        until(page, "[...document.querySelectorAll('.toast')].some(e => e.textContent.startsWith('2 '))")
    assert post_login(base, "192.0.2.92", {"username": "denise", "password": one_time}).status_code == 401
