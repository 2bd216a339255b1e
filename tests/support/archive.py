"""Shared test tools for the archive (no tests here).

- `ArchiveHarness`: the archive's parts built in-process against the real servers of the test
  (S3 on loopback, PostgreSQL or SQLite, NATS when given), with a `ManualClock`, and its gRPC API
  served on a loopback port, so tests move time by days and call ArchiveService like the gateway.
- `TcpProxy`: a loopback TCP relay in front of the S3 server; `cut()` makes the store really
  unreachable (connections refused and dropped) and `restore()` brings it back, without touching
  the shared S3 server.
- `database_outage`: makes the test's own database refuse connections (PostgreSQL) or locks it
  (SQLite), then restores it.
"""

import asyncio
import hashlib
import socket
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import grpc
import psycopg
from sqlalchemy import Engine, create_engine, event

from services.archive.grpc_api import ArchiveApi, local_spans
from services.archive.holds import HoldBook
from services.archive.ledger import Book
from services.archive.recorder import Recorder
from services.archive.retention import RetentionPolicy
from services.archive.segmenter import ClosedSegment, SegmentBuilder
from services.archive.spool import Spool
from services.common import db, rpc
from services.common.anchoring import AnchorStore, Cadence
from services.common.clock import ManualClock, SystemClock, to_us
from services.common.objectstore import ObjectStore
from services.common.objectstore.local import LocalStore
from services.common.objectstore.s3 import S3Store
from services.common.pb.csu.v1 import archive_pb2_grpc, ingest_pb2
from services.common.pb.csu.v1.frame_pb2 import FramePacket
from services.common.settings import Settings
from services.common.signing import Signer
from tests.support.frames import h264_packets
from tests.support.servers import S3Server, free_port, nats_prefix, unique

# Tests record at T0 (the start of the previous UTC hour) and their ManualClock starts an hour later,
# at the real present: objects' write times (what S3 lifecycle rules go by) and capture times agree.
START = SystemClock().now().replace(minute=0, second=0, microsecond=0)
T0 = START - timedelta(hours=1)
T0_US = to_us(T0)


