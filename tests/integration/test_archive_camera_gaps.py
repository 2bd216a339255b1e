"""Gaps named from camera status events, on real NATS (JetStream), the S3 server and the test
database: a camera that went offline, then came back, leaves a "camera_offline" gap on its timeline;
one taken out for maintenance a "camera_maintenance" gap, open until it streams again; one whose
stream was measured below the norms has those recorded spans marked. Events published while no
archive runs are applied when one starts (durable consumer)."""

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest

from services.archive import camera_gaps
from services.common import bus
from services.common.pb.csu.v1 import archive_pb2
from services.common.pb.csu.v1.events_pb2 import CameraStatusChanged
from tests.support.archive import T0_US, ArchiveHarness, running_archive
from tests.support.servers import S3Server, nats_prefix

S = 1_000_000


@pytest.fixture
async def archive(tmp_path: Path, database_url: str, s3: S3Server) -> AsyncIterator[ArchiveHarness]:
    async with running_archive(tmp_path, database_url, s3) as h:
        yield h


async def test_status_events_name_the_gaps(archive: ArchiveHarness, nats_url: str) -> None:
    h, prefix = archive, nats_prefix()
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await bus.ensure_events_stream(js, prefix)

    async def status(camera: str, value: str, since_us: int, reason: str = "") -> None:
        event = CameraStatusChanged(camera_id=camera, status=value, reason=reason, since_us=since_us)
        await bus.publish_event(js, prefix, "camera.status", event.SerializeToString())

    # Recorded 0-10 s and 40-50 s; the camera was unreachable from 10 s to 40 s (published before
    # any archive consumes: the durable consumer picks them up).
    await h.record("cam-g", T0_US, 10)
    await h.record("cam-g", T0_US + 40 * S, 10)
    await status("cam-g", "offline", T0_US + 10 * S, "rtsp://***@10.0.0.7/s: Connection refused")
    await status("cam-g", "connecting", T0_US + 20 * S)
    await status("cam-g", "offline", T0_US + 21 * S, "rtsp://***@10.0.0.7/s: Connection refused")  # same hole
    await status("cam-g", "online", T0_US + 40 * S)
    # A camera restarted for a new URL: the hole until it streams again is named.
    await h.record("cam-r", T0_US, 10)
    await h.record("cam-r", T0_US + 11 * S, 9)
    await status("cam-r", "connecting", T0_US + 10 * S, "restarting: main_url changed")
    await status("cam-r", "online", T0_US + 11 * S)
    # Another camera is put in maintenance and stays there.
    await status("cam-m", "offline", T0_US + 5 * S, "camera is in maintenance")
    # A camera measured below the norms records all the same: its timeline marks the spans (not gaps).
    await h.record("cam-n", T0_US, 8)
    await h.record("cam-n", T0_US + 12 * S, 28)
    short = "picture 320x240 below the declared 704x576; below the arrêté du 3 août 2007 minimum for stored streams"
    await status("cam-n", "non_compliant", T0_US + 2 * S, short)
    await status("cam-n", "offline", T0_US + 8 * S, "rtsp://***@10.0.0.9/s: Connection refused")
    await status("cam-n", "connecting", T0_US + 11 * S)
    await status("cam-n", "online", T0_US + 12 * S)
    await status("cam-n", "non_compliant", T0_US + 20 * S, "frame rate below the declared 10 fps")
    await status("cam-n", "connecting", T0_US + 25 * S)  # a reconnect within one finding: one span
    await status("cam-n", "non_compliant", T0_US + 26 * S, "frame rate below the declared 10 fps")
    await status("cam-n", "degraded", T0_US + 30 * S, "sub stream offline: timeout")
    # Malformed payloads do not block the ones behind them.
    await bus.publish_event(js, prefix, "camera.status", b"\xff\x00 not a protobuf")
    await status("cam-x", "offline", T0_US, "authorisation expired (PREF-1, on 2026-11-01)")

    stop = asyncio.Event()
    consumer = asyncio.create_task(camera_gaps.consume(js, prefix, h.engine, h.clock, stop))
    try:

        async def timeline_once(camera: str, end_s: int, reasons: list[str]) -> archive_pb2.Timeline:
            """The camera's timeline from T0 to T0 + end_s, once its gaps have these reasons (30 s at most)."""
            request = archive_pb2.TimelineRequest(camera_id=camera, start_us=T0_US, end_us=T0_US + end_s * S)
            deadline = time.monotonic() + 30
            timeline = await h.stub.GetTimeline(request)
            while [g.reason for g in timeline.gaps] != reasons and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                timeline = await h.stub.GetTimeline(request)
            return timeline

        [gap] = (await timeline_once("cam-g", 50, ["camera_offline"])).gaps
        assert gap.reason == "camera_offline" and "Connection refused" in gap.detail
        assert T0_US + 9 * S <= gap.start_us <= T0_US + 11 * S and T0_US + 39 * S <= gap.end_us <= T0_US + 41 * S

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            timeline = await h.stub.GetTimeline(
                archive_pb2.TimelineRequest(camera_id="cam-n", start_us=T0_US, end_us=T0_US + 40 * S)
            )
            if len(timeline.marks) == 2 and timeline.marks[1].end_us < T0_US + 40 * S:
                break
            await asyncio.sleep(0.2)
        assert [(m.reason, m.start_us, m.end_us) for m in timeline.marks] == [
            ("stream_non_compliant", T0_US + 2 * S, T0_US + 8 * S),
            ("stream_non_compliant", T0_US + 20 * S, T0_US + 30 * S),
        ]
        assert timeline.marks[0].detail == short
        # The hole is the offline one, not named after the mark it touches; the rest is recorded.
        assert [(g.reason, g.start_us, g.end_us) for g in timeline.gaps] == [
            ("camera_offline", T0_US + 8 * S, T0_US + 12 * S)
        ]
        assert [(c.start_us, c.end_us) for c in timeline.covered] == [
            (T0_US, T0_US + 8 * S),
            (T0_US + 12 * S, T0_US + 40 * S),
        ]

        timeline = await timeline_once("cam-r", 20, ["camera_reconfigured"])
        assert [(g.reason, g.detail) for g in timeline.gaps] == [
            ("camera_reconfigured", "restarting: main_url changed")
        ]

        # Open gaps run to the end of the range asked ("offline since").
        for camera, reason in (("cam-m", "camera_maintenance"), ("cam-x", "authorisation_expired")):
            timeline = await timeline_once(camera, 60, [reason])
            assert [(g.reason, g.end_us) for g in timeline.gaps] == [(reason, T0_US + 60 * S)], camera
    finally:
        stop.set()
        await asyncio.wait_for(consumer, 10)
        await nc.close()


def test_reasons_follow_ingests_words() -> None:
    assert camera_gaps.reason_of("rtsp://***@h/s: Connection refused") == "camera_offline"
    assert camera_gaps.reason_of("no image for more than 10 s") == "camera_offline"
    assert camera_gaps.reason_of("camera is in maintenance") == "camera_maintenance"
    assert camera_gaps.reason_of("no prefectoral authorisation: the camera may not record") == "authorisation_expired"
    assert camera_gaps.reason_of("restarting: main_url changed") == "camera_reconfigured"
