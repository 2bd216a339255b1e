"""Pedestrian-zone bollards end to end: registry, commands through a real HTTP relay on loopback and
the simulated controller, permissions on the bollard's camera, intercom calls popping the camera up
on the consoles allowed to see it (WebSocket), the audit trail and the daily statistics."""

import asyncio
import base64
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

import httpx
import nats
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from services.common.pb.csu.v1.events_pb2 import Alarm
from tests.support.platform import Platform, wait_for

pytestmark = pytest.mark.e2e


class RelayBoard:
    """An HTTP relay board: records every request; paths under /broken answer 500."""

    def __init__(self) -> None:
        self.calls: list[dict] = []
        board = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                board.calls.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "body": json.loads(raw) if raw else None,
                        "authorization": self.headers.get("Authorization"),
                    }
                )
                self.send_response(500 if self.path.startswith("/broken") else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = do_PUT = _answer  # http.server's handler names

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@contextmanager
def relay_board() -> Iterator[RelayBoard]:
    board = RelayBoard()
    thread = threading.Thread(target=board.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield board
    finally:
        board.server.shutdown()
        board.server.server_close()


@contextmanager
def console(platform: Platform, client: httpx.Client, hello: bool = True) -> Iterator[ClientConnection]:
    """A console's notification socket, once the gateway says it is subscribed."""
    url = platform.gateway.replace("http://", "ws://") + "/api/v1/notifications"
    headers = {"Authorization": client.headers["Authorization"]}
    with ws_connect(url, additional_headers=headers, open_timeout=30) as ws:
        if hello:
            first = json.loads(ws.recv(timeout=30))
            assert first["type"] == "hello", first
        yield ws


def raise_alarm(platform: Platform, **fields: object) -> None:
    """Publish an Alarm event on JetStream as another service would."""

    async def publish() -> None:
        nc = await nats.connect(platform.env["CSU_NATS_URL"])
        try:
            js = nc.jetstream()
            prefix = platform.nats_prefix
            await js.publish(f"{prefix}.events.alarm.raised", Alarm(**fields).SerializeToString())
        finally:
            await nc.close()

    asyncio.run(publish())


def test_bollard_commands_calls_permissions_and_statistics(platform: Platform) -> None:
    platform.start(["ingest", "gateway"])
    admin = platform.admin()
    operator = platform.client("operator")
    north = platform.client("operator", groups=("north",))  # the demo cameras are in group "default"
    police = platform.client("police_nationale")
    auditor = platform.client("auditor")

    with relay_board() as relay:
        # -- registry -------------------------------------------------------------------------
        b1 = {
            "id": "rue-pietonne-1",
            "name": "Borne rue piétonne nord",
            "location": "angle rue Victor-Hugo / place du Marché",
            "camera_id": "demo-1",
            "driver": "http",
            "http": {
                "open_url": relay.url.replace("http://", "http://relay-user:s3cret-pw@") + "/relay/1/on",
                "close_url": relay.url.replace("http://", "http://relay-user:s3cret-pw@") + "/relay/1/off",
                "method": "POST",
            },
        }
        created = admin.post("/api/v1/bollards", json=b1)
        assert created.status_code == 201, created.text
        first = created.json()
        token = first["intercom_token"]
        assert "s3cret-pw" not in created.text and "***@" in first["http"]["open_url"]
        assert first["state"] == "unknown" and first["camera_id"] == "demo-1"
        broken = {
            "id": "b-broken",
            "name": "Borne en panne",
            "camera_id": "demo-1",
            "driver": "http",
            "http": {"open_url": relay.url + "/broken/on", "close_url": relay.url + "/broken/off"},
        }
        assert admin.post("/api/v1/bollards", json=broken).status_code == 201
        simulated = {"id": "b-sim", "name": "Borne de démonstration", "camera_id": "demo-2", "driver": "simulated"}
        assert admin.post("/api/v1/bollards", json=simulated).status_code == 201

        refusals = {
            "duplicate": (admin, b1, 409),
            "unknown camera": (admin, simulated | {"id": "b-x", "camera_id": "nowhere"}, 404),
            "http without URLs": (admin, simulated | {"id": "b-y", "driver": "http"}, 422),
            "unknown field": (admin, simulated | {"id": "b-z", "voltage": 24}, 422),
            "not a web URL": (
                admin,
                broken | {"id": "b-w", "http": {"open_url": "file:///etc/passwd", "close_url": relay.url}},
                422,
            ),
            "operator registering": (operator, simulated | {"id": "b-v"}, 403),
        }
        for what, (client, body, status) in refusals.items():
            answer = client.post("/api/v1/bollards", json=body)
            assert answer.status_code == status, (what, answer.status_code, answer.text)
        assert {b["id"] for b in admin.get("/api/v1/bollards").json()} == {b1["id"], "b-broken", "b-sim"}
        assert {b["id"] for b in operator.get("/api/v1/bollards").json()} == {b1["id"], "b-broken", "b-sim"}
        assert north.get("/api/v1/bollards").json() == []
        assert relay.calls == []

        # -- commands ---------------------------------------------------------------------------
        url = f"/api/v1/bollards/{b1['id']}"
        opened = operator.post(f"{url}/open", json={"reason": "livraison pharmacie", "plate": "ab-123-cd"})
        assert opened.status_code == 200, opened.text
        assert opened.json()["state"] == "open" and opened.json()["plate"] == "AB-123-CD"
        assert relay.calls == [
            {
                "method": "POST",
                "path": "/relay/1/on",
                "body": {"bollard": b1["id"], "command": "open"},  # no reason, no plate to the field device
                "authorization": "Basic " + base64.b64encode(b"relay-user:s3cret-pw").decode(),
            }
        ]
        for client, body, status in [
            (operator, {}, 422),
            (operator, {"reason": "ok"}, 422),
            (operator, {"reason": "livraison", "plate": "AB 123 <script>"}, 422),
            (operator, {"reason": "livraison", "force": True}, 422),
            (north, {"reason": "livraison"}, 404),  # another district's bollard: as an unknown one
            (police, {"reason": "intervention"}, 403),
            (auditor, {"reason": "contrôle"}, 403),
        ]:
            answer = client.post(f"{url}/open", json=body)
            assert answer.status_code == status, (body, answer.status_code, answer.text)
        # Not cleared for its camera: every route answers as for a bollard that does not exist.
        unknown = operator.get("/api/v1/bollards/nowhere")
        assert unknown.status_code == 404
        north_admin = platform.client("admin", groups=("north",))  # may configure bollards, not this one
        before = admin.get(url).json()
        for hidden in (
            north.get(url),
            north.get(f"{url}/commands"),
            north.post(f"{url}/open", json={"reason": "livraison"}),
            north_admin.patch(url, json={"name": "Renamed from the north"}),
            north_admin.patch(url, json={"driver": "http"}),  # a 422 for its own camera: nothing told here
            north_admin.post(f"{url}/intercom-token"),
        ):
            assert hidden.status_code == 404, hidden.text
            assert hidden.json()["detail"] == unknown.json()["detail"].replace("nowhere", b1["id"]), hidden.text
        assert admin.get(url).json() == before
        assert "city's operations" in police.post(f"{url}/close", json={"reason": "x" * 5}).json()["detail"]
        assert len(relay.calls) == 1
        closed = operator.post(f"{url}/close", json={"reason": "fin de livraison"})
        assert closed.status_code == 200 and closed.json()["state"] == "closed"
        assert relay.calls[-1]["path"] == "/relay/1/off"

        failed = operator.post("/api/v1/bollards/b-broken/open", json={"reason": "véhicule de secours"})
        assert failed.status_code == 502 and "HTTP 500" in failed.json()["detail"]
        assert admin.get("/api/v1/bollards/b-broken").json()["state"] == "unknown"
        sim = operator.post("/api/v1/bollards/b-sim/open", json={"reason": "démonstration"})
        assert sim.status_code == 200 and admin.get("/api/v1/bollards/b-sim").json()["state"] == "open"
        assert operator.post("/api/v1/bollards/nowhere/open", json={"reason": "test"}).status_code == 404

        history = operator.get(f"{url}/commands").json()
        assert [(c["command"], c["reason"], c["plate"], c["actor"]) for c in history] == [
            ("open", "livraison pharmacie", "AB-123-CD", "operator-all"),
            ("close", "fin de livraison", "", "operator-all"),
        ]
        assert [c["outcome"] for c in operator.get("/api/v1/bollards/b-broken/commands").json()] == ["failed"]

    # -- intercom calls and console pop-ups -----------------------------------------------------------
    with console(platform, operator) as operator_console, console(platform, north) as north_console:
        calls_url = f"/api/v1/bollards/{b1['id']}/calls"
        assert httpx.post(platform.gateway + calls_url).status_code == 401
        wrong = httpx.post(platform.gateway + calls_url, headers={"X-Intercom-Token": "not-the-token"})
        assert wrong.status_code == 401
        # A session is not an intercom: an operator cannot fake a call.
        assert operator.post(calls_url).status_code == 401
        call = httpx.post(platform.gateway + calls_url, headers={"X-Intercom-Token": token})
        assert call.status_code == 201, call.text
        popup = json.loads(operator_console.recv(timeout=30))
        assert popup["type"] == "bollard.call" and popup["camera_id"] == "demo-1"
        assert popup["bollard_id"] == b1["id"] and popup["call_id"] == call.json()["id"]
        assert popup["live_url"] == "/api/v1/cameras/demo-1/live" and popup["location"] == b1["location"]
        # The north-only console never saw the call: the next thing it gets is a camera-less alarm.
        raise_alarm(platform, kind="archive.spool_high", source="archive", message="spool at 85 %")
        after = json.loads(north_console.recv(timeout=60))
        assert after["type"] == "alarm.raised" and after["kind"] == "archive.spool_high", after

    clerk = platform.client("clerk")
    with console(platform, clerk, hello=False) as ws, pytest.raises(ConnectionClosed) as closed_ws:
        ws.recv(timeout=30)
    assert closed_ws.value.rcvd is not None and closed_ws.value.rcvd.code == 4403
    anonymous_url = platform.gateway.replace("http://", "ws://") + "/api/v1/notifications"
    with ws_connect(anonymous_url) as ws, pytest.raises(ConnectionClosed) as closed_ws:
        ws.recv(timeout=30)
    assert closed_ws.value.rcvd is not None and closed_ws.value.rcvd.code == 4401

    call_id = call.json()["id"]
    hidden = north.post(f"/api/v1/bollards/calls/{call_id}/answer")  # at another district's bollard
    unknown = north.post(f"/api/v1/bollards/calls/{call_id + 1000}/answer")
    assert (hidden.status_code, unknown.status_code) == (404, 404), (hidden.text, unknown.text)
    assert hidden.json()["detail"] == unknown.json()["detail"].replace(str(call_id + 1000), str(call_id))
    taken = operator.post(f"/api/v1/bollards/calls/{call_id}/answer")
    assert taken.status_code == 200 and taken.json()["answered_by"] == "operator-all"
    assert operator.post(f"/api/v1/bollards/calls/{call_id}/answer").status_code == 409
    assert operator.get("/api/v1/bollards/calls", params={"unanswered": True}).json() == []

    renewed = admin.post(f"/api/v1/bollards/{b1['id']}/intercom-token")
    assert renewed.status_code == 200
    assert httpx.post(platform.gateway + calls_url, headers={"X-Intercom-Token": token}).status_code == 401
    second = httpx.post(platform.gateway + calls_url, headers={"X-Intercom-Token": renewed.json()["intercom_token"]})
    assert second.status_code == 201

    # -- configuration changes --------------------------------------------------------------------
    moved = admin.patch("/api/v1/bollards/b-sim", json={"camera_id": "demo-1", "location": "parvis"})
    assert moved.status_code == 200 and moved.json()["camera_id"] == "demo-1"
    assert admin.patch("/api/v1/bollards/b-sim", json={"driver": "http"}).status_code == 422
    assert admin.patch("/api/v1/bollards/b-sim", json={"name": None}).status_code == 422
    assert admin.patch("/api/v1/bollards/b-sim", json={"active": False}).json()["active"] is False
    out_of_service = operator.post("/api/v1/bollards/b-sim/close", json={"reason": "fermeture"})
    assert out_of_service.status_code == 409 and "out of service" in out_of_service.json()["detail"]

    # -- statistics per (Paris) day ---------------------------------------------------------------
    today = datetime.now(ZoneInfo("Europe/Paris")).date().isoformat()
    stats = auditor.get("/api/v1/bollards/stats", params={"start": today, "end": today})
    assert stats.status_code == 200, stats.text
    by_bollard = {d["bollard_id"]: d for d in stats.json()["days"]}
    assert {k: by_bollard[b1["id"]][k] for k in ("day", "opens", "closes", "failed", "with_plate", "calls")} == {
        "day": today,
        "opens": 1,
        "closes": 1,
        "failed": 0,
        "with_plate": 1,
        "calls": 2,
    }
    assert by_bollard[b1["id"]]["calls_unanswered"] == 1
    assert by_bollard["b-broken"]["failed"] == 1 and by_bollard["b-sim"]["opens"] == 1
    assert stats.json()["totals"]["opens"] == 2
    assert north.get("/api/v1/bollards/stats", params={"start": today, "end": today}).json()["days"] == []
    assert auditor.get("/api/v1/bollards/stats", params={"start": today, "end": "2020-01-01"}).status_code == 422

    # -- every command and change in the audit trail, before it happened --------------------------------
    def trail() -> list[dict]:
        return auditor.get("/api/v1/audit", params={"action": "bollard", "limit": 1000}).json()

    wait_for(lambda: len([e for e in trail() if e["action"] == "bollard.update"]) >= 2, 30, "the bollard audit")
    entries = trail()
    opening = next(e for e in entries if e["action"] == "bollard.open" and e["target"] == f"bollard:{b1['id']}")
    assert opening["actor"] == "operator-all" and opening["justification"] == "livraison pharmacie"
    assert opening["details"]["plate"] == "AB-123-CD" and opening["details"]["camera_id"] == "demo-1"
    # The failed command: one entry, its real outcome and why (issue 23 item 6).
    broken = [e for e in entries if e["target"] == "bollard:b-broken" and e["action"] == "bollard.open"]
    assert [e["outcome"] for e in broken] == ["failed"]
    assert "did not open" in broken[0]["details"]["reason"]
    north_trail = auditor.get("/api/v1/audit", params={"actor": "operator-north"}).json()
    assert any(e["action"] == "live.refused" and e["target"] == "camera:demo-1" for e in north_trail)
    assert {"bollard.register", "bollard.close", "bollard.call_answer", "bollard.intercom_token"} <= {
        e["action"] for e in entries
    }
    assert any(e["action"] == "bollard.call.refused" for e in entries)
