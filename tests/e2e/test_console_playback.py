"""Playback in a real browser: two cameras in sync, the justification asked first (and audited),
the timeline with the recorded intervals, seeking by jumping to a time, frame steps, speed."""

import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.e2e.test_console_login import console_login, frame_stats, screenshot
from tests.support.browser import chromium, until
from tests.support.platform import Platform, wait_for
from tests.support.servers import free_port

pytestmark = pytest.mark.e2e
PARIS = ZoneInfo("Europe/Paris")
REASON = "Vérification d'un incident signalé sur le parvis"


def paris_input(moment: datetime) -> str:
    return moment.astimezone(PARIS).strftime("%Y-%m-%dT%H:%M:%S")


def covered_seconds(client, camera: str, start: datetime, end: datetime) -> float:  # type: ignore[no-untyped-def]
    params = {"start": start.isoformat(), "end": end.isoformat()}
    answer = client.get(f"/api/v1/cameras/{camera}/timeline", params=params).json()
    return sum(
        (datetime.fromisoformat(c["end"]) - datetime.fromisoformat(c["start"])).total_seconds()
        for c in answer["covered"]
        if not c["recording"]
    )


def lane_time(page, camera: str) -> float:  # type: ignore[no-untyped-def]
    return page.evaluate(f"document.querySelector(\".pb-lane[data-camera='{camera}'] video\").currentTime")


def test_synchronised_playback_with_justification_timeline_and_seek(platform: Platform) -> None:
    platform.env["CSU_SEGMENT_DURATION_S"] = "8"
    platform.env["CSU_MASKING_GRPC"] = f"127.0.0.1:{free_port()}"  # masking's own port, not a shared default
    platform.start(["ingest", "masking", "archive", "gateway"], timeout=90)
    platform.create_user("pauline", "operator", ["*"])
    base = platform.gateway
    supervisor = platform.client("supervisor")
    origin = datetime.now(UTC)
    for camera in ("demo-1", "demo-2"):
        wait_for(lambda c=camera: covered_seconds(supervisor, c, origin, datetime.now(UTC)) >= 30, 180,
                 f"30 s of {camera} stored")  # fmt: skip
    start = origin + timedelta(seconds=4)
    end = start + timedelta(seconds=22)

    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 950})
        console_login(page, base, "pauline")
        page.goto(f"{base}/#/playback/demo-1,demo-2")
        page.wait_for_selector(".pb-lane[data-camera='demo-2']")
        page.fill("#pb-from", paris_input(start))
        page.fill("#pb-to", paris_input(end))
        page.click("#pb-load")
        # Nothing is shown before the reason is given; a too short one is refused on the client.
        page.wait_for_selector("#justification")
        assert page.evaluate("document.querySelector('.pb-lane video').getAttribute('src')") is None
        page.fill("#justification", "abc")
        page.click("#justification-ok")
        assert page.is_visible("#justification")
        page.fill("#justification", REASON)
        page.click("#justification-ok")
        for camera in ("demo-1", "demo-2"):
            until(page, f"document.querySelector(\".pb-lane[data-camera='{camera}'] video\").currentTime > 1", 120,
                  f"{camera} playing back")  # fmt: skip
            stats = frame_stats(page, f".pb-lane[data-camera='{camera}'] video")
            assert stats["stddev"] > 20 and stats["width"] == 704
        # The timeline shows what was recorded.
        until(page, "document.querySelectorAll('#timeline rect.covered').length >= 2", 30, "recorded intervals drawn")
        screenshot(page, "playback")

        # Jump to a time: both cameras go there together.
        target = start + timedelta(seconds=12)
        page.fill("#pb-jump", paris_input(target))
        page.click("#pb-jump-go")
        page.click("#pb-play")  # pause, to read positions that stay put
        until(page, "document.getElementById('pb-play').textContent === '▶'", 10)
        shown = page.inner_text("#pb-clock")
        clock = datetime.strptime(shown, "%d/%m/%Y %H:%M:%S").replace(tzinfo=PARIS)
        assert abs((clock - target).total_seconds()) <= 2, (shown, target)
        time.sleep(1)
        gap = abs(lane_time(page, "demo-1") - lane_time(page, "demo-2"))
        assert gap < 1.0, f"the two cameras are {gap:.2f} s apart"

        # Frame step forward moves by about one frame (10 fps).
        before = lane_time(page, "demo-1")
        page.click("#pb-step")
        until(
            page, f"document.querySelector(\".pb-lane[data-camera='demo-1'] video\").currentTime > {before + 0.05}", 10
        )
        assert lane_time(page, "demo-1") - before < 0.5

        # Faster playback.
        page.select_option("#pb-speed", "4")
        page.click("#pb-play")
        assert page.evaluate("document.querySelector('.pb-lane video').playbackRate") == 4

    # The consultation is in the audit trail, with its justification, once per clip.
    with platform.admin() as admin:
        entries = admin.get("/api/v1/audit", params={"action": "playback.clip", "actor": "pauline"}).json()
    assert {e["target"] for e in entries} == {"camera:demo-1", "camera:demo-2"}
    assert all(e["justification"] == REASON for e in entries)
