"""Single sign-on through a real OpenID Connect provider (panva's oidc-provider on Node.js,
tests/support/oidc): the whole authorization code flow with PKCE, the mapping of the provider's
groups to roles, the session it opens, its audit trail, and the answers a hostile or mistaken
provider, browser or user gets."""

import json
import secrets
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import create_engine, text

from services.common.settings import Settings
from services.gateway.identity.oidc import OidcClient
from tests.support.browser import ARTIFACTS, chromium, until
from tests.support.oidc import OidcProvider, browse_login
from tests.support.platform import Platform, wait_for

pytestmark = pytest.mark.e2e
CLIENT_ID = "csu-gateway"
CLIENT_SECRET = "a-client-secret: for tests/only"  # characters that basic auth must form-encode
PASSWORD = "idp-Passw0rd-for-tests"
ROLE_MAP = {
    "csu-superviseurs": {"role": "supervisor", "camera_groups": ["*"]},
    "csu-operateurs": {"role": "operator", "camera_groups": ["default"]},
    "csu-operateurs-nord": {"role": "operator", "camera_groups": ["north"]},
}


def account(sub: str, name: str, groups: list[str], **extra: object) -> dict[str, object]:
    return {"sub": sub, "password": PASSWORD, "name": name, "email": f"{sub}@ville.test", "groups": groups} | extra


ACCOUNTS = {
    "alice": account("0b6e1c3a-alice", "Alice Martin", ["agents", "csu-operateurs", "csu-operateurs-nord"]),
    "bob": account("4f2d9e77-bob", "Bob Leroy", ["agents", "comptabilite"]),
    # Same name as a local account: the provider's user must not take it over.
    "carol": account("9a8b7c6d-carol", "Carol Petit", ["csu-superviseurs"]),
    # ID tokens a mix-up, a misconfigured or a malicious provider would hand over (still signed with
    # the provider's own key unless "other_key").
    "eve-iss": account("e1", "Eve", ["csu-operateurs"], tamper={"iss": "http://127.0.0.1:1/another-issuer"}),
    "eve-aud": account("e2", "Eve", ["csu-operateurs"], tamper={"aud": "another-application"}),
    "eve-key": account("e3", "Eve", ["csu-operateurs"], tamper={"other_key": True}),
    "eve-nonce": account("e4", "Eve", ["csu-operateurs"], tamper={"nonce": "a-nonce-from-another-login"}),
    "eve-exp": account("e5", "Eve", ["csu-operateurs"], tamper={"exp_offset_s": -600}),
}


def provider_for(tmp_path: Path, platform: Platform, groups_in_id_token: bool, logout: bool = True) -> OidcProvider:
    redirect_uris = [
        f"{base}:{platform.gateway_port}/api/v1/auth/oidc/callback" for base in ("http://127.0.0.1", "http://localhost")
    ]
    logout_uris = [f"{base}:{platform.gateway_port}/" for base in ("http://127.0.0.1", "http://localhost")]
    clients = [
        {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uris": redirect_uris,
            "post_logout_redirect_uris": logout_uris,
        }
    ]
    return OidcProvider(tmp_path, clients, ACCOUNTS, groups_in_id_token=groups_in_id_token, logout=logout)


def configure(platform: Platform, provider: OidcProvider, base: str, **more: str) -> None:
    platform.env |= {
        "CSU_OIDC_ISSUER": provider.issuer,
        "CSU_OIDC_DISPLAY_NAME": "Keycloak de test",
        "CSU_OIDC_CLIENT_ID": CLIENT_ID,
        "CSU_OIDC_CLIENT_SECRET": CLIENT_SECRET,
        "CSU_OIDC_REDIRECT_BASE_URL": base,
        "CSU_OIDC_SCOPES": "openid profile email groups",
        "CSU_OIDC_ROLE_MAP": json.dumps(ROLE_MAP),
    } | more


def audit_entries(platform: Platform, actor: str, count: int) -> list[dict]:
    """The actor's auth.login entries, oldest first, once there are at least `count` (the trail is
    written from JetStream, a moment after the answer)."""
    auditor = platform.client("auditor")

    def entries() -> list[dict]:
        found = auditor.get("/api/v1/audit", params={"actor": actor, "action": "auth.login"}).json()
        return found if len(found) >= count else []

    return sorted(wait_for(entries, 30, f"{count} auth.login audit entries of {actor}"), key=lambda e: e["seq"])


