"""The gateway's connections to the rest of the platform: gRPC stubs, NATS, its own database."""

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cached_property
from typing import Annotated

import grpc
from fastapi import Depends, HTTPException
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.kv import KeyValue
from sqlalchemy import Engine
from starlette.requests import HTTPConnection

from services.common import db, rpc
from services.common.anchoring import AnchorStore, Cadence
from services.common.clock import Clock, SystemClock
from services.common.objectstore import make_store
from services.common.pb.csu.v1 import (
    archive_pb2_grpc,
    ingest_pb2,
    ingest_pb2_grpc,
    masking_pb2_grpc,
    requisition_pb2_grpc,
)
from services.common.refusals import HTTP_STATUS
from services.common.secretbox import SecretBox
from services.common.settings import Settings
from services.common.signing import Signer
from services.gateway.identity.oidc import OidcClient

# Every call the gateway makes has a deadline: a stuck backend must not hang a user's request.
RPC_TIMEOUT_S = 10.0
# Camera facts used for permission checks (groups) are cached briefly: a permission check per
# request must not cost a gRPC round trip, and a changed group takes effect within this delay.
CAMERA_CACHE_S = 5.0


def unknown_camera(camera_id: str) -> HTTPException:
    """The one answer for a camera the caller may not see or that does not exist (same status, same words)."""
    return HTTPException(404, f"unknown camera {camera_id!r}")


def channel(target: str) -> grpc.aio.Channel:
    """Every channel the gateway opens: a call made without a timeout gets RPC_TIMEOUT_S."""
    return rpc.channel(target, default_timeout_s=RPC_TIMEOUT_S)


class Backends:
    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.engine: Engine = db.make_engine(settings)
        self._ingest_channel = channel(settings.ingest_grpc)
        self._archive_channel = channel(settings.archive_grpc)
        self.ingest = ingest_pb2_grpc.IngestServiceStub(self._ingest_channel)
        self.archive = archive_pb2_grpc.ArchiveServiceStub(self._archive_channel)
        self.nats: Client | None = None
        self.js: JetStreamContext | None = None
        # Audited actions waiting for their outcome (audit_outcome.py).
        self.intents: KeyValue | None = None
        self.box: SecretBox = SecretBox.from_file(settings.secrets_key_file)
        self.signer: Signer = Signer.from_file(settings.signing_key_file)
        # The audit trail's checkpoints and the heads published outside the database (anchoring.py).
        self.cadence = Cadence.of(settings.chain_checkpoint_entries, settings.chain_checkpoint_minutes)
        self.anchors = AnchorStore(
            make_store(settings, settings.bucket_anchors), settings.anchor_retain_days, self.clock
        )
        # The optional single sign-on provider (CSU_OIDC_*); a misconfigured one stops the gateway here.
        self.oidc = OidcClient(settings)
        self._cameras: dict[str, tuple[float, ingest_pb2.Camera]] = {}
        # Masking and requisition serve some routes only: their channels open on first use (in the
        # event loop), one each for the process, like the two above.
        self._lazy: list[grpc.aio.Channel] = []

    def _open(self, target: str) -> grpc.aio.Channel:
        self._lazy.append(channel(target))
        return self._lazy[-1]

    @cached_property
    def masking(self) -> "masking_pb2_grpc.MaskingServiceAsyncStub":
        return masking_pb2_grpc.MaskingServiceStub(self._open(self.settings.masking_grpc))

    @cached_property
    def requisition(self) -> "requisition_pb2_grpc.RequisitionServiceAsyncStub":
        return requisition_pb2_grpc.RequisitionServiceStub(self._open(self.settings.requisition_grpc))

    async def close(self) -> None:
        await self._ingest_channel.close()
        await self._archive_channel.close()
        for lazy in self._lazy:
            await lazy.close()
        self.engine.dispose()

    async def camera(self, camera_id: str) -> ingest_pb2.Camera:
        """The camera, or a 404 naming the unknown id."""
        cached = self._cameras.get(camera_id)
        if cached and time.monotonic() - cached[0] < CAMERA_CACHE_S:
            return cached[1]
        async with rpc_errors("ingest"):
            try:
                camera = await self.ingest.GetCamera(
                    ingest_pb2.GetCameraRequest(camera_id=camera_id), timeout=RPC_TIMEOUT_S
                )
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.NOT_FOUND:
                    raise unknown_camera(camera_id) from exc
                raise
        self._cameras[camera_id] = (time.monotonic(), camera)
        return camera


async def backends(connection: HTTPConnection) -> Backends:
    """FastAPI dependency; HTTPConnection so HTTP routes and WebSockets share it."""
    return connection.app.state.backends


# A route's backends: `b: BackendsDep`.
BackendsDep = Annotated[Backends, Depends(backends)]


# A backend's message is bounded before it reaches a user: it may quote what the request carried.
MAX_DETAIL = 300
# gRPC's own words when the channel, not the service, failed ("failed to connect to all addresses;
# last error: ... ipv4:10.0.0.7:50051 ..."): they name internal addresses, so the user gets ours.
_TRANSPORT_WORDS = ("connect", "socket", "ipv4:", "ipv6:", "dns:", "unix:", "http2")


def _said(exc: grpc.aio.AioRpcError) -> str:
    detail = exc.details() or exc.code().name.lower().replace("_", " ")
    return detail if len(detail) <= MAX_DETAIL else detail[:MAX_DETAIL] + "…"


@asynccontextmanager
async def rpc_errors(service: str) -> AsyncIterator[None]:
    """A backend's refusal as the HTTP error a user can act on, for every backend alike: the status
    from services/common/refusals.HTTP_STATUS (404, 422 a rule broken, 409 a conflict, 403, 413,
    401...), in the backend's own words, bounded. A backend out of reach is a 503 naming only the
    service; a backend's failure (INTERNAL, UNKNOWN...) a 502 naming only the service."""
    try:
        yield
    except grpc.aio.AioRpcError as exc:
        code, detail = exc.code(), _said(exc)
        out_of_reach = code == grpc.StatusCode.DEADLINE_EXCEEDED or (
            code == grpc.StatusCode.UNAVAILABLE
            and (not exc.details() or any(word in detail.lower() for word in _TRANSPORT_WORDS))
        )
        if out_of_reach:
            raise HTTPException(503, f"the {service} service is unavailable; try again shortly") from exc
        if code in HTTP_STATUS:
            raise HTTPException(HTTP_STATUS[code], detail) from exc
        raise HTTPException(502, f"the {service} service failed: {code.name}") from exc
