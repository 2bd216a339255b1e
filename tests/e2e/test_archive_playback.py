"""Playback through the gateway, against the service processes: timeline, clips with HTTP ranges,
the last seconds while they are being written, bad input, and a clip that Chromium plays and seeks."""

import io
from datetime import UTC, datetime, timedelta

import av
import httpx
import numpy as np
import pytest

from tests.support.browser import ARTIFACTS, chromium
from tests.support.platform import Platform, wait_for

pytestmark = pytest.mark.e2e
CAMERA = "demo-1"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def frames_of(data: bytes) -> list[np.ndarray]:
    with av.open(io.BytesIO(data)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(container.streams.video[0])]


def test_timeline_clip_ranges_live_edge_and_bad_input(platform: Platform) -> None:
    platform.env["CSU_SEGMENT_DURATION_S"] = "4"
    platform.start(["ingest", "masking", "archive", "gateway"])  # the demo cameras
    api = platform.client("operator")
    api.timeout = httpx.Timeout(120)
    segments = wait_for(
        lambda: (s := api.get(f"/api/v1/cameras/{CAMERA}/segments").json()) and len(s) >= 3 and s,
        120,
        "three stored segments",
    )
    first, last = segments[0], segments[2]

    # The timeline: recorded, then the segment being written (not yet stored) up to now.
    now = datetime.now(UTC)
    timeline = api.get(
        f"/api/v1/cameras/{CAMERA}/timeline", params={"start": iso(now - timedelta(hours=1)), "end": iso(now)}
    )
    assert timeline.status_code == 200, timeline.text
    body = timeline.json()
    assert any(at(c["start"]) <= at(first["start"]) and at(c["end"]) >= at(last["end"]) for c in body["covered"])
    assert body["gaps"] and body["gaps"][0]["end"] <= first["start"]  # nothing before the platform started

    # A clip of a range inside three segments: whole, and by ranges.
    start = at(first["start"]) + timedelta(milliseconds=1500)
    end = at(last["end"]) - timedelta(milliseconds=500)
    params = {"start": iso(start), "end": iso(end), "justification": "e2e playback check"}
    whole = api.get(f"/api/v1/cameras/{CAMERA}/clip", params=params)
    assert whole.status_code == 200, whole.text
    assert whole.headers["content-type"] == "video/mp4" and whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["content-disposition"].startswith("inline")
    data = whole.content
    part = api.get(f"/api/v1/cameras/{CAMERA}/clip", params=params, headers={"Range": "bytes=1000-1999"})
    assert part.status_code == 206 and part.content == data[1000:2000]
    assert part.headers["content-range"] == f"bytes 1000-1999/{len(data)}"

    # Exactly the recorded frames, from the keyframe before the start (masking: one per second).
    recorded = [
        f
        for s in segments[:3]
        for f in frames_of(api.get(f"/api/v1/segments/{s['id']}/content", params=params).content)
    ]
    clip_frames = frames_of(data)
    offset = next(i for i, f in enumerate(recorded) if np.array_equal(f, clip_frames[0]))
    assert offset <= 15 + 10, offset  # starts at most one GOP (10 frames) before the 1.5 s mark
    assert all(np.array_equal(a, b) for a, b in zip(clip_frames, recorded[offset:], strict=False))
    assert abs((len(recorded) - offset) - len(clip_frames) - 5) <= 1  # ends 0.5 s (5 frames) early
    with av.open(io.BytesIO(data)) as container:
        assert container.metadata.get("title")
        assert [s.codec_context.name for s in container.streams.subtitles] == ["mov_text"]

    # The last seconds, while they are still being written.
    recent_end = at(api.get(f"/api/v1/cameras/{CAMERA}/segments").json()[-1]["end"])
    wait_for(lambda: datetime.now(UTC) > recent_end + timedelta(seconds=3), 20, "three more seconds")
    live = api.get(
        f"/api/v1/cameras/{CAMERA}/clip",
        params={
            "start": iso(recent_end - timedelta(seconds=2)),
            "end": iso(datetime.now(UTC)),
            "justification": "live edge",
        },
    )
    assert live.status_code == 200, live.text
    with av.open(io.BytesIO(live.content)) as container:
        duration = float(container.duration or 0) / 1_000_000
    clip_start = at(live.headers["x-clip-start"])
    assert clip_start + timedelta(seconds=duration) > recent_end + timedelta(seconds=1)

    # Bad input: the reason, in words.
    def bad(status: int, fragment: str, **query: str) -> None:
        response = api.get(f"/api/v1/cameras/{CAMERA}/clip", params={"justification": "bad input check"} | query)
        assert response.status_code == status, (query, response.text)
        assert fragment in response.json()["detail"], response.json()

    now = datetime.now(UTC)
    bad(422, "future", start=iso(now + timedelta(hours=1)), end=iso(now + timedelta(hours=2)))
    bad(422, "retention", start=iso(now - timedelta(days=20)), end=iso(now - timedelta(days=20, hours=-1)))
    bad(422, "start must be before end", start=iso(now - timedelta(minutes=1)), end=iso(now - timedelta(minutes=2)))
    bad(422, "wider than the maximum", start=iso(now - timedelta(hours=30)), end=iso(now))
    bad(400, "no time zone", start="2026-11-25T10:00:00", end=iso(now))
    bad(404, "nothing was recorded", start=iso(now - timedelta(hours=3)), end=iso(now - timedelta(hours=2)))
    missing_why = api.get(f"/api/v1/cameras/{CAMERA}/clip", params={"start": iso(start), "end": iso(end)})
    assert missing_why.status_code == 422 and "justification" in missing_why.text
    assert api.get("/api/v1/cameras/nope/clip", params=params).status_code == 404
    assert api.get("/api/v1/segments/0123456789abcdef0123456789abcdef/content", params=params).status_code == 404
    assert httpx.get(f"{platform.gateway}/api/v1/cameras/{CAMERA}/clip", params=params).status_code == 401
    bad_timeline = api.get(
        f"/api/v1/cameras/{CAMERA}/timeline", params={"start": iso(now), "end": iso(now - timedelta(hours=1))}
    )
    assert bad_timeline.status_code == 422 and "start must be before end" in bad_timeline.json()["detail"]

    # Consultations are in the audit trail, once per clip and session.
    auditor = platform.client("auditor")
    # Deletion proofs are for auditors (nothing is old enough to be deleted in this test).
    proofs = auditor.get("/api/v1/archive/deletion-proofs", params={"camera_id": CAMERA})
    assert proofs.status_code == 200 and proofs.json() == []
    assert api.get("/api/v1/archive/deletion-proofs").status_code == 403
    entries = auditor.get("/api/v1/audit", params={"action": "playback.clip"}).json()
    assert len([e for e in entries if e["target"] == f"camera:{CAMERA}"]) == 2, entries


