"""Mask governance end to end (services as processes, real NATS, S3, database): versions and
four-eyes approval through the gateway, the new version burned in from a keyframe and recorded in
the segments, the mask editor's preview of a draft, mask-error reports with their alarm, the
commissioning gate, bad input refused, everything audited."""

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import httpx
import nats
import numpy as np
import pytest
from fastapi import HTTPException
from nats.js.api import DeliverPolicy

from services.common import subjects
from services.common.pb.csu.v1.events_pb2 import Alarm
from services.common.settings import Settings
from services.gateway.backends import Backends
from services.gateway.video.commissioning import ensure_commissionable
from tests.support.media import MASK_GREY, VTEST_SIZE, VTEST_WINDOWS, VTEST_WINDOWS_PX, decode_rgb, polygon_mask
from tests.support.platform import Platform, wait_for
from tests.support.servers import free_port

pytestmark = pytest.mark.e2e
CAMERA = "cam-masks"
# The white van parked top right of vtest.avi: what version 2 adds to the windows.
VAN_PX = [(648, 40), (728, 40), (728, 100), (648, 100)]
VAN = [(x / VTEST_SIZE[0], y / VTEST_SIZE[1]) for x, y in VAN_PX]
BOW_TIE = [(0.1, 0.1), (0.5, 0.5), (0.5, 0.1), (0.1, 0.5)]
PERIMETER = {
    "type": "Polygon",
    "coordinates": [[[4.80, 45.75], [4.86, 45.75], [4.86, 45.78], [4.80, 45.78], [4.80, 45.75]]],
}
AUTHORISATION = {
    "decision_date": "2026-01-15",
    "expiry_date": "2031-01-14",
    "purposes": ["protection des bâtiments publics"],
    "max_retention_days": 15,
    "recipients": ["police municipale"],
    "perimeter": PERIMETER,
}


def _body(*polygons: list[tuple[float, float]], **extra: object) -> dict:
    return {"polygons": [{"points": [list(p) for p in polygon]} for polygon in polygons]} | extra


def _grey(image: np.ndarray, polygon_px: list[tuple[int, int]]) -> int:
    """The worst distance from the mask grey inside the polygon (eroded by 4 px)."""
    inside = polygon_mask(polygon_px, (image.shape[1], image.shape[0]), grow_px=-4)
    return int(np.abs(image[inside].astype(int) - MASK_GREY).max())


def _jpeg(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    image = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_COLOR)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


@pytest.fixture
def started(platform: Platform, vtest_h264: Path) -> Platform:
    platform.env["CSU_MASKING_GRPC"] = f"127.0.0.1:{free_port()}"
    platform.env["CSU_SEGMENT_DURATION_S"] = "3"
    platform.set_cameras(
        [{"id": CAMERA, "name": "Parking (vtest)", "source": str(vtest_h264), "masks": [VTEST_WINDOWS]}]
    )
    platform.start(["ingest", "masking", "archive", "gateway"])
    return platform


