"""Date, time and camera identity on every recorded image (arrêté du 3 août 2007), in the stored
segments and the live view: against the service processes, a stored segment served by
`/segments/{id}/content` and the live view's fMP4 each carry a text track whose samples give the
Europe/Paris time and the camera's name for every second of video. The texts are read with FFmpeg's
own MP4 demuxer and mov_text decoder (PyAV), the expected ones computed here with zoneinfo; the
segment ledger still verifies over the objects that carry the track.
"""

import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from itertools import pairwise
from zoneinfo import ZoneInfo

import av
import httpx
import pytest
from websockets.sync.client import connect as ws_connect

from tests.e2e.test_backup_restore import csuctl
from tests.support.platform import Platform, wait_for

pytestmark = pytest.mark.e2e
CAMERA = "demo-1"
WHY = {"justification": "timed text check"}


TICKS_PER_S = 90_000


@dataclass(frozen=True)
class Cue:
    start: int  # 90 kHz ticks from the video's first frame
    end: int
    text: str


def tracks(data: bytes) -> tuple[list[tuple[str, str]], list[Cue], int]:
    """(type, codec) of each stream, the text samples, and where the video ends (ticks)."""
    with av.open(io.BytesIO(data)) as container:
        kinds = [(s.type, s.codec_context.name) for s in container.streams]
        assert container.streams.subtitles, f"no text track: {kinds}"
        text = container.streams.subtitles[0]
        assert text.time_base == Fraction(1, TICKS_PER_S)
        cues = []
        for packet in container.demux(text):
            if packet.size == 0:
                continue
            for subtitle in packet.decode():
                # mov_text decodes to an ASS event: "ReadOrder,Layer,Style,Name,L,R,V,Effect,Text".
                cues.append(
                    Cue(packet.pts, packet.pts + packet.duration, bytes(subtitle.ass).decode().split(",", 8)[8])
                )
    with av.open(io.BytesIO(data)) as container:
        video = container.streams.video[0]
        assert video.time_base == Fraction(1, TICKS_PER_S)
        end = max(p.pts + p.duration for p in container.demux(video) if p.size)
    return kinds, cues, end


def expected(moment_us: int, name: str) -> str:
    local = datetime.fromtimestamp(moment_us // 1_000_000, UTC).astimezone(ZoneInfo("Europe/Paris"))
    return f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()} \u00b7 {name}"


def check_cues(cues: list[Cue], origin_us: int, end: int, name: str, back_to_back: bool = True) -> None:
    """Each sample gives the Paris second it starts in and the camera's name, and lasts no longer
    than that second; back to back over the whole video (a segment), at least one a second."""
    assert cues, "no text sample"
    for cue in cues:
        # Its first instant (rounded up to the microsecond: a sample starts at or just after a second).
        first_us = origin_us - (-cue.start * 100 // 9)
        last_us = origin_us + (cue.end - 1) * 100 // 9
        assert cue.text == expected(first_us, name), (cue, origin_us)
        assert first_us // 1_000_000 == last_us // 1_000_000, (cue, origin_us)
    if back_to_back:
        assert cues[0].start == 0 and cues[-1].end == end, (cues[0], cues[-1], end)
        assert all(a.end == b.start for a, b in pairwise(cues)), cues
    assert len(cues) >= (cues[-1].end - cues[0].start) / TICKS_PER_S


def us(value: str) -> int:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def test_stored_segments_and_live_view_carry_paris_time_and_camera_name(platform: Platform) -> None:
    platform.env["CSU_SEGMENT_DURATION_S"] = "3"
    platform.start(["ingest", "masking", "archive", "gateway"])  # the demo cameras
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