def test_oidc_login_maps_groups_opens_a_session_and_refuses_what_it_must(platform: Platform, tmp_path: Path) -> None:
    provider = provider_for(tmp_path, platform, groups_in_id_token=True)
    with provider:
        configure(platform, provider, platform.gateway)
        platform.start(["ingest", "gateway"])
        gateway = platform.gateway
        platform.create_user("carol", "auditor")  # a local account named like an IdP user

        methods = httpx.get(f"{gateway}/api/v1/auth/methods").json()
        assert methods == {
            "password": True,
            "oidc": {"name": "Keycloak de test", "login_url": "/api/v1/auth/oidc/login"},
        }

        # -- alice: groups mapped to operator; a session exactly like a password login's ------------
        browser = httpx.Client(timeout=30)
        started = browser.get(f"{gateway}/api/v1/auth/oidc/login", follow_redirects=False)
        assert started.status_code == 303
        asked = dict(parse_qsl(urlsplit(started.headers["location"]).query))
        assert started.headers["location"].startswith(f"{provider.issuer}/auth?")
        assert asked["code_challenge_method"] == "S256" and len(asked["code_challenge"]) == 43
        assert asked["client_id"] == CLIENT_ID and asked["scope"] == "openid profile email groups"
        assert asked["state"] and asked["nonce"] and asked["state"] != asked["nonce"]
        assert asked["redirect_uri"] == f"{gateway}/api/v1/auth/oidc/callback"
        tx_cookie = started.headers["set-cookie"]
        assert "csu_oidc_login=" in tx_cookie and "HttpOnly" in tx_cookie and "Path=/api/v1/auth/oidc" in tx_cookie
        assert asked["state"] not in tx_cookie and asked["nonce"] not in tx_cookie  # sealed, not readable

        done = browse_login(browser, gateway, "alice", PASSWORD)
        assert done.status_code == 303 and done.headers["location"] == "/", done.text
        session_cookie = next(c for c in done.headers.get_list("set-cookie") if c.startswith("csu_session="))
        assert "HttpOnly" in session_cookie and "SameSite=strict" in session_cookie and "Path=/" in session_cookie
        assert browser.get(f"{gateway}/").status_code == 200  # the console, on the session cookie
        me = browser.get(f"{gateway}/api/v1/console/me").json()
        assert me["username"] == "alice" and me["display_name"] == "Alice Martin" and me["role"] == "operator"
        assert me["habilitation"]["camera_groups"] == ["default", "north"]  # both operator groups add up
        assert "live" in me["actions"]
        # No prefecture validation yet: no video, as for a local account.
        assert "not been validated" in me["habilitation"]["problem"]
        refused = browser.get(f"{gateway}/api/v1/cameras/demo-1/live")
        assert refused.status_code == 403 and "not been validated" in refused.json()["detail"]

        admin = platform.admin()
        alice = next(u for u in admin.get("/api/v1/users").json() if u["username"] == "alice")
        assert alice["role"] == "operator" and alice["granted_by"] == "oidc:csu-operateurs"
        assert alice["prefecture_validated"] is None and not alice["totp_enrolled"]
        validated = admin.patch(
            "/api/v1/users/alice",
            json={
                "prefecture_ref": "PREF-OIDC-1",
                "prefecture_validated": "2026-01-01T00:00:00Z",
                "expires": "2099-01-01T00:00:00Z",
            },
        )
        assert validated.status_code == 200, validated.text
        assert browser.get(f"{gateway}/api/v1/cameras/demo-1/live").status_code == 200
        assert browser.get(f"{gateway}/api/v1/console/me").json()["habilitation"]["problem"] is None

        # The account has no password here: the password login refuses it like an unknown name.
        wrong = httpx.post(f"{gateway}/api/v1/auth/login", json={"username": "alice", "password": PASSWORD})
        assert wrong.status_code == 401 and wrong.json()["detail"] == "wrong username or password"

        # A later login finds the same account (linked by sub) and keeps its habilitation.
        again = httpx.Client(timeout=30)
        assert browse_login(again, gateway, "alice", PASSWORD).status_code == 303
        users = admin.get("/api/v1/users").json()
        assert [u["username"] for u in users].count("alice") == 1
        assert again.get(f"{gateway}/api/v1/console/me").json()["habilitation"]["problem"] is None
        # Logout ends the session here, then points the browser at the provider's logout with the
        # session's ID token as hint (the console follows it: test_console_button_logs_in_...).
        # (As the console's page does: a browser names the page's origin on a POST.)
        out = again.post(f"{gateway}/api/v1/auth/logout", headers={"Origin": gateway})
        assert out.status_code == 200 and out.json()["notice"] is None, out.text
        end = out.json()["end_session_url"]
        assert end.startswith(f"{provider.issuer}/session/end?")
        hint = dict(parse_qsl(urlsplit(end).query))
        assert hint["post_logout_redirect_uri"] == f"{gateway}/" and hint["client_id"] == CLIENT_ID
        assert hint["id_token_hint"].count(".") == 2  # a JWT: the provider's own ID token
        assert again.get(f"{gateway}/api/v1/console/me").status_code == 401
        # The hint was needed once: the revoked session keeps no ID token (it holds personal data).
        engine = create_engine(Settings(database_url=platform.env["CSU_DATABASE_URL"]).sqlalchemy_url)  # type: ignore[call-arg]
        with engine.connect() as conn:
            kept = conn.execute(
                text(
                    "SELECT count(*) FROM gateway_sessions"
                    " WHERE revoked_us IS NOT NULL AND oidc_id_token_sealed IS NOT NULL"
                )
            ).scalar()
        engine.dispose()
        assert kept == 0
        confirm = again.get(end)  # the provider accepts the hint and the redirect: it asks to confirm
        assert confirm.status_code == 200 and 'id="idp-logout"' in confirm.text, confirm.text

        # -- carol: the name is taken by a local account, which she does not take over --------------
        carol = httpx.Client(timeout=30)
        assert browse_login(carol, gateway, "carol", PASSWORD).status_code == 303
        carol_me = carol.get(f"{gateway}/api/v1/console/me").json()
        assert carol_me["username"] == "carol-oidc" and carol_me["role"] == "supervisor"
        local_carol = next(u for u in admin.get("/api/v1/users").json() if u["username"] == "carol")
        assert local_carol["role"] == "auditor"

        # -- bob: in no mapped group -----------------------------------------------------------------
        bob = httpx.Client(timeout=30)
        refused = browse_login(bob, gateway, "bob", PASSWORD)
        assert refused.status_code == 403
        assert "none of your groups" in refused.json()["detail"] and "comptabilite" in refused.json()["detail"]
        assert "csu_session" not in refused.headers.get("set-cookie", "")
        assert bob.get(f"{gateway}/api/v1/console/me").status_code == 401
        assert "bob" not in [u["username"] for u in admin.get("/api/v1/users").json()]
        html = httpx.Client(timeout=30, headers={"Accept": "text/html"})
        page = browse_login(html, gateway, "bob", PASSWORD)
        assert page.status_code == 403 and "none of your groups" in page.text and "<script" not in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]

        # -- a tampered state, and a callback this browser never asked for ------------------------
        mallory = httpx.Client(timeout=30)
        callback = f"{gateway}/api/v1/auth/oidc/callback"
        back = browse_login(mallory, gateway, "alice", PASSWORD, stop_at=callback)
        answer = urljoin(str(back.url), back.headers["location"])
        query = dict(parse_qsl(urlsplit(answer).query))
        assert query["iss"] == provider.issuer  # RFC 9207
        forged = mallory.get(f"{callback}?{urlencode(query | {'state': secrets.token_urlsafe(32)})}")
        assert forged.status_code == 400 and "(state)" in forged.json()["detail"]
        assert mallory.get(f"{gateway}/api/v1/console/me").status_code == 401
        elsewhere = httpx.get(answer)  # the right answer, in another browser (no login cookie)
        assert elsewhere.status_code == 400 and "no login in progress" in elsewhere.json()["detail"]
        mixer = httpx.Client(timeout=30)
        back = browse_login(mixer, gateway, "alice", PASSWORD, stop_at=callback)
        query = dict(parse_qsl(urlsplit(back.headers["location"]).query))
        mixed_up = mixer.get(f"{callback}?{urlencode(query | {'iss': 'http://127.0.0.1:1/another-issuer'})}")
        assert mixed_up.status_code == 400 and "another identity provider" in mixed_up.json()["detail"]

        # -- ID tokens from another issuer or audience, signed by another key, replayed, expired ----
        for name, fragment in [
            ("eve-iss", "issued by 'http://127.0.0.1:1/another-issuer'"),
            ("eve-aud", "meant for 'another-application'"),
            ("eve-key", "signature does not verify"),
            ("eve-nonce", "(nonce)"),
            ("eve-exp", "expired"),
        ]:
            eve = httpx.Client(timeout=30)
            refused = browse_login(eve, gateway, name, PASSWORD)
            assert refused.status_code == 401, (name, refused.text)
            assert fragment in refused.json()["detail"], (name, refused.json())
            assert eve.get(f"{gateway}/api/v1/console/me").status_code == 401
        assert not [u for u in admin.get("/api/v1/users").json() if u["username"].startswith("eve")]

        # -- the audit trail: every login, accepted or refused, with how the provider authenticated --
        logins = [e for e in audit_entries(platform, "alice", 3) if e["details"].get("method") == "oidc"]
        assert [e["outcome"] for e in logins] == ["ok", "ok"]  # (and the refused password login above)
        first = logins[0]["details"]
        assert first["method"] == "oidc" and first["issuer"] == provider.issuer
        assert first["subject"] == "0b6e1c3a-alice" and first["account_created"] is True
        assert first["amr"] == ["pwd", "otp"] and first["acr"] == "urn:csu:test:mfa"
        assert first["granted_by_groups"] == ["csu-operateurs", "csu-operateurs-nord"]
        assert logins[0]["role"] == "operator" and logins[0]["target"] == "user:alice"
        assert logins[1]["details"]["account_created"] is False
        bob_entries = audit_entries(platform, "bob", 2)
        assert {e["outcome"] for e in bob_entries} == {"refused"}
        assert "none of your groups" in bob_entries[0]["details"]["reason"]
        assert bob_entries[0]["details"]["amr"] == ["pwd", "otp"]
        # Refused before any token was trusted: no name to give but the method's.
        unknown = audit_entries(platform, "(oidc)", 8)
        assert all(e["outcome"] == "refused" and e["details"]["method"] == "oidc" for e in unknown)
        reasons = " | ".join(e["details"]["reason"] for e in unknown)
        for fragment in ("(state)", "no login in progress", "another identity provider", "another-application"):
            assert fragment in reasons, (fragment, reasons)
        for fragment in ("another-issuer", "signature does not verify", "(nonce)", "expired"):
            assert fragment in reasons, (fragment, reasons)


