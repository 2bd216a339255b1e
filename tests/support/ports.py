"""Loopback ports for the test servers, chosen so that nothing else on the machine takes them first.

A port the OS hands out for ``bind(0)`` comes from the ephemeral range, the same range it draws the
local port of every outgoing connection from. Between the moment a test picks such a port and the
moment its service process binds it, any connection made on the machine (a NATS client, a browser,
PostgreSQL) may be given it, and the service dies with "address already in use" (seen in CI: an
ingest gRPC port). Ports below the ephemeral range are never handed out that way, so the only
contenders left are listeners, which the bind check sees, and this session's own earlier picks,
which it remembers. Standard library only: the RTSP camera helper imports it.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

HOST = "127.0.0.1"
LOWEST = 20_000  # above the well-known services of a development machine (PostgreSQL, NATS, Redis...)
_given: set[int] = set()


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default, and close to what other systems use (49152 on BSDs, macOS)


def free_port() -> int:
    """A TCP port on loopback that no one listens on, outside the OS's ephemeral range, not given before."""
    highest = _ephemeral_start() - 1
    for _ in range(1000):
        port = random.randint(LOWEST, highest)
        if port in _given:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((HOST, port))
            except OSError:
                continue
        _given.add(port)
        return port
    raise RuntimeError(f"no free port on {HOST} between {LOWEST} and {highest}")
