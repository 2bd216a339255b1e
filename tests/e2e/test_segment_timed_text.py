"""Date, time and camera identity on every recorded image (arrêté du 3 août 2007), in the stored
segments and the live view: against the service processes, a stored segment served by
`/segments/{id}/content` and the live view's fMP4 each carry a text track whose samples give the
Europe/Paris time and the camera's name for every second of video. The texts are read with FFmpeg's
own MP4 demuxer and mov_text decoder (PyAV), the expected ones computed here with zoneinfo; the
segment ledger still verifies over the objects that carry the track.
"""

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from websockets.sync.client import connect as ws_connect

from tests.e2e.test_backup_restore import csuctl
from tests.support.platform import Platform, wait_for
from tests.support.timed_text import check_cues, tracks

pytestmark = pytest.mark.e2e
CAMERA = "demo-1"
WHY = {"justification": "timed text check"}


def us(value: str) -> int:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def test_stored_segments_and_live_view_carry_paris_time_and_camera_name(platform: Platform) -> None:
    platform.env["CSU_SEGMENT_DURATION_S"] = "3"
    # Ingest first: the archive learns the cameras' names as it starts, before its first segment
    # (a segment opened before it knows them names its camera by its id).
    platform.start(["ingest"])  # the demo cameras
    platform.start(["masking", "archive", "gateway"])
    api = platform.client("supervisor")
    api.timeout = httpx.Timeout(60)
    name = api.get(f"/api/v1/cameras/{CAMERA}").json()["name"]
    assert name and not name.isascii()  # "Démo — parvis": the name is written as UTF-8
    segments = wait_for(
        lambda: (s := api.get(f"/api/v1/cameras/{CAMERA}/segments").json()) and len(s) >= 2 and s,
        120,
        "two stored segments",
    )

    for segment in segments[:2]:
        content = api.get(f"/api/v1/segments/{segment['id']}/content", params=WHY)
        assert content.status_code == 200, content.text
        kinds, cues, span = tracks(content.content)
        assert kinds == [("video", "h264"), ("subtitle", "mov_text")], kinds
        origin_us = us(segment["start"])
        check_cues(cues, origin_us, span, name)
        # The segment's end as indexed is where its video (and so its text) ends.
        assert abs(us(segment["end"]) - origin_us - span * 100 // 9) <= 1
        # The served object is the stored one, hashed with its text track.
        assert len(content.content) == segment["bytes"]

    # The ledger's hash chain still verifies over these objects.
    wait_for(
        lambda: (
            json.loads(csuctl(platform.env, "segments", "verify", CAMERA, "--json").stdout or "{}").get(
                "segments_checked", 0
            )
            >= 2
        ),
        90,
        "two segments in the ledger",
    )
    verified = csuctl(platform.env, "segments", "verify", CAMERA, "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    report = json.loads(verified.stdout)
    assert report["ok"] is True and report["problems"] == [], report

    # The live view: its fMP4 carries the same track, from the capture time the page is told.
    url = platform.gateway.replace("http://", "ws://") + f"/api/v1/cameras/{CAMERA}/live/stream"
    chunks: list[bytes] = []
    with ws_connect(url, open_timeout=10, additional_headers={"Authorization": api.headers["Authorization"]}) as ws:
        init = json.loads(ws.recv(timeout=10))
        deadline = datetime.now(UTC) + timedelta(seconds=3)
        while datetime.now(UTC) < deadline:
            chunks.append(ws.recv(timeout=10))
    kinds, cues, span = tracks(b"".join(chunks))
    assert kinds == [("video", "h264"), ("subtitle", "mov_text")], kinds
    # Live fragments last the nominal frame time, not until the next capture: not back to back.
    check_cues(cues, init["capture_origin_us"], span, name, back_to_back=False)
