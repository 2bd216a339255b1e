"""Logging in to a running gateway as real users do: password, then TOTP (enrolled at first login)."""

from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp

# TOTP secrets learnt during enrolment, per (gateway, username), so later logins can compute codes.
_SECRETS: dict[tuple[str, str], str] = {}


def totp_code(base_url: str, username: str) -> str:
    return pyotp.TOTP(_SECRETS[(base_url, username)]).now()


def login(base_url: str, username: str, password: str) -> httpx.Client:
    """An httpx client carrying the session's bearer token."""
    with httpx.Client(base_url=base_url, timeout=30) as anonymous:
        body = {"username": username, "password": password}
        answer = anonymous.post("/api/v1/auth/login", json=body)
        answer.raise_for_status()
        data = answer.json()
        if data["status"] == "totp_enrolment":
            secret = parse_qs(urlsplit(data["otpauth_uri"]).query)["secret"][0]
            _SECRETS[(base_url, username)] = secret
            data = anonymous.post("/api/v1/auth/login", json=body | {"totp": pyotp.TOTP(secret).now()}).json()
        elif data["status"] == "totp_required":
            data = anonymous.post("/api/v1/auth/login", json=body | {"totp": totp_code(base_url, username)}).json()
        if data.get("status") != "ok":
            raise AssertionError(f"login of {username} failed: {data}")
    return httpx.Client(base_url=base_url, timeout=30, headers={"Authorization": f"Bearer {data['access_token']}"})
