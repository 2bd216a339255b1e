"""On-site viewing of a citizen's redacted footage: the kiosk session.

A clerk opens a session for a request whose redaction is done: the service answers a one-time
pairing code (10 characters, valid CSU_KIOSK_PAIRING_MINUTES), which the clerk types on the kiosk
in the viewing room. Pairing trades the code for a session token (256 bits) that only the kiosk
holds (the gateway keeps it in an HttpOnly cookie scoped to the kiosk's paths); the session lasts
CSU_KIOSK_SESSION_MINUTES and ends early when the request closes. Only hashes of codes and tokens
are stored.

The clip is the masking service's redacted clip, remuxed (never re-encoded) into fragmented MP4
for the kiosk page's Media Source, and served only to a valid kiosk token: no staff session, no
other path in the API ever serves it.
"""

import asyncio
import hashlib
import secrets
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import av
import grpc
from sqlmodel import select

from services.common import rpc
from services.common.clock import to_us
from services.common.db import session
from services.common.log import get_logger
from services.common.pb.csu.v1 import masking_pb2, requisition_pb2
from services.common.refusals import Conflict, Denied, NotFound, Unauthenticated, Unavailable
from services.requisition import citizens
from services.requisition.context import Context
from services.requisition.models import CitizenRequest, KioskSession

log = get_logger(__name__)
CHUNK = 512 * 1024
RPC_TIMEOUT_S = 300.0
FRAGMENTED = "frag_keyframe+empty_moov+default_base_moof"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _normalise_code(code: str) -> str:
    cleaned = "".join(c for c in code.upper() if c.isalnum())
    return f"{cleaned[:5]}-{cleaned[5:]}" if len(cleaned) == 10 else ""


async def done_jobs(ctx: Context, row: CitizenRequest) -> list[masking_pb2.RedactionJob]:
    if ctx.masking is None:
        raise Unavailable("redaction is not configured (no masking service)")
    jobs = []
    for ref in row.redactions:
        try:
            job = await ctx.masking.GetRedaction(masking_pb2.RedactionRef(id=ref["job_id"]), timeout=30)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                continue
            raise Unavailable("the masking service is unavailable; try again shortly") from exc
        if job.status == "done":
            jobs.append(job)
    return jobs


async def open_session(ctx: Context, request: requisition_pb2.CitizenRef) -> requisition_pb2.KioskSession:
    actor = request.actor
    if actor.partner:
        raise Denied("kiosk sessions are opened by CSU clerks")
    now = to_us(ctx.clock.now())
    with session(ctx.engine) as s:
        row = citizens.load(s, request.id)
    if row.state != citizens.FOUND:
        raise Conflict(f"request {row.number} is {row.state}: there is no footage of the requester to show")
    jobs = await done_jobs(ctx, row)
    if not jobs:
        raise Conflict(f"request {row.number} has no finished redaction yet: nothing can be shown")
    code = citizens.new_code()
    kiosk = KioskSession(
        id=uuid.uuid4().hex,
        request_id=row.id,
        code_hash=_hash(code),
        code_expires_us=now + ctx.settings.kiosk_pairing_minutes * 60_000_000,
        expires_us=now + ctx.settings.kiosk_pairing_minutes * 60_000_000,
        opened_by=actor.username,
        created_us=now,
    )
    with session(ctx.engine) as s:
        s.add(kiosk)
        s.commit()
    return requisition_pb2.KioskSession(
        session_id=kiosk.id,
        request_id=row.id,
        request_number=row.number,
        pairing_code=code,
        pairing_expires_us=kiosk.code_expires_us,
        expires_us=kiosk.expires_us,
        clips=len(jobs),
    )


async def pair(ctx: Context, request: requisition_pb2.PairKioskRequest) -> requisition_pb2.KioskSession:
    code = _normalise_code(request.code)
    now = to_us(ctx.clock.now())
    if not code:
        raise Unauthenticated("unknown or expired kiosk code")
    token = secrets.token_urlsafe(32)
    with session(ctx.engine) as s:
        kiosk = s.exec(select(KioskSession).where(KioskSession.code_hash == _hash(code)).with_for_update()).first()
        if kiosk is None or kiosk.paired_us is not None or kiosk.revoked_us is not None or kiosk.code_expires_us <= now:
            raise Unauthenticated("unknown or expired kiosk code")
        row = citizens.load(s, kiosk.request_id)
        if row.state != citizens.FOUND:
            raise Unauthenticated("this request is closed: the kiosk code is no longer valid")
        kiosk.token_hash = _hash(token)
        kiosk.paired_us, kiosk.paired_ip = now, request.ip[:64]
        kiosk.expires_us = now + ctx.settings.kiosk_session_minutes * 60_000_000
        s.add(kiosk)
        s.commit()
    jobs = await done_jobs(ctx, row)
    return requisition_pb2.KioskSession(
        session_id=kiosk.id,
        request_id=row.id,
        request_number=row.number,
        token=token,
        expires_us=kiosk.expires_us,
        clips=len(jobs),
    )


