"""No sound, provably: a real RTSP camera that sends an audio track (G.711, as cameras with a
microphone do) alongside its video, read by ingest's own RTSP client (RTSP over TCP) and by FFmpeg
(over UDP); nothing of the sound reaches storage, the live view, playback clips or the
requisition's extraction (the clip an export package carries). Each MP4 is opened with PyAV.

The camera's own stream is opened first: its audio track is there, so the test can fail.
"""

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import httpx
import pytest
from websockets.sync.client import connect as ws_connect

from tests.support.archive import s3_store
from tests.support.media import write_clip
from tests.support.platform import Platform, wait_for
from tests.support.rtsp import RtspCamera, rtsp_server_available
from tests.support.servers import S3Server, unique

pytestmark = pytest.mark.e2e
CAMERAS = {"cam-sound-tcp": "tcp", "cam-sound-udp": "udp"}


@pytest.fixture
def camera_with_sound(tmp_path: Path) -> RtspCamera:
    problem = rtsp_server_available()
    assert problem is None, problem
    clip = write_clip(tmp_path / "scene.mp4", seconds=4, fps=10, size=(352, 288))
    with RtspCamera(clip, loop=True, audio=True) as camera:
        yield camera


def _stream_kinds(data: bytes) -> list[str]:
    with av.open(io.BytesIO(data)) as container:
        return [s.type for s in container.streams]


def test_a_camera_that_sends_sound_leaves_none_anywhere(
    platform: Platform, camera_with_sound: RtspCamera, s3: S3Server
) -> None:
    with av.open(camera_with_sound.url, options={"rtsp_transport": "tcp"}, timeout=10) as source:
        assert sorted(s.type for s in source.streams) == ["audio", "video"]  # the camera does send sound

    buckets = {name: unique(f"{name[:3]}-") for name in ("extractions", "documents", "exports")}
    platform.env |= {f"CSU_BUCKET_{name.upper()}": bucket for name, bucket in buckets.items()}
    platform.env["CSU_SEGMENT_DURATION_S"] = "2"
    platform.set_cameras(
        [
            {
                "id": camera_id,
                "name": camera_id,
                "source": camera_with_sound.url,
                "transport": transport,
                "masks": [],
                "profile": {"width": 352, "height": 288, "fps": 10},
            }
            for camera_id, transport in CAMERAS.items()
        ]
    )
    platform.start(["ingest", "masking", "archive", "requisition", "gateway"], timeout=120)
    supervisor = platform.client("supervisor")
    supervisor.timeout = httpx.Timeout(120)
    why = {"justification": "no-audio test"}

    for camera_id in CAMERAS:
        # Storage: every stored segment is video and its timestamp text, nothing else.
        segments = wait_for(
            lambda c=camera_id: (s := supervisor.get(f"/api/v1/cameras/{c}/segments").json()) and len(s) >= 2 and s,
            90,
            f"two stored segments of {camera_id}",
        )
        for segment in segments:
            content = supervisor.get(f"/api/v1/segments/{segment['id']}/content", params=why)
            kinds = _stream_kinds(content.content)
            assert content.status_code == 200 and kinds == ["video", "subtitle"], (camera_id, kinds)

        # Playback: a clip of the range has the video and the timestamp subtitles, no sound.
        start = datetime.fromisoformat(segments[0]["start"])
        end = datetime.fromisoformat(segments[1]["end"])
        clip = supervisor.get(
            f"/api/v1/cameras/{camera_id}/clip",
            params={"start": start.isoformat(), "end": end.isoformat()} | why,
        )
        assert clip.status_code == 200, clip.text
        kinds = _stream_kinds(clip.content)
        assert "video" in kinds and "audio" not in kinds, kinds

    # The live view: the fMP4 over WebSocket carries one video track and its timestamp text.
    url = platform.gateway.replace("http://", "ws://") + "/api/v1/cameras/cam-sound-tcp/live/stream"
    chunks: list[bytes] = []
    with ws_connect(
        url, open_timeout=10, additional_headers={"Authorization": supervisor.headers["Authorization"]}
    ) as ws:
        ws.recv(timeout=10)  # the stream's description (codec)
        deadline = datetime.now(UTC) + timedelta(seconds=2)
        while datetime.now(UTC) < deadline:
            chunks.append(ws.recv(timeout=10))
    assert _stream_kinds(b"".join(chunks)) == ["video", "subtitle"]

    # A requisition's extraction: the clip its export package carries is video (and subtitles) only.
    start = datetime.fromisoformat(segments[0]["start"])
    created = supervisor.post(
        "/api/v1/requisitions",
        json={
            "requesting_service": "Commissariat central",
            "officer": "Brigadier Morel",
            "case_reference": "PV 2026/4242",
            "reason": "vol à l'arraché",
            "channel": "email",
            "ranges": [
                {
                    "camera_id": "cam-sound-udp",
                    "start": start.isoformat(),
                    "end": (datetime.fromisoformat(segments[1]["end"]) - timedelta(milliseconds=200)).isoformat(),
                }
            ],
        },
    )
    assert created.status_code == 201, created.text
    extracted = supervisor.post(f"/api/v1/requisitions/{created.json()['id']}/extract")
    assert extracted.status_code == 200, extracted.text
    part = extracted.json()["parts"][0]
    buffer = s3_store(s3, buckets["extractions"])
    keys = [i.key for i in buffer.list(f"req/{created.json()['id']}/")]
    clips = [k for k in keys if "/clips/" in k]
    assert len(clips) == 1 and len(keys) == len(part["segments"]) + 1, keys
    kinds = _stream_kinds(buffer.get(clips[0]))
    assert "video" in kinds and "audio" not in kinds, kinds
    for key in keys:
        assert "audio" not in _stream_kinds(buffer.get(key)), key
