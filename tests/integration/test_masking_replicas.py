"""Masking replicas share cameras through per-camera leases on real NATS: one owner per camera, and
a dead replica's cameras are masked again by another within ~15 s (never by two at once). A
camera's sub stream is masked by its holder like the main stream."""

import asyncio
import json
import time
from pathlib import Path

import av
import nats
import numpy as np
import pytest

from services.common import db, rpc, subjects
from services.common.clock import SystemClock
from services.common.leases import overlaps
from services.common.pb.csu.v1 import ingest_pb2_grpc
from services.common.pb.csu.v1.frame_pb2 import FramePacket
from services.common.settings import Settings
from services.masking.main import catalogue_masks
from services.masking.node import MaskingNode
from services.masking.store import MaskStore
from tests.support.frames import T0_US, h264_packets
from tests.support.platform import until
from tests.support.servers import free_port, nats_prefix

CAMERAS = [f"cam-{n}" for n in range(4)]
TAKEOVER_S = 15.0


@pytest.fixture
def settings(database_url: str, nats_url: str, tmp_path: Path) -> Settings:
    cameras = tmp_path / "cameras.json"
    square = [[0.25, 0.25], [0.75, 0.25], [0.75, 0.75], [0.25, 0.75]]
    cameras.write_text(json.dumps([{"id": c, "name": c, "source": "demo://plaza", "masks": [square]} for c in CAMERAS]))
    return Settings(  # type: ignore[call-arg]
        database_url=database_url, data_dir=tmp_path, nats_url=nats_url, nats_prefix=nats_prefix(),
        cameras_file=cameras, lease_ttl_s=4, x264_preset="ultrafast", x264_threads=1,
        ingest_grpc=f"127.0.0.1:{free_port()}",  # nobody there: the replicas use the catalogue
    )  # fmt: skip


async def _node(settings: Settings, store: MaskStore, name: str) -> tuple[MaskingNode, nats.NATS]:
    nc = await nats.connect(settings.nats_url)
    ingest = ingest_pb2_grpc.IngestServiceStub(rpc.channel(settings.ingest_grpc))
    node = MaskingNode(settings, store, nc, ingest, replica_id=name)
    await node.start()
    return node, nc


async def test_cameras_are_shared_and_taken_over_when_a_replica_dies(settings: Settings) -> None:
    engine = db.make_engine(settings)
    db.migrate("masking", engine)
    store = MaskStore(engine, SystemClock())
    store.import_catalogue(catalogue_masks(settings))
    source = {c: h264_packets(100, camera_id=c, session=f"s-{c}") for c in CAMERAS}
    masked: dict[str, list[FramePacket]] = {c: [] for c in CAMERAS}
    feeder = await nats.connect(settings.nats_url)

    async def collect(msg) -> None:  # type: ignore[no-untyped-def]
        packet = FramePacket.FromString(msg.data)
        masked[packet.camera_id].append(packet)

    await feeder.subscribe(subjects.masked(settings.nats_prefix, "*", "main"), cb=collect)
    stop = asyncio.Event()

    async def feed() -> None:
        # Each camera plays its 10 s of packets in a loop at 20 fps, capture times always increasing.
        n = 0
        while not stop.is_set():
            for camera in CAMERAS:
                packet = FramePacket()
                packet.CopyFrom(source[camera][n % 100])
                packet.capture_time_us = T0_US + n * 50_000
                await feeder.publish(subjects.raw(settings.nats_prefix, camera, "main"), packet.SerializeToString())
            n += 1
            await asyncio.sleep(0.05)

    feeding = asyncio.create_task(feed())
    a, nc_a = await _node(settings, store, "replica-a")
    b, nc_b = await _node(settings, store, "replica-b")
    try:
        await until(lambda: set(a.lanes) | set(b.lanes) == set(CAMERAS) and a.lanes and b.lanes, 30, "a fair share")
        assert not set(a.lanes) & set(b.lanes), "a camera is held by two replicas"
        await until(lambda: all(len(masked[c]) > 20 for c in CAMERAS), 60, "every camera masked")
        for camera in CAMERAS:
            times = [p.capture_time_us for p in masked[camera]]
            assert len(times) == len(set(times)), f"{camera}: frames masked twice (two owners)"
            assert {p.mask_version for p in masked[camera]} == {"v1"}

        # Replica A dies: no clean hand-over, its leases must expire first.
        orphaned = sorted(a.lanes)
        for task in a._tasks:
            task.cancel()
        for lane in list(a.lanes.values()):
            lane.task.cancel()
        await nc_a.close()
        died = time.monotonic()
        counts = {c: len(masked[c]) for c in orphaned}
        await until(lambda: set(b.lanes) == set(CAMERAS), TAKEOVER_S + 10, "replica B holding every camera")
        await until(lambda: all(len(masked[c]) > counts[c] + 10 for c in orphaned), 30, "orphans masked again")
        assert time.monotonic() - died < TAKEOVER_S + 10
        for camera in CAMERAS:
            times = [p.capture_time_us for p in masked[camera]]
            assert len(times) == len(set(times)), f"{camera}: frames masked twice"
        assert overlaps(await b.leases.history()) == []
    finally:
        stop.set()
        feeding.cancel()
        await b.stop()
        await nc_b.close()
        await feeder.close()
        engine.dispose()


async def test_the_sub_stream_is_masked_like_the_main_stream(settings: Settings) -> None:
    engine = db.make_engine(settings)
    db.migrate("masking", engine)
    store = MaskStore(engine, SystemClock())
    store.import_catalogue(catalogue_masks(settings))
    camera = CAMERAS[0]
    streams = {"main": (320, 240), "sub": (176, 144)}
    source = {s: h264_packets(40, camera_id=camera, session=f"s-{s}", size=size) for s, size in streams.items()}
    masked: dict[str, list[FramePacket]] = {s: [] for s in streams}
    feeder = await nats.connect(settings.nats_url)

    async def collect(msg) -> None:  # type: ignore[no-untyped-def]
        packet = FramePacket.FromString(msg.data)
        masked[packet.stream].append(packet)

    for stream in streams:
        await feeder.subscribe(subjects.masked(settings.nats_prefix, camera, stream), cb=collect)
    node, nc = await _node(settings, store, "replica-sub")
    try:
        await until(lambda: camera in node.lanes and camera in node.sub_lanes, 30, f"{camera} held")
        for n in range(40):
            for stream in streams:
                packet = FramePacket()
                packet.CopyFrom(source[stream][n])
                packet.stream = stream
                await feeder.publish(subjects.raw(settings.nats_prefix, camera, stream), packet.SerializeToString())
            await asyncio.sleep(0.02)
        await until(lambda: all(len(masked[s]) >= 30 for s in streams), 60, "both streams masked")
        for stream, (width, height) in streams.items():
            assert {p.mask_version for p in masked[stream]} == {"v1"}, stream
            decoder = av.CodecContext.create("h264", "r")
            frames = [f for p in masked[stream] for f in decoder.decode(av.Packet(p.data))]
            image = frames[-1].to_ndarray(format="rgb24").astype(int)
            assert image.shape == (height, width, 3)
            # The masked square (25 %..75 %, with the margin) is flat grey on either stream.
            inner = image[int(height * 0.3) : int(height * 0.7), int(width * 0.3) : int(width * 0.7)]
            assert np.abs(inner - 128).max() <= 8, stream
            assert image.std() > 20, f"{stream}: the rest of the picture is there"
    finally:
        await node.stop()
        await nc.close()
        await feeder.close()
        engine.dispose()
