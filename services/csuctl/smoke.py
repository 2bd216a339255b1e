"""csuctl smoke: the check `helm test` runs (the chart's test hook Pod) after an install or upgrade.

As a person would: an operator account is made for the check (`csuctl users create`, audited, a
prefecture validation naming the check, a habilitation ending within the hour), logs in through the
gateway's Service (password, then the TOTP enrolment every first login asks for), finds a camera
with a recorded segment, downloads it (a consultation: audited, with the check as justification) and
checks it is an MP4. The account's habilitation then ends a minute later (the soonest csuctl
accepts), and its password, generated here, was never shown. Exit 0 when all of it worked, 1
with the step that failed.
"""

import secrets
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated
from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp
import typer

from services.csuctl import users

STEP_TIMEOUT_S = 30.0
END_AFTER = timedelta(minutes=1)


def smoke(
    gateway: Annotated[str, typer.Option("--gateway", help="The gateway's URL, e.g. http://city-csu-gateway:8080.")],
    wait: Annotated[
        float, typer.Option("--wait", min=0, max=3600, help="Seconds to wait for a recorded segment.")
    ] = 180,
) -> None:
    """Log in through the gateway as a short-lived operator and download a recorded segment."""
    username = f"smoke-{secrets.token_hex(4)}"
    password = f"Smoke-{secrets.token_urlsafe(24)}"
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as folder:
        password_file = Path(folder) / "password"
        password_file.write_text(password)
        users.create(
            username, role="operator", display_name="helm test (csuctl smoke)", groups="*",
            expires=(now + timedelta(hours=1)).isoformat(), prefecture_ref="HELM-TEST",
            prefecture_date=now.isoformat(), password_file=password_file, as_json=True,
        )  # fmt: skip
    try:
        with httpx.Client(base_url=gateway, timeout=STEP_TIMEOUT_S) as client:
            token = _login(client, username, password)
            client.headers["Authorization"] = f"Bearer {token}"
            segment, camera = _a_segment(client, wait)
            content = client.get(f"/api/v1/segments/{segment}/content", params={"justification": "helm test"})
            _expect(content, f"download segment {segment} of {camera}")
            if content.content[4:8] != b"ftyp":
                _fail(f"segment {segment} of {camera} is not an MP4 ({len(content.content)} bytes)")
            typer.echo(f"ok: {username} logged in through {gateway} and downloaded segment {segment} of {camera} "
                       f"({len(content.content)} bytes)")  # fmt: skip
            client.post("/api/v1/auth/logout")
    finally:
        # The soonest end a habilitation may be given (an end already past is refused): a minute.
        users.habilitation(username, expires=(datetime.now(UTC) + END_AFTER).isoformat(), as_json=True)


def _login(client: httpx.Client, username: str, password: str) -> str:
    body = {"username": username, "password": password}
    answer = client.post("/api/v1/auth/login", json=body)
    _expect(answer, "login")
    data = answer.json()
    if data.get("status") == "totp_enrolment":
        secret = parse_qs(urlsplit(data["otpauth_uri"]).query)["secret"][0]
        answer = client.post("/api/v1/auth/login", json=body | {"totp": pyotp.TOTP(secret).now()})
        _expect(answer, "TOTP enrolment")
        data = answer.json()
    if data.get("status") != "ok":
        _fail(f"login did not finish: {data.get('status')}")
    return str(data["access_token"])


def _a_segment(client: httpx.Client, wait: float) -> tuple[str, str]:
    deadline = time.monotonic() + wait
    while True:
        cameras = client.get("/api/v1/cameras")
        _expect(cameras, "list cameras")
        for camera in cameras.json():
            listed = client.get(f"/api/v1/cameras/{camera['id']}/segments")
            if listed.status_code == 200 and listed.json():
                return str(listed.json()[0]["id"]), str(camera["id"])
        if time.monotonic() > deadline:
            _fail(f"no camera has a recorded segment after {wait:.0f} s ({len(cameras.json())} cameras)")
        time.sleep(5)


def _expect(response: httpx.Response, step: str) -> None:
    if response.status_code >= 300:
        _fail(f"{step}: HTTP {response.status_code} {response.text[:300]}")


def _fail(message: str) -> None:
    typer.echo(f"smoke test failed: {message}", err=True)
    raise typer.Exit(1)
