"""Shared test tools for the requisition service (no tests here).

`RequisitionStack`: the archive (with holds and extraction) and the requisition service built
in-process against the test's real servers (S3 on loopback, PostgreSQL or SQLite, NATS), on one
`ManualClock`, each serving its gRPC API on a loopback port — so tests move time by days, call
`tick()` for the deadline loop, and point a gateway process (or masking) at `archive_target` and
`target`. `stack_behind_platform` does that for an e2e test: the stack, one camera's recording,
and the platform's services started against them.

Documents for uploads: `pdf_bytes()` (a real PDF from fpdf2), `png_bytes()`, `jpeg_bytes()`.
"""

import asyncio
import contextlib
import io
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
import nats
import numpy as np
from fpdf import FPDF
from PIL import Image

from services.archive.grpc_api import ArchiveApi
from services.archive.holds import HoldBook
from services.archive.sweeper import Sweeper
from services.common import bus, db, rpc
from services.common.clock import ManualClock
from services.common.objectstore import ObjectStore
from services.common.pb.csu.v1 import ingest_pb2, requisition_pb2_grpc
from services.common.secretbox import SecretBox
from services.common.settings import Settings
from services.common.signing import Signer
from services.requisition import deadlines
from services.requisition.context import Context
from services.requisition.main import build_context, prepare_stores, serve
from tests.support import servers
from tests.support.archive import START, T0_US, ArchiveHarness, harness, s3_store
from tests.support.platform import Platform
from tests.support.servers import S3Server, free_port, unique

T = TypeVar("T")


def pdf_bytes(text: str = "Réquisition judiciaire") -> bytes:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=14)
    pdf.cell(0, 10, text.encode("latin-1", "replace").decode("latin-1"))
    return bytes(pdf.output())


