"""Ingest sources as a running service: a file plays in a loop at its own frame rate."""

import asyncio
import itertools
import time
from pathlib import Path

import nats
import pytest

from services.common import subjects
from services.common.pb.csu.v1.frame_pb2 import FramePacket
from tests.support.media import write_clip
from tests.support.platform import Platform

pytestmark = pytest.mark.e2e


async def collect(url: str, subject: str, seconds: float) -> list[FramePacket]:
    nc = await nats.connect(url)
    packets: list[FramePacket] = []

    async def on_msg(msg) -> None:  # type: ignore[no-untyped-def]
        packets.append(FramePacket.FromString(msg.data))

    await nc.subscribe(subject, cb=on_msg)
    await asyncio.sleep(seconds)
    await nc.close()
    return packets


def test_file_source_loops_at_its_own_frame_rate(platform: Platform, tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "clip.mp4", seconds=2, fps=10)  # 20 frames
    platform.set_cameras([{"id": "file-cam", "name": "file", "source": str(clip), "masks": []}])
    platform.start(["ingest"])
    time.sleep(1)
    packets = asyncio.run(collect(platform.env["CSU_NATS_URL"], subjects.raw(platform.nats_prefix, "file-cam"), 6))
    assert 50 <= len(packets) <= 70, len(packets)  # 10 fps for 6 s, well past the file's 20 frames
    times = [p.capture_time_us for p in packets]
    assert all(b > a for a, b in itertools.pairwise(times)), "capture time went backwards at a loop"
    gaps = [(b - a) / 1e6 for a, b in itertools.pairwise(times)]
    assert max(gaps) < 0.15 and min(gaps) > 0.05, (min(gaps), max(gaps))
    assert len({p.source_session for p in packets}) == 1  # looping is not a reconnect
    keyframes = [p for p in packets if p.keyframe]
    assert keyframes and all(p.codec.name == "h264" and p.codec.width == 320 for p in keyframes)
    assert [p.sequence for p in packets] == list(range(packets[0].sequence, packets[0].sequence + len(packets)))