def make_engine(database_url: str) -> Engine:
    """The test database; SQLite with a short lock timeout so an outage fails fast."""
    if database_url.startswith("sqlite"):
        engine = create_engine(database_url, connect_args={"check_same_thread": False, "timeout": 1})

        @event.listens_for(engine, "connect")
        def _wal(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            dbapi_connection.execute("PRAGMA journal_mode=WAL")

    else:
        engine = db.make_engine(Settings(database_url=database_url))  # type: ignore[call-arg]
    db.migrate("archive", engine)
    return engine


def s3_store(s3: S3Server, bucket: str | None = None, endpoint: str | None = None) -> S3Store:
    store = S3Store(endpoint or s3.endpoint, s3.access_key, s3.secret_key, "us-east-1", bucket or unique("arc-"))
    return store


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def record(
    spool: Path,
    camera_id: str,
    start_us: int,
    seconds: float,
    segment_s: float = 2.0,
    fps: int = 10,
    session: str = "s",
) -> list[ClosedSegment]:
    """Real H.264 cut into closed segments in the spool, as the archive would from masked packets."""
    packets: list[FramePacket] = h264_packets(
        int(seconds * fps), fps=fps, camera_id=camera_id, session=session, start_us=start_us
    )
    for p in packets:
        p.mask_version = "m-test"
    builder = SegmentBuilder(camera_id, "main", spool, segment_s, 3.0)
    closed: list[ClosedSegment] = []
    for p in packets:
        closed += builder.add(p)
    last = builder.close()
    if last is not None:
        closed.append(last)
    return closed


@dataclass
class ArchiveHarness:
    engine: Engine
    store: ObjectStore
    spool: Spool
    clock: ManualClock
    retention: RetentionPolicy
    recorder: Recorder
    api: ArchiveApi
    work: Path
    live: "RecorderLive | None" = None
    # The segment ledger, driven by hand (`anchor`) rather than by the archive's loop.
    ledger: Book | None = None
    target: str = ""
    _server: grpc.aio.Server | None = None
    _channel: grpc.aio.Channel | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def stub(self) -> archive_pb2_grpc.ArchiveServiceStub:
        assert self._channel is not None
        return archive_pb2_grpc.ArchiveServiceStub(self._channel)

    async def start(self, prime: bool = True) -> "ArchiveHarness":
        port = free_port()
        self._server = await rpc.start_server(
            f"127.0.0.1:{port}", [lambda s: archive_pb2_grpc.add_ArchiveServiceServicer_to_server(self.api, s)]
        )
        self.target = f"127.0.0.1:{port}"
        self._channel = rpc.channel(self.target)
        self._tasks.append(asyncio.create_task(self.recorder.run()))
        if prime:
            await asyncio.to_thread(self.store.ensure_bucket)
            await asyncio.to_thread(self.recorder.prime)
            self.recorder.ready.set()
        return self

    async def store_segments(self, segments: list[ClosedSegment]) -> None:
        for seg in segments:
            self.recorder.submit(seg)
        await asyncio.wait_for(self.recorder.drain(), timeout=120)

    async def record(
        self, camera_id: str, start_us: int, seconds: float, segment_s: float = 2.0
    ) -> list[ClosedSegment]:
        segments = record(self.spool.root, camera_id, start_us, seconds, segment_s)
        await self.store_segments(segments)
        return segments

    async def anchor(self) -> None:
        """What the archive's ledger loop does: take the new rows in, sign the head, publish it."""
        assert self.ledger is not None
        book = self.ledger
        await asyncio.to_thread(book.ensure_anchors)
        await asyncio.to_thread(book.round)
        await asyncio.to_thread(book.sign_head)
        newest = await asyncio.to_thread(book.newest)
        if newest is not None:
            await asyncio.to_thread(book.anchors.publish, newest)

    async def cli(self, *args: str) -> tuple[int, object]:
        """`csuctl segments ...` against this archive: exit code and its JSON document."""
        import json

        from typer.testing import CliRunner

        from services.csuctl.app import app

        # In a thread: the in-process archive answers on this test's event loop.
        result = await asyncio.to_thread(
            CliRunner().invoke, app, ["segments", *args, "--json"], env={"CSU_ARCHIVE_GRPC": self.target}
        )
        # The in-process archive logs to the same stdout: the document starts on its own line.
        lines = result.output.splitlines(keepends=True)
        first = next(i for i, line in enumerate(lines) if line[:1] in "[{")
        return result.exit_code, json.loads("".join(lines[first:]))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._channel is not None:
            await self._channel.close()
        if self._server is not None:
            await self._server.stop(None)
        self.engine.dispose()


def harness(
    tmp_path: Path,
    database_url: str,
    store: ObjectStore,
    clock: ManualClock | None = None,
    retention_days: int = 15,
    spool_max_bytes: int = 512 * 1024 * 1024,
    js=None,  # type: ignore[no-untyped-def]
    prefix: str = "",
    live=None,  # type: ignore[no-untyped-def]
    store_for=None,  # type: ignore[no-untyped-def]
    anchors: ObjectStore | None = None,
) -> ArchiveHarness:
    clock = clock or ManualClock(START)
    engine = make_engine(database_url)
    key = tmp_path / "keys" / "signing.pem"
    if not key.exists():
        Signer.generate(key)
    anchors = anchors or LocalStore(tmp_path / "anchors", unique("anc-"))
    book = Book(engine, Signer.from_file(key), clock, Cadence(10, 300), AnchorStore(anchors, 31, clock))
    spool = Spool(tmp_path / "spool", spool_max_bytes)
    retention = RetentionPolicy(retention_days)
    recorder = Recorder(spool, store, engine, js, prefix or nats_prefix(), clock, retention, HoldBook(engine, clock))
    live = live or RecorderLive(recorder)
    api = ArchiveApi(
        engine,
        store,
        clock=clock,
        retention=retention,
        max_query_range_hours=24,
        work_dir=tmp_path / "work",
        live=live,
        store_for=store_for,
        ledger=book,
    )
    return ArchiveHarness(engine, store, spool, clock, retention, recorder, api, tmp_path / "work", live, book)


# Ingest's word on two cameras: 15 days, and a value above the legal maximum that "slipped through"
# (ingest refuses it; the archive must clamp it to 30 days anyway).
CAMERAS_15_AND_90 = (
    ingest_pb2.Camera(id="cam-15", name="Place 15", retention_days=15),
    ingest_pb2.Camera(id="cam-90", name="Rue 90", retention_days=90),
)


@asynccontextmanager
async def running_archive(
    tmp_path: Path, database_url: str, s3: S3Server, cameras: Sequence[ingest_pb2.Camera] = ()
) -> AsyncIterator[ArchiveHarness]:
    """A started archive on the test's S3 server (every bucket there), `cameras` being ingest's word
    on their retention; stopped on the way out."""
    h = harness(
        tmp_path,
        database_url,
        s3_store(s3),
        store_for=lambda bucket: s3_store(s3, bucket),
        anchors=s3_store(s3, unique("anc-")),
    )
    if cameras:
        h.retention.update(list(cameras))
    await h.start()
    try:
        yield h
    finally:
        await h.stop()


class RecorderLive:
    """The recording side of an in-process archive: the recorder's spooled segments, and an open
    segment when a test sets one (a real SegmentBuilder's)."""

    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder
        self.builder: SegmentBuilder | None = None

    def spooled(self, camera_id: str, stream: str) -> list[ClosedSegment]:
        return self._recorder.spooled(camera_id, stream)

    async def recording_spans(self, camera_id: str, stream: str) -> list[tuple[int, int]]:
        return local_spans(self, camera_id, stream)

    def open_segment(self, camera_id: str, stream: str):  # type: ignore[no-untyped-def]
        if self.builder is None or self.builder.camera_id != camera_id:
            return None
        return self.builder.open_segment()

    @property
    def spool_dir(self) -> Path:
        return self._recorder.spool_dir

    def pending_keys(self) -> set[str]:
        return self._recorder.pending_keys()


def local_store(tmp_path: Path) -> LocalStore:
    store = LocalStore(tmp_path / "objects", unique("arc-"))
    store.ensure_bucket()
    return store


class TcpProxy:
    """A loopback TCP relay that can be cut (refuse and drop connections) and restored, or held
    (connections stay open and nothing passes, as with a peer frozen by SIGSTOP) and released."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._flowing = threading.Event()
        self._flowing.set()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.restore()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            if self._listener is not None:
                # shutdown() wakes the thread blocked in accept(); close() alone leaves the port
                # listening until accept returns.
                try:
                    self._listener.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                self._listener.close()
                self._listener = None
            for conn in list(self._open):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                conn.close()
            self._open.clear()

    def hold(self) -> None:
        self._flowing.clear()

    def release(self) -> None:
        self._flowing.set()

    def close(self) -> None:
        self.release()
        self.cut()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                self._flowing.wait()
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            with self._lock:
                self._open.discard(source)
                self._open.discard(sink)


@contextmanager
def database_outage(database_url: str) -> Iterator[None]:
    """The test's database refuses service until the block ends (a real outage, nothing mocked)."""
    if database_url.startswith("sqlite"):
        path = database_url.split("sqlite:///", 1)[1]
        conn = sqlite3.connect(path, timeout=1, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    plain = database_url.replace("postgresql+psycopg://", "postgresql://")
    head, _, name = plain.rpartition("/")
    admin = f"{head}/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
    try:
        yield
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
