"""Readiness does a round trip (issue 23): with NATS frozen (SIGSTOP: the TCP connection stays
up, nothing answers), the gateway's /readyz said NATS was fine. Now it pings and waits for the
answer with a timeout; thawed, it is ready again."""

import os
import signal
from pathlib import Path

import httpx
import pytest

from tests.support.platform import Platform, wait_for
from tests.support.servers import RestartableNats

pytestmark = pytest.mark.e2e


def test_readyz_fails_while_nats_is_frozen(platform: Platform, tmp_path: Path) -> None:
    with RestartableNats(tmp_path / "own-nats") as nats:
        platform.env["CSU_NATS_URL"] = nats.url
        platform.start(["ingest", "gateway"])

        def checks() -> tuple[int, dict]:
            answer = httpx.get(f"{platform.gateway}/readyz", timeout=30)
            return answer.status_code, answer.json()["checks"]

        status, ready = checks()
        assert status == 200 and ready["nats"] is True, ready
        pid = nats._server.pid
        os.kill(pid, signal.SIGSTOP)
        try:
            status, frozen = checks()
            assert status == 503 and frozen["nats"] is False, frozen
        finally:
            os.kill(pid, signal.SIGCONT)
        wait_for(lambda: checks() == (200, ready), 60, "ready again once NATS answers")
