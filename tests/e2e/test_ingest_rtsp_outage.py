"""A real RTSP camera that freezes, then dies: offline within 15 s each time (watchdog, then EOF),
back online when it returns, recording resumes, and the timeline shows both gaps."""

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
import pytest
from nats.js.api import DeliverPolicy

from services.common import subjects
from services.common.clock import to_us
from services.common.pb.csu.v1.events_pb2 import CameraStatusChanged
from tests.support.media import VTEST_WINDOWS
from tests.support.platform import Platform, wait_for
from tests.support.rtsp import RtspCamera, rtsp_server_available

pytestmark = pytest.mark.e2e
CAMERA = "cam-outage"
OFFLINE_WITHIN_S = 15.0


async def status_events(platform: Platform) -> list[CameraStatusChanged]:
    nc = await nats.connect(platform.env["CSU_NATS_URL"])
    try:
        sub = await nc.jetstream().subscribe(
            subjects.event(platform.nats_prefix, "camera.status"),
            stream=subjects.events_stream(platform.nats_prefix),
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.ALL,
        )
        found = []
        try:
            while True:
                event = CameraStatusChanged.FromString((await sub.next_msg(timeout=2)).data)
                if event.camera_id == CAMERA:
                    found.append(event)
        except nats.errors.TimeoutError:
            return found
    finally:
        await nc.close()


def now_us() -> int:
    return time.time_ns() // 1000


def test_freeze_and_death_show_offline_within_15_s_and_gaps_in_the_timeline(
    platform: Platform, vtest_h264: Path
) -> None:
    problem = rtsp_server_available()
    assert problem is None, problem
    platform.env["CSU_SEGMENT_DURATION_S"] = "3"
    platform.env["CSU_RECONNECT_MAX_S"] = "2"
    with RtspCamera(vtest_h264, loop=True) as camera:
        platform.set_cameras([{"id": CAMERA, "name": "Parking", "source": camera.url, "masks": [VTEST_WINDOWS]}])
        started_us = now_us()
        platform.start(["ingest", "masking", "archive", "gateway"])
        api = platform.client("operator")

        def status() -> dict:
            return next(c for c in api.get("/api/v1/cameras").json() if c["id"] == CAMERA)

        def segments_after(us: int) -> list:
            listed = api.get(f"/api/v1/cameras/{CAMERA}/segments").json()
            return [s for s in listed if to_us(datetime.fromisoformat(s["start"])) > us]

        wait_for(lambda: status()["status"] == "online", 60, "the camera online")
        wait_for(lambda: segments_after(0), 60, "a first segment")

        frozen_us = now_us()
        camera.freeze()  # a hung camera: sockets stay open, only the watchdog can tell
        frozen = wait_for(lambda: (s := status())["status"] == "offline" and s, 40, "the frozen camera offline")
        assert "watchdog" in frozen["status_reason"], frozen
        camera.thaw()
        thawed_us = now_us()
        wait_for(lambda: status()["status"] == "online", 60, "the camera back after thawing")
        wait_for(lambda: segments_after(thawed_us), 60, "recording after the freeze")

        killed_us = now_us()
        camera.kill()  # a dead camera: the connection drops at once
        dead = wait_for(lambda: (s := status())["status"] == "offline" and s, 40, "the dead camera offline")
        assert dead["status_reason"] and "watchdog" not in dead["status_reason"], dead
        wait_for(lambda: now_us() > killed_us + 6_000_000, 20, "a 6 s outage")
        restarted_us = now_us()
        camera.start()
        wait_for(lambda: status()["status"] == "online", 60, "the camera back after restarting")
        wait_for(lambda: segments_after(restarted_us), 60, "recording after the restart")

    # When ingest declared each outage, from the durable status events.
    events = asyncio.run(status_events(platform))
    offline = [e for e in events if e.status == "offline"]
    after_freeze = next(e for e in offline if e.since_us > frozen_us)
    after_kill = next(e for e in offline if e.since_us > killed_us)
    assert after_freeze.since_us - frozen_us <= OFFLINE_WITHIN_S * 1e6, (after_freeze.since_us - frozen_us) / 1e6
    assert after_kill.since_us - killed_us <= OFFLINE_WITHIN_S * 1e6, (after_kill.since_us - killed_us) / 1e6
    assert [e.status for e in events].count("online") >= 3

    # The timeline shows the two outages as gaps: nothing recorded inside either, recording around them.
    # (2 s of slack at each end: the camera's own latency and the probe when a stream reopens.)
    span = {
        "start": datetime.fromtimestamp(started_us / 1e6, UTC).isoformat(),
        "end": (datetime.now(UTC) + timedelta(seconds=1)).isoformat(),
    }

    def problems() -> list[str]:
        timeline = api.get(f"/api/v1/cameras/{CAMERA}/timeline", params=span).json()
        covered = [
            (to_us(datetime.fromisoformat(c["start"])), to_us(datetime.fromisoformat(c["end"])))
            for c in timeline["covered"]
        ]
        gaps = [
            (to_us(datetime.fromisoformat(g["start"])), to_us(datetime.fromisoformat(g["end"])))
            for g in timeline["gaps"]
        ]
        found = []
        for what, begin, end in (("freeze", frozen_us, thawed_us), ("death", killed_us, restarted_us)):
            inside = [(s, e) for s, e in covered if s < end - 2_000_000 and e > begin + 2_000_000]
            if inside:
                found.append(f"footage recorded during the {what}: {inside}")
            if not any(s <= begin + 2_000_000 and e >= begin + 5_000_000 for s, e in gaps):
                found.append(f"no gap from the {what} at {begin}: {gaps}")
            if not any(e <= begin + 2_000_000 for _, e in covered):
                found.append(f"nothing recorded before the {what} at {begin}: {covered}")
            if not any(s >= end - 2_000_000 for s, _ in covered):
                found.append(f"nothing recorded after the {what} ended at {end}: {covered}")
        return found

    # The archive may still be storing the last segments: give it time, then show what is wrong.
    try:
        wait_for(lambda: not problems(), 30, "the timeline to show both outages")
    except AssertionError:
        assert problems() == []