def test_versions_four_eyes_preview_segments_reports_and_audit(started: Platform) -> None:
    platform = started
    supervisor, admin, operator = platform.client("supervisor"), platform.admin(), platform.client("operator")
    masks = f"/api/v1/cameras/{CAMERA}/masks"

    # The catalogue's masks were imported as approved version 1.
    listed = supervisor.get(masks).json()
    assert [(m["version"], m["status"], m["origin"]) for m in listed] == [(1, "approved", "catalogue")]
    assert operator.get(masks).status_code == 403

    # Bad input: refused with a clear message, nothing stored.
    bad = supervisor.post(masks, json=_body(BOW_TIE))
    assert bad.status_code == 422 and "not a simple polygon" in bad.json()["detail"]
    outside = supervisor.post(masks, json=_body([(0.1, 0.1), (1.3, 0.1), (0.5, 0.6)]))
    assert outside.status_code == 422 and "outside the normalised image" in outside.json()["detail"]
    flat = supervisor.post(masks, json=_body([(0.1, 0.1), (0.2, 0.2), (0.3, 0.3)]))
    assert flat.status_code == 422 and "degenerate" in flat.json()["detail"]
    ptz = supervisor.post(masks, json=_body(VAN, space="ptz"))
    assert ptz.status_code == 422 and "has no PTZ" in ptz.json()["detail"]
    assert supervisor.post("/api/v1/cameras/nope/masks", json=_body(VAN)).status_code == 404
    assert operator.post(masks, json=_body(VAN)).status_code == 403
    assert len(supervisor.get(masks).json()) == 1

    # A draft by the supervisor; the supervisor may not approve it (four-eyes).
    draft = supervisor.post(masks, json=_body(VTEST_WINDOWS, VAN, comment="the van's number plate"))
    assert draft.status_code == 201, draft.text
    assert (draft.json()["version"], draft.json()["status"]) == (2, "draft")
    own = supervisor.post(f"{masks}/2/approve")
    assert own.status_code == 409 and "four-eyes" in own.json()["detail"]

    # The mask editor previews the draft (never shown elsewhere): the van is grey there only.
    preview = f"/api/v1/cameras/{CAMERA}/masks-preview"
    current = wait_for(lambda: (r := supervisor.get(preview)).status_code == 200 and r, 60, "a preview")
    assert current.headers["x-mask-version"] == "v1" and current.headers["x-fully-masked"] == "false"
    image = _jpeg(current)
    assert _grey(image, VTEST_WINDOWS_PX) <= 12 and _grey(image, VAN_PX) > 40
    drafted = supervisor.get(preview, params={"version": "2"})
    assert drafted.headers["x-mask-version"] == "v2"
    assert _grey(_jpeg(drafted), VAN_PX) <= 12
    assert operator.get(preview).status_code == 403
    no_presets = supervisor.get(preview, params={"preset": "entrance"})  # a fixed camera
    assert no_presets.status_code == 422 and "has no PTZ" in no_presets.json()["detail"], no_presets.text

    # Approved by a second mask administrator: v1 superseded, v2 burned in from a keyframe on.
    approved = admin.post(f"{masks}/2/approve")
    assert approved.status_code == 200, approved.text
    assert approved.json()["approver"] == "admin" and approved.json()["author"] == "supervisor-all"
    statuses = {m["version"]: m["status"] for m in supervisor.get(masks).json()}
    assert statuses == {1: "superseded", 2: "approved"}
    assert supervisor.post(f"{masks}/2/approve").status_code == 409

    segments = wait_for(
        lambda: (
            (s := operator.get(f"/api/v1/cameras/{CAMERA}/segments").json())
            and {"v1", "v2"} <= {x["mask_version"] for x in s}
            and s
        ),
        90,
        "segments recorded under v1 and under v2",
    )
    versions = [s["mask_version"] for s in segments]
    assert versions == sorted(versions), "a v1 segment after a v2 one"
    why = {"justification": "test of mask versions in recordings"}
    for segment in [next(s for s in segments if s["mask_version"] == v) for v in ("v1", "v2")]:
        frames = decode_rgb(operator.get(f"/api/v1/segments/{segment['id']}/content", params=why).content)
        assert len(frames) == segment["frames"]
        for n, frame in enumerate(frames):
            assert _grey(frame, VTEST_WINDOWS_PX) <= 6, f"{segment['mask_version']} frame {n}: windows not masked"
            if segment["mask_version"] == "v2":
                assert _grey(frame, VAN_PX) <= 6, f"v2 frame {n}: the van is not masked"

    # An operator reports a mask error: tracked, raises an alarm, closed by a mask administrator.
    report = operator.post(
        f"/api/v1/cameras/{CAMERA}/mask-errors",
        json={
            "description": "a window of the ground floor is visible",
            "snapshot_ref": f"segment {segments[-1]['id']}",
        },
    )
    assert report.status_code == 201, report.text
    assert (report.json()["status"], report.json()["mask_version"]) == ("open", "v2")
    alarm = asyncio.run(_alarm(platform))
    assert (alarm.kind, alarm.camera_id, alarm.source) == ("mask_error", CAMERA, "masking")
    errors = f"/api/v1/cameras/{CAMERA}/mask-errors"
    assert [r["id"] for r in supervisor.get(errors, params={"status": "open"}).json()] == [report.json()["id"]]
    assert operator.get(errors).status_code == 403
    closed = admin.post(f"{errors}/{report.json()['id']}/close", json={"resolution": "v3 will cover it"})
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    assert admin.post(f"{errors}/{report.json()['id']}/close", json={"resolution": "again"}).status_code == 409
    assert operator.post(errors, json={"description": ""}).status_code == 422

    # Everything above is in the audit trail.
    auditor = platform.client("auditor")
    actions = {e["action"] for e in auditor.get("/api/v1/audit", params={"target": f"camera:{CAMERA}"}).json()}
    assert {"mask.draft.create", "mask.approve", "mask.preview", "mask.error.report", "mask.error.close"} <= actions


