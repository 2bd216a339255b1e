"""Citizens' right of access end to end: a clerk registers the request (identity document checked,
encrypted), the footage is held, an operator finds the requester and has masking redact the clip,
the requester watches it on the kiosk page in Chromium — which the API serves to nothing but the
kiosk session — and closing the request deletes the identity document and releases the footage.

Processes: ingest, masking (redaction jobs) and the gateway; the archive and the requisition
service in-process on the test's servers with a ManualClock (deadlines, session expiry)."""

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from services.common.clock import from_us
from services.common.pb.csu.v1 import archive_pb2
from services.common.pb.csu.v1.requisition_pb2 import RequisitionStateChanged as StateChanged
from tests.support.archive import START, T0_US
from tests.support.audit import stream_events
from tests.support.browser import ARTIFACTS, chromium, until
from tests.support.platform import Platform, wait_for
from tests.support.requisition import LoopThread, RequisitionStack, jpeg_bytes, pdf_bytes, stack_behind_platform
from tests.support.servers import S3Server, free_port, unique

pytestmark = pytest.mark.e2e
CAM = "cam-a"
S = 1_000_000


def iso(us: int) -> str:
    return from_us(us).astimezone(UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture
def env(
    platform: Platform, tmp_path: Path, database_url: str, s3: S3Server, nats_url: str
) -> Iterator[tuple[Platform, RequisitionStack, LoopThread]]:
    masking = {"CSU_MASKING_GRPC": f"127.0.0.1:{free_port()}", "CSU_BUCKET_REDACTIONS": unique("red-")}
    with stack_behind_platform(
        platform, tmp_path, database_url, s3, nats_url, camera=(CAM, "Rue Serpenoise"), seconds=20,
        services=["ingest", "masking", "gateway"], env=masking, masking_target=masking["CSU_MASKING_GRPC"],
    ) as (st, bg):  # fmt: skip
        yield platform, st, bg


def registration(document: bytes, filename: str = "cni.jpg", **changes: str) -> dict:
    fields = {
        "full_name": "Camille Durand",
        "birth_date": "1987-04-12",
        "id_document_kind": "carte nationale d'identité",
        "id_document_number": "X4RTBPFW4",
        "contact": "camille.durand@example.org",
        "place": "Rue Serpenoise, devant la pharmacie",
        "camera_ids": CAM,
        "window_start": iso(T0_US),
        "window_end": iso(T0_US + 20 * S),
        "description": "manteau rouge, sac à dos",
    } | changes
    return {"data": fields, "files": {"identity_document": (filename, document, "image/jpeg")}}


def documents_of(st: RequisitionStack, request_id: str) -> list[str]:
    return st.keys(st.ctx.documents, f"docs/citizen_request/{request_id}/")


def holds(st: RequisitionStack, bg: LoopThread) -> list[archive_pb2.HoldInfo]:
    async def active() -> list[archive_pb2.HoldInfo]:
        return list((await st.archive.stub.ListHolds(archive_pb2.ListHoldsRequest(camera_id=CAM))).holds)

    return bg.run(active())


def test_citizen_request_to_kiosk_viewing_and_closure(
    env: tuple[Platform, RequisitionStack, LoopThread], tmp_path: Path, nats_url: str
) -> None:
    platform, st, bg = env
    clerk = platform.client("clerk")

    def refused(response: httpx.Response, status: int, fragment: str) -> None:
        assert response.status_code == status, response.text
        assert fragment in json.dumps(response.json()["detail"], ensure_ascii=False), response.json()

    # Bad input: refused with the reason, nothing stored, nothing held.
    refused(clerk.post("/api/v1/citizen-requests", json={"full_name": "x"}), 415, "multipart/form-data")
    refused(
        clerk.post("/api/v1/citizen-requests", **registration(b"GIF89a not accepted", "id.gif")),
        422,
        "not a PDF, JPEG or PNG",
    )
    refused(clerk.post("/api/v1/citizen-requests", **registration(jpeg_bytes(), "C:\\id.jpg")), 422, "plain name")
    refused(
        clerk.post("/api/v1/citizen-requests", **registration(jpeg_bytes(), full_name="")), 422, "full_name is required"
    )
    refused(
        clerk.post("/api/v1/citizen-requests", **registration(jpeg_bytes(), window_end=iso(T0_US + 3 * 86_400 * S))),
        422,
        "wider than",
    )
    refused(
        clerk.post("/api/v1/citizen-requests", **registration(jpeg_bytes(), camera_ids="nope")), 404, "unknown camera"
    )
    without_file = registration(jpeg_bytes())
    without_file.pop("files")
    without_file["files"] = {"other": ("x.txt", b"x", "text/plain")}
    refused(clerk.post("/api/v1/citizen-requests", **without_file), 422, "identity_document")
    assert st.keys(st.ctx.documents) == [] and holds(st, bg) == []
    assert platform.client("operator").post("/api/v1/citizen-requests", **registration(jpeg_bytes())).status_code == 403

    identity = jpeg_bytes()
    created = clerk.post("/api/v1/citizen-requests", **registration(identity))
    assert created.status_code == 201, created.text
    request = created.json()
    rid = request["id"]
    assert (
        request["state"] == "open" and request["number"].startswith("DA-") and request["full_name"] == "Camille Durand"
    )
    assert request["id_document_number"] == "…FW4" and request["identity_document_kept"] is True
    assert 28 <= request["days_left"] <= 31
    assert [h["camera_id"] for h in request["holds"]] == [CAM]
    assert len(holds(st, bg)) == 1
    stored = documents_of(st, rid)
    assert len(stored) == 1 and not st.ctx.documents.get(stored[0]).startswith(b"\xff\xd8")  # encrypted
    assert clerk.get(f"/api/v1/citizen-requests/{rid}/identity-document").content == identity
    # Other consumers are told of the registration with the same who and why as the request's history.
    opened = [
        e.transition
        for e in bg.run(stream_events(nats_url, platform.nats_prefix, "requisition.state", StateChanged.FromString))
        if e.id == rid
    ]
    assert [(t.from_state, t.to_state, t.actor, t.role) for t in opened] == [("", "open", "clerk-all", "clerk")]
    assert opened[0].reason.startswith("registered; answer due by")

    # The operator searches without seeing who the requester is, then confirms presence.
    operator = platform.client("operator")
    seen = operator.get(f"/api/v1/citizen-requests/{rid}").json()
    assert "full_name" not in seen and "contact" not in seen and seen["description"] == "manteau rouge, sac à dos"
    assert operator.get(f"/api/v1/citizen-requests/{rid}/identity-document").status_code == 403
    assert [r["id"] for r in operator.get("/api/v1/citizen-requests").json()] == [rid]
    # An operator habilitated elsewhere does not see a request about this camera: it is unknown to them.
    elsewhere = platform.client("operator", ["another-district"])
    assert elsewhere.get("/api/v1/citizen-requests").json() == []
    refused(elsewhere.get(f"/api/v1/citizen-requests/{rid}"), 404, f"unknown citizen request '{rid}'")
    refused(operator.post(f"/api/v1/citizen-requests/{rid}/redactions", json={
        "camera_id": CAM, "start": iso(T0_US + 2 * S), "end": iso(T0_US + 8 * S),
        "selection": [{"time": iso(T0_US + 3 * S), "x": 0.4, "y": 0.3, "width": 0.2, "height": 0.4}],
    }), 409, "confirm the requester appears")  # fmt: skip
    found = operator.post(f"/api/v1/citizen-requests/{rid}/search", json={"found": True, "note": "visible à 3 s"})
    assert found.status_code == 200 and found.json()["state"] == "found", found.text
    launched = operator.post(
        f"/api/v1/citizen-requests/{rid}/redactions",
        json={
            "camera_id": CAM,
            "start": iso(T0_US + 2 * S),
            "end": iso(T0_US + 8 * S),
            "selection": [{"time": iso(T0_US + 3 * S), "x": 0.4, "y": 0.3, "width": 0.2, "height": 0.4}],
        },
    )
    assert launched.status_code == 200, launched.text
    wait_for(
        lambda: clerk.get(f"/api/v1/citizen-requests/{rid}").json()["redactions"][0]["status"] == "done",
        240,
        "the redaction job",
        interval=2,
    )

    # The kiosk: a one-time code; the clip is refused to every other session. (The service's clock
    # is brought to the present first: the kiosk page compares the session's expiry with its own.)
    st.clock.advance(max(timedelta(0), datetime.now(UTC) - st.clock.now()))
    opened = clerk.post(f"/api/v1/citizen-requests/{rid}/kiosk-sessions")
    assert opened.status_code == 201, opened.text
    code = opened.json()["pairing_code"]
    for client in (operator, clerk, platform.admin(), httpx.Client(base_url=platform.gateway)):
        answer = client.post("/api/v1/kiosk/clips/0", headers={"X-CSU-Kiosk": "1"})
        assert answer.status_code == 401, answer.text
    assert httpx.post(f"{platform.gateway}/api/v1/kiosk/pair", json={"code": "AAAAA-AAAAA"}).status_code == 401

    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.goto(f"{platform.gateway}/kiosk")
        page.fill("#code", code)
        page.click("button[type=submit]")
        until(page, "window.kioskState.frames > 20", 120, "the kiosk played 20 frames")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "citizen-kiosk.png"))
        checks = page.evaluate(
            """async () => {
                const canvas = document.getElementById('screen');
                const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
                let lit = 0;
                for (let i = 0; i < pixels.length; i += 4 * 97) {
                    if (pixels[i] + pixels[i + 1] + pixels[i + 2] > 60) lit++;
                }
                const get = await fetch('/api/v1/kiosk/clips/0');
                const headless = await fetch('/api/v1/kiosk/clips/0', {method: 'POST'});
                return {
                    links: document.querySelectorAll('a[href]').length,
                    videos: document.querySelectorAll('video, audio, source, object, embed, iframe').length,
                    blobs: performance.getEntriesByType('resource').filter(e => e.name.startsWith('blob:')).length,
                    lit, request: window.kioskState.requestNumber, getStatus: get.status, noHeader: headless.status,
                };
            }"""
        )
        assert checks["links"] == 0 and checks["videos"] == 0 and checks["blobs"] == 0, checks
        assert checks["lit"] > 50 and checks["request"] == request["number"], checks
        assert checks["getStatus"] == 405 and checks["noHeader"] == 403, checks
        cookie = next(c for c in context.cookies() if c["name"] == "csu_kiosk")
        assert cookie["httpOnly"] and cookie["path"] == "/api/v1/kiosk" and cookie["sameSite"] == "Strict"
        assert page.evaluate("() => document.cookie.includes('csu_kiosk')") is False
        until(page, "window.kioskState.ended", 120, "the clip played to its end")
        assert page.evaluate("() => window.kioskState.error") == ""

    # The session expires: the same kiosk cookie no longer gets anything.
    # (With the Origin the kiosk's page sends: cookie-authenticated POSTs from elsewhere are refused.)
    kiosk = httpx.Client(
        base_url=platform.gateway,
        cookies={"csu_kiosk": cookie["value"]},
        headers={"Origin": platform.gateway},
        timeout=60,
    )
    for number in ("%C2%B2", "100", "-1"):  # "²" is a digit to str.isdigit(), not to int()
        answer = kiosk.post(f"/api/v1/kiosk/clips/{number}", headers={"X-CSU-Kiosk": "1"})
        assert answer.status_code == 404 and "no clip" in answer.json()["detail"], answer.text
    st.clock.advance(timedelta(minutes=31))
    assert kiosk.post("/api/v1/kiosk/clips/0", headers={"X-CSU-Kiosk": "1"}).status_code == 401
    assert kiosk.get("/api/v1/kiosk/session").status_code == 401

    # Closing: viewed. The identity document and the hold are gone; the outcome stays.
    refused(
        clerk.post(f"/api/v1/citizen-requests/{rid}/outcome", json={"outcome": "refused"}), 422, "reason is required"
    )
    closed = clerk.post(f"/api/v1/citizen-requests/{rid}/outcome", json={"outcome": "viewed"})
    assert closed.status_code == 200, closed.text
    after = closed.json()
    assert after["state"] == "closed" and after["outcome"] == "viewed" and after["identity_document_kept"] is False
    assert documents_of(st, rid) == [] and holds(st, bg) == []
    assert clerk.get(f"/api/v1/citizen-requests/{rid}/identity-document").status_code == 404
    refused(clerk.post(f"/api/v1/citizen-requests/{rid}/outcome", json={"outcome": "viewed"}), 409, "already closed")

    auditor = platform.client("auditor")
    target = f"citizen_request:{request['number']}"
    wait_for(
        lambda: (
            {"kiosk.pair", "kiosk.play", "citizen_request.outcome"}
            <= {e["action"] for e in auditor.get("/api/v1/audit", params={"target": target}).json()}
        ),
        60,
        "the kiosk in the audit trail",
    )


