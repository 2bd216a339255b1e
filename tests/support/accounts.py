"""Logging in to a running gateway as real users do: password, then TOTP (enrolled at first login).

The gateway refuses a TOTP time step it has seen before for an account (a replayed code), so the
codes given here never repeat: `next_code` takes the current 30 s step, then the next one (the
gateway accepts one step of drift either way), then waits for time to catch up. And a test that
asks for the same user again and again (Platform.admin(), Platform.client()) gets the session it
already has while that session is alive, as a person keeps their browser tab open, instead of a
login every time (which would wait ~30 s for each new code).
"""

import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp

# TOTP secrets learnt during enrolment, per (gateway, username), so later logins can compute codes.
_SECRETS: dict[tuple[str, str], str] = {}
# The last time step a code was handed out for, per secret.
_LAST_STEP: dict[str, int] = {}
# Live sessions, per (gateway, username, password).
_TOKENS: dict[tuple[str, str, str], str] = {}


def next_code(secret: str) -> str:
    """A TOTP code for a time step not used before with this secret (waits up to 30 s for one)."""
    totp = pyotp.TOTP(secret)
    while True:
        now_step = int(time.time()) // totp.interval
        step = max(now_step, _LAST_STEP.get(secret, -1) + 1)
        if step <= now_step + 1:
            _LAST_STEP[secret] = step
            return totp.generate_otp(step)
        time.sleep((now_step + 1) * totp.interval - time.time() + 0.05)


def totp_code(base_url: str, username: str) -> str:
    return next_code(_SECRETS[(base_url, username)])


def login(base_url: str, username: str, password: str) -> httpx.Client:
    """An httpx client carrying a live session's bearer token (the one it has, or a new login)."""
    key = (base_url, username, password)
    token = _TOKENS.get(key)
    if token is not None and _alive(base_url, token):
        return _client(base_url, token)
    with httpx.Client(base_url=base_url, timeout=30) as anonymous:
        body = {"username": username, "password": password}
        answer = anonymous.post("/api/v1/auth/login", json=body)
        answer.raise_for_status()
        data = answer.json()
        if data["status"] == "totp_enrolment":
            secret = parse_qs(urlsplit(data["otpauth_uri"]).query)["secret"][0]
            _SECRETS[(base_url, username)] = secret
            data = anonymous.post("/api/v1/auth/login", json=body | {"totp": next_code(secret)}).json()
        elif data["status"] == "totp_required":
            data = anonymous.post("/api/v1/auth/login", json=body | {"totp": totp_code(base_url, username)}).json()
        if data.get("status") != "ok":
            raise AssertionError(f"login of {username} failed: {data}")
    _TOKENS[key] = data["access_token"]
    return _client(base_url, data["access_token"])


def _alive(base_url: str, token: str) -> bool:
    with _client(base_url, token) as client:
        return client.get("/api/v1/auth/me").status_code == 200


def _client(base_url: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, timeout=30, headers={"Authorization": f"Bearer {token}"})
