"""A stopped service leaves even when a worker thread is still blocked (a store call that never
answers): the pod would otherwise be killed at its grace period, as the image test once saw."""

import signal
import subprocess
import sys
import time

from tests.support.ports import free_port

SERVICE = """
import asyncio, time
from services.common.service import run_service

async def main(runtime):
    # A blocking call that outlives the stop, in asyncio's default executor as to_thread puts it.
    asyncio.get_running_loop().run_in_executor(None, time.sleep, 120)
    print("blocked", flush=True)
    await runtime.stop.wait()

run_service("ingest", main, lambda settings: {port})
"""


def test_a_blocked_worker_thread_does_not_hold_the_process_past_its_grace() -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", SERVICE.format(port=free_port())],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = iter(process.stdout.readline, "")
        assert any(line.strip() == "blocked" for line in lines), "the service did not start"
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=20)
        elapsed = time.monotonic() - started
    finally:
        process.kill()
    output = process.stdout.read()
    assert code == 0, output
    # The executor's grace (3 s) and the stop itself, far under the pod's 30 s and asyncio's 300 s.
    assert elapsed < 15, elapsed
    assert "worker threads still blocked at stop" in output, output
