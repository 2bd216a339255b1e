"""`make run`'s launcher: comes up with embedded defaults, stops on Ctrl-C, resumes on its data; a second
launcher on the same data says so; a SIGKILLed launcher leaves no process behind. A newcomer logs in
as the DEMONSTRATION operator it prints and sees masked live video on a wall already filled, and a
recording; the gateway refuses that account anywhere but the embedded default."""

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from services.common.cameras import DEMO_WINDOW_MASK
from tests.e2e.test_console_login import console_login, frame_stats, screenshot
from tests.e2e.test_console_wall import TILES, playing
from tests.support.accounts import login
from tests.support.browser import chromium, until
from tests.support.platform import Platform, wait_for
from tests.support.servers import free_port

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def start(data: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSU_")}
    # NATS_URL/DATABASE_URL of the test run must not leak in: the launcher uses embedded defaults.
    env |= {"CSU_DATA_DIR": str(data), "CSU_GATEWAY_PORT": str(port), "CSU_SEGMENT_DURATION_S": "3"}
    # Internal ports of its own, so a `make run` on the same machine does not collide with it.
    env |= {f"CSU_{name}_HTTP_PORT": str(free_port()) for name in ("INGEST", "MASKING", "ARCHIVE", "REQUISITION")}
    env |= {"CSU_INGEST_GRPC": f"127.0.0.1:{free_port()}", "CSU_ARCHIVE_GRPC": f"127.0.0.1:{free_port()}"}
    return subprocess.Popen(
        [sys.executable, "-m", "services.launcher"],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def ctrl_c(process: subprocess.Popen[bytes]) -> int:
    os.killpg(process.pid, signal.SIGINT)  # what a terminal does: the whole foreground group
    return process.wait(60)


def test_launcher_runs_stops_and_resumes(tmp_path: Path) -> None:
    data, port, log = tmp_path / "data", free_port(), tmp_path / "launcher.log"
    base = f"http://127.0.0.1:{port}"
    first = start(data, port, log)
    try:
        wait_for(lambda: "CSU console:" in log.read_text(), 120, "the console URL to be printed")
        assert re.search(rf"http://127\.0\.0\.1:{port}/", log.read_text())
        password = re.search(r"Log in:\s+admin / (\S+)", log.read_text()).group(1)
        assert "otpauth://" in log.read_text() or "Second factor" in log.read_text()
        api = _operator(base, password)
        segments = wait_for(lambda: _segments(api), 60, "a first segment")
        _newcomer_sees_video(base, log.read_text(), password)
        # A second `make run` on the same data: a clear refusal, not a traceback.
        duplicate = start(data, free_port(), tmp_path / "duplicate.log")
        assert duplicate.wait(60) == 2
        refusal = (tmp_path / "duplicate.log").read_text()
        assert f"is using {data}" in refusal and "Traceback" not in refusal, refusal
    finally:
        code = ctrl_c(first)
    assert code == 0, log.read_text()[-3000:]
    assert "was killed" not in log.read_text(), log.read_text()[-3000:]  # every service stops on SIGTERM
    assert (data / "csu.db").exists() and (data / "objects").is_dir()

    second = start(data, port, tmp_path / "launcher2.log")
    try:
        wait_for(lambda: "CSU console:" in (tmp_path / "launcher2.log").read_text(), 120, "the second start")
        api = login(base, "operator-1", OPERATOR_PASSWORD)  # same account, same data
        listed = {s["id"] for s in _segments(api)}
        assert segments[0]["id"] in listed, "the second run does not see the first run's recordings"
        content = api.get(f"/api/v1/segments/{segments[0]['id']}/content", params={"justification": "resume check"})
        assert content.status_code == 200 and len(content.content) == segments[0]["bytes"]
        assert _left_running(data), "the services and NATS of the second run are found"
    finally:
        second.kill()  # SIGKILL: the launcher cannot stop anything itself
        second.wait()
    # Its children die with it (the kernel tells them): no service or NATS keeps running, or a port.
    wait_for(lambda: not _left_running(data), 60, "no process of the killed run left")


def _newcomer_sees_video(base: str, printed: str, admin_password: str) -> None:
    """What the README's quick start promises: the printed demonstration operator logs in to the
    console (TOTP enrolled there), the wall opens on the demo cameras playing masked video, and the
    recordings are there; the account's creation is in the audit trail."""
    found = re.search(r"Watch video:\s+demo-operator / (\S+)\s+\(DEMONSTRATION account — embedded default", printed)
    assert found, printed
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1500, "height": 950})
        console_login(page, base, "demo-operator", found.group(1))
        # No layout saved: the wall opens on the operator's cameras, not on empty tiles.
        until(page, f"{TILES} === 'demo-1,demo-2,,'", 20, "the wall opened on the demo cameras")
        for index in (0, 1):
            wait_for(lambda i=index: playing(page, i), 120, f"live video in tile {index}")
        (x0, y0), (x1, y1) = DEMO_WINDOW_MASK[0], DEMO_WINDOW_MASK[2]
        assert frame_stats(page, ".tile[data-index='0'] video", [x0, y0, x1, y1])["maskWorst"] <= 8
        screenshot(page, "make-run-demo-operator")
        assert page.locator(".tile[data-index='0'] [data-tool='playback']").count() == 1  # its recordings, a click away
    demo = login(base, "demo-operator", found.group(1))
    assert _segments(demo), "the demonstration operator sees no recording"
    me = demo.get("/api/v1/auth/me").json()
    assert me["role"] == "operator", me
    with login(base, "admin", admin_password) as admin:
        users = {u["username"]: u for u in admin.get("/api/v1/users").json()}
        assert users["demo-operator"]["prefecture_ref"].startswith("DEMONSTRATION"), users["demo-operator"]
        created = admin.get("/api/v1/audit", params={"target": "user:demo-operator", "action": "users.create"})
        assert [(e["actor"], e["action"]) for e in created.json()] == [("system", "users.create")], created.text


