"""ArchiveService over gRPC: the only way other services reach recordings."""

import asyncio
from collections.abc import AsyncIterator

import grpc
from sqlalchemy import Engine

from services.archive import index
from services.archive.models import Segment
from services.common.objectstore import ObjectNotFound, ObjectStore, StoreUnavailable
from services.common.pb.csu.v1 import archive_pb2, archive_pb2_grpc

CHUNK = 512 * 1024


def to_message(row: Segment) -> archive_pb2.Segment:
    return archive_pb2.Segment(
        id=row.id,
        camera_id=row.camera_id,
        stream=row.stream,
        start_us=row.start_us,
        end_us=row.end_us,
        object_key=row.object_key,
        bytes=row.bytes,
        sha256=row.sha256,
        frames=row.frames,
        mask_version=row.mask_version,
    )


class ArchiveApi(archive_pb2_grpc.ArchiveServiceServicer):
    def __init__(self, engine: Engine, store: ObjectStore) -> None:
        self._engine = engine
        self._store = store

    async def ListSegments(self, request, context):  # type: ignore[no-untyped-def]
        if request.start_us >= request.end_us:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "start must be before end")
        rows = await asyncio.to_thread(
            index.overlapping,
            self._engine,
            request.camera_id,
            request.stream or "main",
            request.start_us,
            request.end_us,
        )
        return archive_pb2.ListSegmentsResponse(segments=[to_message(r) for r in rows])

    async def _row(self, segment_id: str, context) -> Segment:  # type: ignore[no-untyped-def]
        row = await asyncio.to_thread(index.get, self._engine, segment_id)
        if row is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown segment {segment_id!r}")
        return row

    async def GetSegment(self, request, context):  # type: ignore[no-untyped-def]
        return to_message(await self._row(request.segment_id, context))

    async def ReadSegment(self, request, context) -> AsyncIterator[archive_pb2.Chunk]:  # type: ignore[no-untyped-def]
        row = await self._row(request.segment_id, context)
        if request.offset > row.bytes or (request.offset == row.bytes and row.bytes > 0):
            await context.abort(grpc.StatusCode.OUT_OF_RANGE, f"offset {request.offset} is past the end ({row.bytes})")
        length = request.length or None
        chunks = self._store.iter_chunks(row.object_key, request.offset, length, CHUNK)
        done = object()
        while True:
            try:
                chunk = await asyncio.to_thread(next, chunks, done)
            except ObjectNotFound:
                await context.abort(grpc.StatusCode.NOT_FOUND, f"segment {row.id} has no object")
            except StoreUnavailable as exc:
                await context.abort(grpc.StatusCode.UNAVAILABLE, f"object store unavailable: {exc}")
            if chunk is done:
                return
            yield archive_pb2.Chunk(data=chunk)
