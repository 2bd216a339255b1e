"""The platform's services as separate processes, wired to the test's own servers."""

import asyncio
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from services.common.secretbox import SecretBox
from services.common.signing import Signer
from services.launcher import ServiceProcess
from tests.support.accounts import login
from tests.support.servers import S3Server, free_port, nats_prefix, unique


class Platform:
    """Environment and processes for one test: own NATS prefix, database, bucket and data folder."""

    ADMIN_PASSWORD = "Fi5st-boot-Passw0rd"
    USER_PASSWORD = "a-long-Passw0rd-for-tests"

    def __init__(self, workdir: Path, nats_url: str, database_url: str, s3: S3Server | None) -> None:
        self.workdir = workdir
        self.nats_prefix = nats_prefix()
        self.bucket = unique("rec-")
        self.gateway_port = free_port()
        ports = {name: free_port() for name in ("ingest", "masking", "archive", "requisition")}
        inherited = {
            k: v for k, v in os.environ.items() if not k.startswith("CSU_") and k not in ("DATABASE_URL", "NATS_URL")
        }
        self.env: dict[str, str] = inherited | {
            "CSU_DATA_DIR": str(workdir / "data"),
            "CSU_NATS_URL": nats_url,
            "CSU_NATS_PREFIX": self.nats_prefix,
            "CSU_DATABASE_URL": database_url,
            "CSU_BUCKET_RECORDINGS": self.bucket,
            # The chains' published heads: the test's own, or one test's would contradict another's.
            "CSU_BUCKET_ANCHORS": unique("anchors-"),
            "CSU_GATEWAY_PORT": str(self.gateway_port),
            "CSU_INGEST_GRPC": f"127.0.0.1:{free_port()}",
            "CSU_ARCHIVE_GRPC": f"127.0.0.1:{free_port()}",
            "CSU_MASKING_GRPC": f"127.0.0.1:{free_port()}",
            "CSU_REQUISITION_GRPC": f"127.0.0.1:{free_port()}",
            "CSU_LOG_LEVEL": "info",
            # The masked-frame buffer reserves its byte limit in JetStream: a test's few minutes of
            # two small cameras fit in far less than production's, and the embedded server holds 1 GB.
            "CSU_MASKED_BUFFER_MAX_BYTES": str(128 * 1024**2),
            "CSU_BOOTSTRAP_ADMIN_PASSWORD": self.ADMIN_PASSWORD,
            "CSU_SIGNING_KEY_FILE": str(self._key(workdir / "keys" / "signing.pem", Signer.generate)),
            "CSU_SECRETS_KEY_FILE": str(self._key(workdir / "keys" / "secrets.key", SecretBox.generate)),
        }
        for name, port in ports.items():
            self.env[f"CSU_{name.upper()}_HTTP_PORT"] = str(port)
        if s3 is not None:
            self.env |= {
                "CSU_STORE_BACKEND": "s3",
                "CSU_S3_ENDPOINT": s3.endpoint,
                "CSU_S3_ACCESS_KEY": s3.access_key,
                "CSU_S3_SECRET_KEY": s3.secret_key,
            }
        # Variables of one service only (its NATS user, as the Helm chart gives each its own).
        self.service_env: dict[str, dict[str, str]] = {}
        self.processes: dict[str, ServiceProcess] = {}
        self._users: set[str] = set()

    @staticmethod
    def _key(path: Path, make: Callable[[Path], None]) -> Path:
        if not path.exists():
            make(path)
        return path

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def admin(self) -> httpx.Client:
        return login(self.gateway, "admin", self.ADMIN_PASSWORD)

    def create_user(self, username: str, role: str, groups: Sequence[str] = ("*",), **habilitation: Any) -> None:
        """A nominative account with a validated habilitation (unless told otherwise)."""
        body = {
            "username": username,
            "display_name": username.title(),
            "role": role,
            "password": self.USER_PASSWORD,
            "camera_groups": list(groups),
            "prefecture_ref": "PREF-TEST-1",
            "prefecture_validated": "2026-01-01T00:00:00Z",
        } | habilitation
        with self.admin() as admin:
            response = admin.post("/api/v1/users", json=body)
            assert response.status_code == 201, response.text

    def client(self, role: str, groups: Sequence[str] = ("*",)) -> httpx.Client:
        """A logged-in client for a user of that role (created at first use)."""
        username = f"{role.replace('_', '-')}-{'-'.join(g.replace('*', 'all') for g in groups)}"
        if username not in self._users:
            self.create_user(username, role, groups)
            self._users.add(username)
        return login(self.gateway, username, self.USER_PASSWORD)

    def set_cameras(self, cameras: list[dict[str, Any]]) -> None:
        path = self.workdir / "cameras.json"
        path.write_text(json.dumps(cameras))
        self.env["CSU_CAMERAS_FILE"] = str(path)

    def start(self, names: Sequence[str], timeout: float = 60) -> None:
        from services.launcher import health_url, wait_all_ready

        for name in names:
            env = self.env | self.service_env.get(name, {})
            process = ServiceProcess(name, env, self.workdir / "logs" / f"{name}.log", health_url(name, self.env))
            process.start()
            self.processes[name] = process
        wait_all_ready([self.processes[name] for name in names], timeout)

    def restart(self, name: str, timeout: float = 60) -> None:
        process = self.processes[name]
        process.stop()
        process.start()
        process.wait_ready(timeout)

    def stop(self) -> list[str]:
        """Stop every service, last started first; the names of those that had to be killed."""
        return [name for name, process in reversed(self.processes.items()) if not process.stop()]

    def logs(self) -> str:
        return "\n".join(f"===== {n} =====\n{p.log_tail(60)}" for n, p in self.processes.items())

    def metric(self, service: str, name: str, labels: dict[str, str] | None = None) -> float:
        """A value from a service's /metrics (0 when the series does not exist yet)."""
        url = self.processes[service].health_url.replace("/healthz", "/metrics")
        wanted = name + ("{" + ",".join(f'{k}="{v}"' for k, v in (labels or {}).items()) + "}" if labels else "")
        for line in httpx.get(url, timeout=5).text.splitlines():
            if line.startswith(wanted + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0


async def until(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """`wait_for` inside an event loop: condition() may be a coroutine function; the loop keeps running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
    """Poll until condition() returns something truthy; fail with `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = condition()
            if result:
                return result
        except Exception as exc:
            last_error = exc
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout:.0f} s waiting for {what}" + (f" (last error: {last_error!r})" if last_error else "")
    )