def test_console_button_logs_in_through_the_provider(platform: Platform, tmp_path: Path) -> None:
    """In Chromium, as a person: the console's button, the provider's pages, back to the console.
    Groups only in the provider's userinfo answer (its default); logins refused until the
    prefecture's validation is recorded (CSU_OIDC_REQUIRE_VALIDATED_HABILITATION)."""
    provider = provider_for(tmp_path, platform, groups_in_id_token=False)
    with provider:
        # localhost for the console, 127.0.0.1 for the provider: two sites, so cookies cross sites
        # as they do between a city's IdP and its CSU.
        base = f"http://localhost:{platform.gateway_port}"
        configure(platform, provider, base, CSU_OIDC_REQUIRE_VALIDATED_HABILITATION="true")
        platform.start(["ingest", "gateway"])
        ARTIFACTS.mkdir(exist_ok=True)
        with chromium() as browser:
            context = browser.new_context()
            page = context.new_page()
            console = page.goto(f"{base}/")
            assert console is not None and "script-src 'self'" in console.headers["content-security-policy"]
            button = page.wait_for_selector("#login-oidc", timeout=20_000)
            assert button.inner_text() == "Se connecter avec Keycloak de test"
            assert page.is_visible("#login-username")  # local accounts keep their form
            page.screenshot(path=ARTIFACTS / "oidc-login-button.png")

            button.click()
            page.wait_for_selector("#idp-login", timeout=20_000)
            assert page.url.startswith(provider.issuer)
            page.fill("#idp-login", "alice")
            page.fill("#idp-password", PASSWORD)
            page.click("#idp-submit")
            page.wait_for_selector("#idp-consent", timeout=20_000)
            page.click("#idp-consent")
            # Back at the gateway, refused: the account exists now, but nothing validated it.
            page.wait_for_selector("#oidc-error", timeout=20_000)
            assert page.url.startswith(f"{base}/api/v1/auth/oidc/callback")
            assert "not been validated by the prefecture" in page.inner_text("#oidc-error")
            page.screenshot(path=ARTIFACTS / "oidc-login-refused.png")
            assert not [c for c in context.cookies() if c["name"] == "csu_session"]

            admin = platform.admin()
            alice = next(u for u in admin.get("/api/v1/users").json() if u["username"] == "alice")
            assert alice["role"] == "operator"  # the groups came from userinfo
            validated = admin.patch(
                "/api/v1/users/alice",
                json={"prefecture_ref": "PREF-OIDC-2", "prefecture_validated": "2026-01-01T00:00:00Z"},
            )
            assert validated.status_code == 200, validated.text

            page.click("text=Retour à la console / Back to the console")
            page.wait_for_selector("#login-oidc", timeout=20_000).click()
            # The provider remembers alice and her consent: straight back, and into the console.
            page.wait_for_selector("#session-user", timeout=30_000)
            assert page.url.split("#")[0] == f"{base}/"
            me = until(page, "fetch('/api/v1/console/me').then((r) => r.ok && r.json())", 20, "the console session")
            assert isinstance(me, dict) and me["username"] == "alice" and me["role"] == "operator"
            assert me["habilitation"]["problem"] is None
            session = next(c for c in context.cookies() if c["name"] == "csu_session")
            assert session["httpOnly"] and session["sameSite"] == "Strict"
            page.screenshot(path=ARTIFACTS / "oidc-login-console.png")

            # Logging out ends the provider's session too: at a shared console, the next person's
            # click on the button must meet the provider's password form, not alice's session.
            page.click("#logout")
            page.wait_for_selector("#idp-logout", timeout=20_000)
            assert page.url.startswith(provider.issuer)
            page.click("#idp-logout")
            page.wait_for_selector("#login-oidc", timeout=20_000)
            assert page.url.split("#")[0] == f"{base}/"
            assert not page.is_visible("#logout-notice")
            old = httpx.get(f"{base}/api/v1/console/me", cookies={"csu_session": session["value"]})
            assert old.status_code == 401  # the console session was revoked before leaving for the provider
            page.click("#login-oidc")
            page.wait_for_selector("#idp-login", timeout=20_000)
            assert page.url.startswith(provider.issuer)
            page.screenshot(path=ARTIFACTS / "oidc-logout-provider-asks-again.png")

        logins = audit_entries(platform, "alice", 2)
        assert [e["outcome"] for e in logins] == ["refused", "ok"]
        auditor = platform.client("auditor")
        wait_for(
            lambda: auditor.get("/api/v1/audit", params={"actor": "alice", "action": "auth.logout"}).json(),
            30,
            "alice's logout in the audit trail",
        )
        assert "not been validated" in logins[0]["details"]["reason"]
        assert logins[1]["details"]["groups"] == ACCOUNTS["alice"]["groups"]  # from userinfo
        assert logins[1]["details"]["amr"] == ["pwd", "otp"]