def test_deadline_warning_not_found_and_the_30_day_clamp(env: tuple[Platform, RequisitionStack, LoopThread]) -> None:
    platform, st, bg = env
    clerk = platform.client("clerk")
    created = clerk.post("/api/v1/citizen-requests", **registration(pdf_bytes(), "passeport.pdf"))
    assert created.status_code == 201, created.text
    rid = created.json()["id"]
    # Held until the request's deadline, but never past 30 days after the footage was captured.
    hold = holds(st, bg)[0]
    assert hold.until_us == T0_US + 20 * S + 30 * 86_400 * S
    st.clock.advance(timedelta(days=25))
    done = bg.run(st.tick())
    assert done["citizen_alarms"] >= 1
    warned = clerk.get(f"/api/v1/citizen-requests/{rid}").json()
    assert warned["deadline_warned"] is True and warned["overdue"] is False
    st.clock.advance(timedelta(days=7))
    bg.run(st.tick())
    assert clerk.get(f"/api/v1/citizen-requests/{rid}").json()["overdue"] is True
    # Past 30 days of capture the sweep deletes the held footage anyway.
    st.sweeper().sweep()
    assert st.keys(st.archive.store, "cam/") == []

    operator = platform.client("operator")
    nothing = operator.post(f"/api/v1/citizen-requests/{rid}/search", json={"found": False})
    assert nothing.status_code == 422 and "note is required" in nothing.json()["detail"]
    closed = operator.post(f"/api/v1/citizen-requests/{rid}/search", json={"found": False, "note": "absent des images"})
    assert closed.status_code == 200 and closed.json()["state"] == "closed" and closed.json()["outcome"] == "not_found"
    assert documents_of(st, rid) == [] and holds(st, bg) == []
    stats = platform.client("manager").get("/api/v1/requisitions/statistics").json()
    assert stats["citizen_outcomes"] == {"not_found": 1} and stats["citizen_requests"] == 1

    # Guessing kiosk codes: after CSU_KIOSK_PAIR_MAX_FAILURES refusals the address waits (429).
    pair = f"{platform.gateway}/api/v1/kiosk/pair"
    answers = [httpx.post(pair, json={"code": f"AAAAA-{n:05d}"}).status_code for n in range(12)]
    assert answers[:10] == [401] * 10 and answers[10:] == [429, 429], answers
    blocked = httpx.post(pair, json={"code": "AAAAA-BBBBB"})
    assert "too many wrong kiosk codes" in blocked.json()["detail"] and int(blocked.headers["Retry-After"]) > 0
    assert START  # the clock moved from here
