"""Spawning a program from a process that uses gRPC never kills the child before exec (services/__init__.py).

Without GRPC_ENABLE_FORK_SUPPORT=0, about one spawn in ten here printed gRPC's "epoll_wait error:
Bad file descriptor" from the child and the child died: a service that "exited during start-up".
"""

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SPAWNER = textwrap.dedent(
    """
    import asyncio, os, subprocess
    import services  # first, as every service and the launcher import it
    import grpc

    async def main() -> None:
        channel = grpc.aio.insecure_channel("127.0.0.1:9")  # nothing listens: the poller stays busy
        for _ in range(40):
            try:
                await asyncio.wait_for(channel.channel_ready(), 0.02)
            except (asyncio.TimeoutError, grpc.RpcError):
                pass
            child = subprocess.run(["true"], preexec_fn=os.getpid)  # the launcher's way: fork, then exec
            assert child.returncode == 0, child.returncode

    asyncio.run(main())
    """
)


def test_children_of_a_grpc_process_reach_exec() -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", SPAWNER], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "epoll_wait error" not in done.stderr, done.stderr
