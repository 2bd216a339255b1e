"""Redaction for citizens' access on vtest.avi, end to end: an operator selects the requester (a
man crossing the car park) on one frame; masking tracks him through the recorded range and
writes a new clip where he stays visible and nothing else keeps any detail. The original
recording is untouched, jobs can be cancelled, results expire, bad selections are refused."""

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import numpy as np
import pytest

from services.common.clock import from_us, to_us
from services.common.objectstore.s3 import S3Store
from services.masking.redaction.effects import KEEP_MARGIN, block_size
from services.masking.redaction.tracking import iou
from tests.support.media import VTEST_WINDOWS, VTEST_WINDOWS_PX, decode_rgb, polygon_mask, psnr
from tests.support.platform import Platform, wait_for
from tests.support.servers import S3Server, free_port, unique

pytestmark = pytest.mark.e2e
CAMERA = "cam-parking"
W, H = 768, 576
FRAME_US = 100_000
# The requester: the man in a dark jacket and jeans who walks up the car park, annotated by hand
# on vtest.avi (frame index -> x0, y0, x1, y1 in pixels).
TRUTH = {
    50: (668, 257, 714, 373),
    60: (616, 234, 650, 342),
    70: (588, 210, 622, 309),
    80: (568, 190, 600, 284),
    90: (572, 172, 597, 261),
    100: (591, 153, 617, 234),
    110: (618, 140, 645, 218),
}
FIRST, LAST = 48, 112


def _iso(us: int) -> str:
    return from_us(us).isoformat()


def _norm(box: tuple[int, int, int, int]) -> dict[str, float]:
    x0, y0, x1, y1 = box
    return {"x": x0 / W, "y": y0 / H, "width": (x1 - x0) / W, "height": (y1 - y0) / H}


@pytest.fixture
def started(platform: Platform, vtest_h264: Path) -> Platform:
    platform.env["CSU_MASKING_GRPC"] = f"127.0.0.1:{free_port()}"
    platform.env["CSU_SEGMENT_DURATION_S"] = "4"
    platform.env["CSU_BUCKET_REDACTIONS"] = unique("red-")
    camera = {"id": CAMERA, "name": "Parking (vtest)", "source": str(vtest_h264), "masks": [VTEST_WINDOWS]}
    platform.set_cameras([camera])
    platform.start(["ingest", "masking", "archive", "gateway"])
    return platform


def _vtest_frames(path: Path, count: int) -> list[np.ndarray]:
    frames = []
    with av.open(str(path)) as c:
        for frame in c.decode(c.streams.video[0]):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) >= count:
                break
    return frames