def _session_for(ctx: Context, token: str) -> tuple[KioskSession, CitizenRequest]:
    now = to_us(ctx.clock.now())
    if not token:
        raise Unauthenticated("no kiosk session")
    with session(ctx.engine) as s:
        kiosk = s.exec(select(KioskSession).where(KioskSession.token_hash == _hash(token))).first()
        if kiosk is None or kiosk.revoked_us is not None or kiosk.expires_us <= now:
            raise Unauthenticated("the kiosk session has expired or was closed")
        row = citizens.load(s, kiosk.request_id)
        if row.state != citizens.FOUND:
            raise Unauthenticated("the request is closed: the kiosk session has ended")
        return kiosk, row


def session_info(ctx: Context, token: str) -> requisition_pb2.KioskSession:
    kiosk, row = _session_for(ctx, token)
    return requisition_pb2.KioskSession(
        session_id=kiosk.id, request_id=row.id, request_number=row.number, expires_us=kiosk.expires_us
    )


async def _prepare(ctx: Context, job: masking_pb2.RedactionJob, kiosk_id: str, source: Path, target: Path) -> str:
    """The redacted clip fetched from masking and fragmented into `target` (the play counted): its codec."""
    assert ctx.masking is not None
    call = ctx.masking.ReadRedaction(masking_pb2.RedactionRef(id=job.id, actor="kiosk"), timeout=RPC_TIMEOUT_S)
    try:
        with source.open("wb") as f:
            async for chunk in call:
                if chunk.data:
                    await asyncio.to_thread(f.write, chunk.data)
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            raise NotFound("the redacted clip has expired") from exc
        raise Unavailable("the masking service is unavailable; try again shortly") from exc
    codec = await asyncio.to_thread(fragment, source, target)
    source.unlink()
    with session(ctx.engine) as s:
        stored = s.get(KioskSession, kiosk_id)
        if stored is not None:
            stored.plays += 1
            s.add(stored)
            s.commit()
    return codec


def fragment(source: Path, target: Path) -> str:
    """Remux an MP4 into fragmented MP4 (no re-encode); returns the video's RFC 6381 codec string."""
    with av.open(str(source)) as inp:
        video = inp.streams.video[0]
        extradata = video.codec_context.extradata or b""
        if len(extradata) < 4 or extradata[0] != 1:
            raise Unavailable("the redacted clip is not H.264 in MP4 (avcC)")
        codec = f"avc1.{extradata[1]:02x}{extradata[2]:02x}{extradata[3]:02x}"
        with av.open(str(target), "w", format="mp4", options={"movflags": FRAGMENTED}) as out:
            stream = out.add_stream_from_template(video)
            for packet in inp.demux(video):
                if packet.dts is None:
                    continue
                packet.stream = stream
                out.mux(packet)
    return codec


async def clip(ctx: Context, request: requisition_pb2.KioskClipRequest) -> AsyncIterator[requisition_pb2.KioskChunk]:
    kiosk, row = await asyncio.to_thread(_session_for, ctx, request.token)
    jobs = await done_jobs(ctx, row)
    if request.clip >= len(jobs):
        raise NotFound(f"clip {request.clip} does not exist (this request has {len(jobs)})")
    job = jobs[request.clip]
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kiosk-", dir=ctx.work_dir) as tmp:
        target = Path(tmp) / "kiosk.mp4"
        # Fetching the redacted clip and remuxing it take time in proportion to its length:
        # progress meanwhile, so the gateway's bound on silence does not cut a long clip.
        prepare = asyncio.ensure_future(_prepare(ctx, job, kiosk.id, Path(tmp) / "redacted.mp4", target))
        try:
            async for elapsed in rpc.while_working(prepare):
                yield requisition_pb2.KioskChunk(progress=requisition_pb2.KioskPreparing(elapsed_s=elapsed))
        finally:
            prepare.cancel()  # a no-op once done; else the caller went away
        codec = prepare.result()
        size = target.stat().st_size
        yield requisition_pb2.KioskChunk(
            info=requisition_pb2.FileInfo(filename="", content_type="video/mp4", size=size), codec=codec
        )
        with target.open("rb") as f:
            while data := await asyncio.to_thread(f.read, CHUNK):
                yield requisition_pb2.KioskChunk(data=data)
    log.info("kiosk clip played", request=row.number, session=kiosk.id, clip=request.clip)