async def _alarm(platform: Platform) -> Alarm:
    nc = await nats.connect(platform.env["CSU_NATS_URL"])
    try:
        sub = await nc.jetstream().subscribe(
            subjects.event(platform.nats_prefix, "alarm.raised"),
            stream=subjects.events_stream(platform.nats_prefix),
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.ALL,
        )
        while True:
            alarm = Alarm.FromString((await sub.next_msg(timeout=10)).data)
            if alarm.kind == "mask_error":
                return alarm
    finally:
        await nc.close()


@pytest.fixture
def gateway_settings(started: Platform) -> Iterator[Settings]:
    """The gateway's settings, in this process, for the commissioning gate function."""
    saved = dict(os.environ)
    os.environ.update({k: v for k, v in started.env.items() if k.startswith("CSU_")})
    try:
        settings = Settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    yield settings


def test_commissioning_gate(started: Platform, gateway_settings: Settings) -> None:
    platform = started
    admin, supervisor = platform.admin(), platform.client("supervisor")
    assert admin.put("/api/v1/authorisations/PREF-69-2026-009", json=AUTHORISATION).status_code == 200
    camera = {
        "id": "cam-new", "name": "Nouvelle caméra", "main_url": f"rtsp://127.0.0.1:{free_port()}/h264",
        "position": {"lat": 45.76, "lon": 4.83}, "groups": ["centre"],
        "profile": {"width": 1920, "height": 1080, "fps": 12.5}, "authorisation_ref": "PREF-69-2026-009",
        "state": "commissioning",
    }  # fmt: skip
    assert admin.post("/api/v1/cameras", json=camera).status_code == 201

    def gate(camera_id: str) -> int:
        async def call() -> int:
            b = Backends(gateway_settings)  # the gateway's backends, as its routes get them
            try:
                await ensure_commissionable(b, camera_id, "in_service")
                return 200
            except HTTPException as exc:
                return exc.status_code
            finally:
                await b.close()

        return asyncio.run(call())

    status = supervisor.get("/api/v1/cameras/cam-new/commissioning").json()
    assert status["commissionable"] is False and "no approved mask set" in status["reason"]
    assert gate("cam-new") == 409
    assert gate(CAMERA) == 200  # already in service: not gated

    # Only a supervisor signs the statement; it verifies with the deployment's key.
    text = {"text": "Checked on site: no window, garden or entrance of a home is in view."}
    assert admin.post("/api/v1/cameras/cam-new/no-private-area-statement", json=text).status_code == 403
    signed = supervisor.post("/api/v1/cameras/cam-new/no-private-area-statement", json=text)
    assert signed.status_code == 201, signed.text
    assert signed.json()["verified"] is True and signed.json()["supervisor"] == "supervisor-all"
    status = supervisor.get("/api/v1/cameras/cam-new/commissioning").json()
    assert status["commissionable"] is True and status["statement"]["verified"] is True
    assert gate("cam-new") == 200

    # The other way in: an approved mask set (four-eyes) on another new camera.
    assert admin.post("/api/v1/cameras", json=camera | {"id": "cam-new2"}).status_code == 201
    assert gate("cam-new2") == 409
    assert supervisor.post("/api/v1/cameras/cam-new2/masks", json=_body(VAN)).status_code == 201
    assert gate("cam-new2") == 409  # a draft is not enough
    assert admin.post("/api/v1/cameras/cam-new2/masks/1/approve").status_code == 200
    assert gate("cam-new2") == 200
    actions = {e["action"] for e in platform.client("auditor").get("/api/v1/audit").json()}
    assert "mask.statement.sign" in actions