def test_clip_plays_and_seeks_in_chromium(platform: Platform) -> None:
    platform.env["CSU_SEGMENT_DURATION_S"] = "3"
    platform.start(["ingest", "masking", "archive", "gateway"])
    api = platform.client("operator")
    segments = wait_for(
        lambda: (s := api.get(f"/api/v1/cameras/{CAMERA}/segments").json()) and len(s) >= 4 and s,
        120,
        "four stored segments",
    )
    start, end = at(segments[0]["start"]), at(segments[3]["end"])
    query = httpx.QueryParams({"start": iso(start), "end": iso(end), "justification": "browser playback check"})
    url = f"{platform.gateway}/api/v1/cameras/{CAMERA}/clip?{query}"
    token = api.headers["Authorization"].removeprefix("Bearer ")
    page_url = f"{platform.gateway}/__player_test__"
    html = f'<!doctype html><video id="v" src="{url}" muted playsinline preload="auto"></video>'
    with chromium() as browser:
        context = browser.new_context()
        context.add_cookies([{"name": "csu_session", "value": token, "url": platform.gateway}])
        page = context.new_page()
        # A page on the gateway's origin (served by the test) so the session cookie goes along.
        page.route(page_url, lambda route: route.fulfill(status=200, content_type="text/html", body=html))
        page.goto(page_url)
        page.wait_for_function("document.getElementById('v').readyState >= 2", timeout=60_000)
        duration = page.evaluate("document.getElementById('v').duration")
        assert duration == pytest.approx((end - start).total_seconds(), abs=1.2)
        page.evaluate("document.getElementById('v').play()")
        page.wait_for_function("document.getElementById('v').currentTime > 1", timeout=30_000)
        page.evaluate(
            """() => new Promise(done => {
                const v = document.getElementById('v');
                v.addEventListener('seeked', done, {once: true});
                v.currentTime = v.duration - 2;
            })"""
        )
        position = page.evaluate("document.getElementById('v').currentTime")
        assert position == pytest.approx(duration - 2, abs=0.5)
        page.wait_for_function("document.getElementById('v').readyState >= 2", timeout=30_000)
        size = page.evaluate("[document.getElementById('v').videoWidth, document.getElementById('v').videoHeight]")
        assert size == [704, 576]
        error = page.evaluate("document.getElementById('v').error && document.getElementById('v').error.message")
        assert error is None
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "archive-clip-demo-1.png"))
