"""A real OpenID Connect provider for tests: panva's oidc-provider (provider.mjs beside this file)
run with the machine's Node.js, and a person's login through it driven with httpx.

`make test` installs its npm packages (`npm ci` here, from package-lock.json); see provider.mjs
for what a test account may carry (groups, and "tamper" rules for hostile ID tokens).
"""

import json
import re
import shutil
import subprocess
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urljoin

import httpx

from tests.support.platform import wait_for
from tests.support.servers import free_port

HERE = Path(__file__).resolve().parent


class OidcProvider:
    """One provider process on a free loopback port, with the test's clients and accounts."""

    def __init__(
        self,
        workdir: Path,
        clients: list[dict[str, Any]],
        accounts: dict[str, dict[str, Any]],
        groups_in_id_token: bool = True,
        logout: bool = True,
    ) -> None:
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.config = workdir / f"oidc-provider-{self.port}.json"
        self.config.write_text(
            json.dumps(
                {
                    "issuer": self.issuer,
                    "port": self.port,
                    "clients": clients,
                    "accounts": accounts,
                    "groups_in_id_token": groups_in_id_token,
                    "logout": logout,
                }
            )
        )
        self.log = workdir / f"oidc-provider-{self.port}.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> "OidcProvider":
        node = shutil.which("node")
        if node is None or not (HERE / "node_modules" / "oidc-provider").is_dir():
            raise RuntimeError(
                "the test OIDC provider needs Node.js and its npm packages: `make test` installs them "
                "(or run `npm ci` in tests/support/oidc)"
            )
        with self.log.open("wb") as log:
            self._process = subprocess.Popen(
                [node, str(HERE / "provider.mjs"), str(self.config)], stdout=log, stderr=subprocess.STDOUT, cwd=HERE
            )

        def discovery() -> bool:
            if self._process is not None and self._process.poll() is not None:
                raise AssertionError(f"the OIDC provider exited: {self.log.read_text()[-2000:]}")
            return httpx.get(f"{self.issuer}/.well-known/openid-configuration", timeout=2).status_code == 200

        wait_for(discovery, 30, "the test OIDC provider to answer")
        return self

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(10)

    def __enter__(self) -> "OidcProvider":
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


_FORM = re.compile(r'<form[^>]*action="([^"]+)"', re.I)


def browse_login(
    client: httpx.Client, gateway: str, login: str, password: str, stop_at: str | None = None
) -> httpx.Response:
    """Follow a person's way through an OIDC login: the gateway's redirect, the provider's login and
    consent forms, and back. Returns the gateway's answer at its callback (or, unfollowed, the
    redirect to a URL starting with `stop_at`, to let a test tamper with it)."""
    callback = f"{gateway}/api/v1/auth/oidc/callback"
    response = client.get(f"{gateway}/api/v1/auth/oidc/login", follow_redirects=False)
    for _ in range(20):
        url = str(response.url)
        if url.startswith(callback):
            return response
        if response.is_redirect:
            target = urljoin(url, response.headers["location"])
            if stop_at and target.startswith(stop_at):
                return response
            response = client.get(target, follow_redirects=False)
            continue
        form = _FORM.search(response.text)
        assert form is not None, f"no form on the provider's page {url}: {response.status_code} {response.text[:500]}"
        data = {"login": login, "password": password} if 'name="password"' in response.text else {}
        response = client.post(urljoin(url, form.group(1)), data=data, follow_redirects=False)
    raise AssertionError("the OIDC login did not come back to the gateway")