def test_a_provider_without_logout_leaves_a_notice(platform: Platform, tmp_path: Path) -> None:
    """The console session ends all the same; the person is told the provider's may still be open."""
    with provider_for(tmp_path, platform, groups_in_id_token=True, logout=False) as provider:
        configure(platform, provider, platform.gateway)
        platform.start(["ingest", "gateway"])
        browser = httpx.Client(timeout=30)
        assert browse_login(browser, platform.gateway, "alice", PASSWORD).status_code == 303
        out = browser.post(f"{platform.gateway}/api/v1/auth/logout", headers={"Origin": platform.gateway})
        assert out.status_code == 200, out.text
        assert out.json()["end_session_url"] is None
        assert "offers no logout" in out.json()["notice"] and "may still be open" in out.json()["notice"]
        assert browser.get(f"{platform.gateway}/api/v1/console/me").status_code == 401


def test_oidc_is_off_unless_configured(platform: Platform) -> None:
    platform.start(["ingest", "gateway"])
    assert httpx.get(f"{platform.gateway}/api/v1/auth/methods").json() == {"password": True, "oidc": None}
    off = httpx.get(f"{platform.gateway}/api/v1/auth/oidc/login", follow_redirects=False)
    assert off.status_code == 404 and "CSU_OIDC_ISSUER" in off.json()["detail"]
    assert httpx.get(f"{platform.gateway}/api/v1/auth/oidc/callback?code=x&state=y").status_code == 404