def png_bytes(size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((size[1], size[0], 3), 120, np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def jpeg_bytes(size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((size[1], size[0], 3), 200, np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


@dataclass
class RequisitionStack:
    archive: ArchiveHarness
    holds: HoldBook
    ctx: Context
    settings: Settings
    target: str = ""
    _server: grpc.aio.Server | None = None
    _nats: nats.aio.client.Client | None = None

    @property
    def clock(self) -> ManualClock:
        return self.archive.clock

    @property
    def archive_target(self) -> str:
        return self.archive.target

    def store(self, bucket: str) -> ObjectStore:
        return {
            self.settings.bucket_extractions: self.ctx.extractions,
            self.settings.bucket_documents: self.ctx.documents,
            self.settings.bucket_exports: self.ctx.exports,
        }[bucket]

    def keys(self, store: ObjectStore, prefix: str = "") -> list[str]:
        return [i.key for i in store.list(prefix)]

    def sweeper(self) -> Sweeper:
        return Sweeper(self.archive.engine, self.archive.store, self.clock, self.archive.retention, holds=self.holds)

    async def tick(self) -> dict[str, int]:
        return await deadlines.tick(self.ctx)

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(None)
        if self._nats is not None:
            await self._nats.close()
        await self.archive.stop()
        self.ctx.engine.dispose()


async def stack(
    tmp_path: Path,
    database_url: str,
    s3: S3Server,
    *,
    nats_url: str = "",
    nats_prefix: str = "",
    cameras: dict[str, str] | None = None,
    retention_days: int = 15,
    masking_target: str = "",
    keys_dir: Path | None = None,
    **overrides: Any,
) -> RequisitionStack:
    """Archive + requisition service in-process; `cameras`: id -> name (retention_days each)."""
    keys = keys_dir or tmp_path / "keys"
    signing, secrets = keys / "signing.pem", keys / "secrets.key"
    if not signing.exists():
        Signer.generate(signing)
    if not secrets.exists():
        SecretBox.generate(secrets)
    clock = ManualClock(START)
    recordings = s3_store(s3)
    archive = harness(
        tmp_path / "archive",
        database_url,
        recordings,
        clock=clock,
        retention_days=retention_days,
        store_for=lambda bucket: s3_store(s3, bucket),
    )
    holds = HoldBook(archive.engine, clock)
    archive.api = ArchiveApi(
        archive.engine,
        recordings,
        clock=clock,
        retention=archive.retention,
        max_query_range_hours=24,
        work_dir=tmp_path / "archive" / "work",
        live=archive.live,
        store_for=lambda bucket: s3_store(s3, bucket),
        holds=holds,
    )
    archive.retention.update(
        [ingest_pb2.Camera(id=c, name=n, retention_days=retention_days) for c, n in (cameras or {}).items()]
    )
    await archive.start()
    settings = Settings(  # type: ignore[call-arg]
        database_url=database_url,
        data_dir=tmp_path / "requisition",
        store_backend="s3",
        s3_endpoint=s3.endpoint,
        s3_access_key=s3.access_key,
        s3_secret_key=s3.secret_key,
        bucket_extractions=unique("ext-"),
        bucket_documents=unique("doc-"),
        bucket_exports=unique("exp-"),
        bucket_anchors=unique("anc-"),  # the register's published heads: this stack's own
        signing_key_file=signing,
        secrets_key_file=secrets,
        archive_grpc=archive.target,
        masking_grpc=masking_target or f"127.0.0.1:{free_port()}",
        nats_prefix=nats_prefix or servers.nats_prefix(),
        **overrides,
    )
    ctx = build_context(settings, clock)
    db.migrate("requisition", ctx.engine)
    await asyncio.to_thread(prepare_stores, ctx)
    result = RequisitionStack(archive, holds, ctx, settings)
    if nats_url:
        result._nats = await nats.connect(nats_url)
        ctx.js = result._nats.jetstream()
        await bus.ensure_events_stream(ctx.js, settings.nats_prefix)
    port = free_port()
    result._server = await serve(ctx, f"127.0.0.1:{port}")
    result.target = f"127.0.0.1:{port}"
    return result


def stub(target: str) -> requisition_pb2_grpc.RequisitionServiceStub:
    return requisition_pb2_grpc.RequisitionServiceStub(rpc.channel(target))


class LoopThread:
    """An event loop in a thread of its own, for the in-process stack of a synchronous e2e test:
    the gateway process calls the stack's gRPC servers while the test blocks on HTTP calls."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="stack-loop", daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 600) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


@contextlib.contextmanager
def stack_behind_platform(
    platform: Platform,
    tmp_path: Path,
    database_url: str,
    s3: S3Server,
    nats_url: str,
    *,
    camera: tuple[str, str],
    seconds: int,
    services: list[str],
    env: dict[str, str] | None = None,
    **stack_options: Any,
) -> Iterator[tuple[RequisitionStack, LoopThread]]:
    """The in-process stack with `seconds` of `camera` (id, name) recorded from T0_US, and the
    platform's `services` started against it, `env` added to theirs. The camera is registered in
    maintenance with no source: nothing else is recorded, so the archive holds exactly that."""
    camera_id, name = camera
    bg = LoopThread()
    st = bg.run(
        stack(tmp_path / "stack", database_url, s3, nats_url=nats_url, nats_prefix=platform.nats_prefix,
              cameras={camera_id: name}, keys_dir=platform.workdir / "keys", **stack_options)
    )  # fmt: skip
    try:
        bg.run(st.archive.record(camera_id, T0_US, seconds))
        platform.set_cameras(
            [{"id": camera_id, "name": name, "source": "/nonexistent/cam-a.mp4", "masks": [], "state": "maintenance"}]
        )
        platform.env |= {"CSU_ARCHIVE_GRPC": st.archive_target, "CSU_REQUISITION_GRPC": st.target} | (env or {})
        platform.start(services)
        yield st, bg
    finally:
        bg.run(st.stop())
        bg.close()