def test_demonstration_operator_refused_outside_the_embedded_default(platform: Platform) -> None:
    """The test platform's gateway runs on PostgreSQL: asked for the demonstration operator, it does
    not start, says why in words, and creates nothing. Refused rather than ignored with a warning:
    a known-password account seeing every camera must never reach real footage, and a warning in a
    production log is read too late, if ever."""
    platform.env["CSU_DEMO_OPERATOR_PASSWORD"] = "Demo-operator-Passw0rd-here"
    with pytest.raises(RuntimeError, match="exited during start-up"):
        platform.start(["gateway"], timeout=60)
    gateway = platform.processes["gateway"]
    assert gateway.process is not None and gateway.process.wait(10) == 2
    said = gateway.log_path.read_text()
    assert "CSU_DEMO_OPERATOR_PASSWORD is refused" in said and "not the embedded SQLite" in said, said
    assert "Traceback" not in said, said
    # Without it, the same gateway starts, and there is no such account.
    del platform.env["CSU_DEMO_OPERATOR_PASSWORD"]
    platform.start(["ingest", "gateway"])
    with platform.admin() as admin:
        assert "demo-operator" not in {u["username"] for u in admin.get("/api/v1/users").json()}


def _left_running(data: Path) -> list[str]:
    """The processes started for this data folder (their environment names it), as 'pid command'."""
    marker = f"CSU_DATA_DIR={data}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                found.append(f"{entry.name} {command.strip()}")
        except OSError:
            continue  # gone meanwhile, or not ours to read
    return found


# One password for every test account: it passes the strength rules and holds no username.
OPERATOR_PASSWORD = Platform.USER_PASSWORD


def _operator(base: str, admin_password: str) -> httpx.Client:
    with login(base, "admin", admin_password) as admin:
        created = admin.post(
            "/api/v1/users",
            json={
                "username": "operator-1",
                "display_name": "Op",
                "role": "operator",
                "password": OPERATOR_PASSWORD,
                "camera_groups": ["*"],
                "prefecture_ref": "P-1",
                "prefecture_validated": "2026-01-01T00:00:00Z",
            },
        )
        assert created.status_code == 201, created.text
    return login(base, "operator-1", OPERATOR_PASSWORD)


def _segments(api: httpx.Client) -> list[dict]:
    response = api.get("/api/v1/cameras/demo-1/segments")
    assert response.status_code == 200, response.text
    return response.json()