def test_requester_stays_visible_and_nothing_else_keeps_detail(
    started: Platform, vtest_h264: Path, s3: S3Server
) -> None:
    platform = started
    operator, clerk = platform.client("operator"), platform.client("clerk")
    source = _vtest_frames(vtest_h264, 200)
    outside_windows = ~polygon_mask(VTEST_WINDOWS_PX, (W, H), grow_px=16)

    # Where the recording is in the footage: its first frame against vtest's frames.
    first = wait_for(lambda: operator.get(f"/api/v1/cameras/{CAMERA}/segments").json(), 90, "a first segment")[0]
    why = {"justification": "finding the requester for a citizen's access request"}
    first_frame = decode_rgb(operator.get(f"/api/v1/segments/{first['id']}/content", params=why).content)[0]
    k0 = int(np.argmax([psnr(first_frame, s, outside_windows) for s in source[:FIRST]]))
    t0 = to_us(datetime.fromisoformat(first["start"])) - k0 * FRAME_US

    def at(frame: int) -> int:
        return t0 + frame * FRAME_US

    wait_for(lambda: to_us(datetime.now(UTC)) > at(LAST) + 6_000_000, 60, "the requester's walk to be recorded")
    start, end = at(FIRST) - FRAME_US // 2, at(LAST) + FRAME_US // 2
    base = {"start": _iso(start), "end": _iso(end), "request_ref": "DA-2026-117"}
    jobs = f"/api/v1/cameras/{CAMERA}/redactions"

    # Bad selections are refused, nothing queued.
    outside = base | {"selection": [{"time": _iso(at(50)), "x": 0.9, "y": 0.4, "width": 0.2, "height": 0.2}]}
    answer = operator.post(jobs, json=outside)
    assert answer.status_code == 422 and "outside the frame" in answer.json()["detail"]
    late = base | {"selection": [{"time": _iso(end + 5_000_000)} | _norm(TRUTH[50])]}
    answer = operator.post(jobs, json=late)
    assert answer.status_code == 422 and "outside the range" in answer.json()["detail"]
    future = base | {
        "end": _iso(to_us(datetime.now(UTC)) + 60_000_000),
        "selection": [{"time": _iso(at(50))} | _norm(TRUTH[50])],
    }
    assert operator.post(jobs, json=future).status_code == 422
    assert operator.post(jobs, json=base | {"selection": []}).status_code == 422
    assert (
        operator.post(
            jobs, json=base | {"mode": "faces", "selection": [{"time": _iso(at(50))} | _norm(TRUTH[50])]}
        ).status_code
        == 422
    )
    assert clerk.post(jobs, json=base | {"selection": [{"time": _iso(at(50))} | _norm(TRUTH[50])]}).status_code == 403
    assert operator.get(jobs).json() == []

    # The operator draws the requester once; the job tracks him through the range.
    created = operator.post(jobs, json=base | {"selection": [{"time": _iso(at(50))} | _norm(TRUTH[50])]})
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]
    job = wait_for(
        lambda: (j := operator.get(f"/api/v1/redactions/{job_id}").json())["status"] in ("done", "failed") and j,
        240,
        "the redaction to finish",
    )
    assert job["status"] == "done", job["error"]
    assert job["frames"] == LAST - FIRST + 1 and job["progress"] == 1.0
    track = {to_us(datetime.fromisoformat(b["time"])): b for b in job["track"]}
    # The requester is followed: the tracked box overlaps the annotated truth.
    for frame, truth in TRUTH.items():
        box = track[min(track, key=lambda t: abs(t - at(frame)))]
        assert box["x"] is not None, f"frame {frame}: the requester was lost"
        tracked = (box["x"] * W, box["y"] * H, (box["x"] + box["width"]) * W, (box["y"] + box["height"]) * H)
        assert iou(tracked, truth) >= 0.5, f"frame {frame}: tracked {tracked} vs truth {truth}"

    # The clip: H.264, one frame per recorded frame; the requester as recorded, the rest without detail.
    # Staff have no path to it (only a paired kiosk session plays it): the test reads the store.
    assert clerk.get(f"/api/v1/redactions/{job_id}/content").status_code == 404
    assert operator.get(f"/api/v1/redactions/{job_id}/content").status_code == 404
    store = S3Store(s3.endpoint, s3.access_key, s3.secret_key, "us-east-1", platform.env["CSU_BUCKET_REDACTIONS"])
    clip = store.get(f"redactions/{CAMERA}/{job_id}.mp4")
    with av.open(io.BytesIO(clip)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
    frames = decode_rgb(clip)
    assert len(frames) == job["frames"]
    b = block_size(W)
    detail_before = detail_after = 0
    for n, (image, (t, box)) in enumerate(zip(frames, sorted(track.items()), strict=True)):
        original = source[k0_frame(t, t0)]
        keep = np.zeros((H, W), bool)
        if box["x"] is not None:
            x0, y0 = box["x"] * W, box["y"] * H
            x1, y1 = x0 + box["width"] * W, y0 + box["height"] * H
            dx, dy = (x1 - x0) * KEEP_MARGIN + b, (y1 - y0) * KEEP_MARGIN + b
            keep[max(0, int(y0 - dy)) : int(y1 + dy), max(0, int(x0 - dx)) : int(x1 + dx)] = True
            inner = np.zeros((H, W), bool)
            inner[int(y0) + 2 : int(y1) - 2, int(x0) + 2 : int(x1) - 2] = True
            assert psnr(image, original, inner & outside_windows) >= 25, f"frame {n}: the requester is not clear"
        luma = image.astype(float).mean(axis=2)
        grey = original.astype(float).mean(axis=2)
        for y in range(0, H - b + 1, b):
            for x in range(0, W - b + 1, b):
                if keep[y : y + b, x : x + b].any():
                    continue
                detail_after = max(detail_after, luma[y + 2 : y + b - 2, x + 2 : x + b - 2].var())
                detail_before = max(detail_before, grey[y : y + b, x : x + b].var())
    assert detail_before > 300, "the footage had detail to hide"
    assert detail_after < 20, f"a block outside the requester keeps detail (variance {detail_after:.0f})"

    # The original recording is untouched; the result is in the redaction bucket only.
    again = operator.get(f"/api/v1/segments/{first['id']}/content", params=why)
    assert again.content and operator.get(f"/api/v1/cameras/{CAMERA}/segments").json()[0]["sha256"] == first["sha256"]
    assert [o.key for o in store.list()] == [f"redactions/{CAMERA}/{job_id}.mp4"]

    # Cancelling: a queued or running job stops and leaves nothing.
    long = operator.post(
        jobs,
        json=base
        | {"start": _iso(at(0)), "end": _iso(at(LAST)), "selection": [{"time": _iso(at(50))} | _norm(TRUTH[50])]},
    )
    cancelled = operator.post(f"/api/v1/redactions/{long.json()['id']}/cancel")
    assert cancelled.status_code == 200
    wait_for(
        lambda: operator.get(f"/api/v1/redactions/{long.json()['id']}").json()["status"] == "cancelled",
        60,
        "the job cancelled",
    )
    assert operator.post(f"/api/v1/redactions/{long.json()['id']}/cancel").status_code == 409

    # Results expire with the request: the clip is deleted and can no longer be read.
    soon = to_us(datetime.now(UTC) + timedelta(seconds=25))
    short = operator.post(
        jobs,
        json=base
        | {"end": _iso(at(60)), "expires": _iso(soon), "selection": [{"time": _iso(at(50))} | _norm(TRUTH[50])]},
    ).json()
    wait_for(lambda: operator.get(f"/api/v1/redactions/{short['id']}").json()["status"] == "done", 120, "short job")
    assert store.exists(f"redactions/{CAMERA}/{short['id']}.mp4")
    wait_for(lambda: operator.get(f"/api/v1/redactions/{short['id']}").json()["status"] == "expired", 90, "expiry")
    assert [o.key for o in store.list()] == [f"redactions/{CAMERA}/{job_id}.mp4"]

    auditor = platform.client("auditor")
    actions = [e["action"] for e in auditor.get("/api/v1/audit", params={"action": "redaction"}).json()]
    assert {"redaction.create", "redaction.cancel"} <= set(actions)


def k0_frame(t: int, t0: int) -> int:
    return round((t - t0) / FRAME_US)