def test_a_misconfigured_provider_stops_the_gateway_at_start() -> None:
    complete = {
        "oidc_issuer": "https://sso.ville.test/realms/agents",
        "oidc_client_id": CLIENT_ID,
        "oidc_client_secret": CLIENT_SECRET,
        "oidc_redirect_base_url": "https://csu.ville.test",
        "oidc_role_map": ROLE_MAP,
    }
    OidcClient(Settings(**complete))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="CSU_OIDC_CLIENT_SECRET, CSU_OIDC_ROLE_MAP must be set too"):
        OidcClient(Settings(**complete | {"oidc_client_secret": "", "oidc_role_map": {}}))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"unknown roles \['chef'\]"):
        OidcClient(Settings(**complete | {"oidc_role_map": {"g": {"role": "chef"}}}))  # type: ignore[arg-type]
    for field, value, message in [
        ("oidc_issuer", "http://sso.ville.test", "https://"),
        ("oidc_scopes", "profile groups", "must include openid"),
        ("oidc_role_map", {"g": {"role": "operator", "camera_groups": ["Nord Est"]}}, "invalid camera group"),
    ]:
        with pytest.raises(ValidationError, match=message) as refused:
            Settings(**complete | {field: value})  # type: ignore[arg-type]
        assert CLIENT_SECRET not in str(refused.value)  # a start-up error never shows the secret
