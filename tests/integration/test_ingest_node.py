"""Ingest replicas in-process on real NATS and a real database: authorisation expiry on a ManualClock,
status events, and PTZ of a simulated camera steered through a replica that does not hold it."""

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
import pytest
from nats.js.api import DeliverPolicy

from services.common import db, subjects
from services.common.clock import ManualClock, SystemClock, to_us
from services.common.pb.csu.v1 import ingest_pb2
from services.common.pb.csu.v1.events_pb2 import Alarm, AuthorisationNotice, CameraStatusChanged
from services.common.pb.csu.v1.frame_pb2 import FramePacket
from services.common.refusals import Refusal
from services.common.secretbox import SecretBox
from services.common.settings import Settings
from services.ingest.authorisations import AuthorisationInput, add_months
from services.ingest.node import IngestNode
from services.ingest.ptz import service as ptz
from services.ingest.registry import Registry
from services.ingest.specs import CameraInput
from tests.support.platform import until
from tests.support.servers import nats_prefix, unique

PERIMETER = {
    "type": "Polygon",
    "coordinates": [[[4.80, 45.75], [4.86, 45.75], [4.86, 45.78], [4.80, 45.78], [4.80, 45.75]]],
}


@dataclass
class Site:
    settings: Settings
    registry: Registry
    nats_url: str
    clock: ManualClock


@pytest.fixture
def site(database_url: str, nats_url: str, tmp_path: Path) -> Site:
    key = tmp_path / "secrets.key"
    SecretBox.generate(key)
    settings = Settings(  # type: ignore[call-arg]
        database_url=database_url,
        data_dir=tmp_path,
        nats_url=nats_url,
        nats_prefix=nats_prefix(),
        secrets_key_file=key,
        lease_ttl_s=4,
        reconnect_min_s=0.3,
        reconnect_max_s=1,
    )
    engine = db.make_engine(settings)
    db.migrate("ingest", engine)
    clock = ManualClock(datetime.now(UTC))
    return Site(settings, Registry(engine, SecretBox.from_file(key), clock), nats_url, clock)


def add_camera(site: Site, camera_id: str, url: str, expiry_months: int = 59, **fields: object) -> None:
    now = site.clock.now()
    reference = f"PREF-{camera_id}"
    site.registry.put_authorisation(
        AuthorisationInput(
            reference=reference,
            decision_us=to_us(now - timedelta(days=1)),
            expiry_us=to_us(add_months(now, expiry_months)),
            purposes=["voie publique"],
            max_retention_days=15,
            recipients=["police nationale"],
            perimeter_geojson=json.dumps(PERIMETER),
        ),
        "admin",
    )
    spec = {
        "id": camera_id,
        "name": camera_id,
        "main_url": url,
        "lat": 45.76,
        "lon": 4.83,
        "width": 704,
        "height": 576,
        "fps": 10,
        "authorisation_ref": reference,
        "state": "in_service",
    } | fields
    site.registry.create_camera(CameraInput.model_validate(spec), "admin")


@pytest.fixture
async def connection(site: Site) -> AsyncIterator[nats.NATS]:
    nc = await nats.connect(site.nats_url)
    yield nc
    await nc.close()


async def start_node(site: Site, replica: str) -> tuple[IngestNode, nats.NATS]:
    nc = await nats.connect(site.nats_url)
    node = IngestNode(
        site.settings, site.registry, nc, capture_clock=SystemClock(), policy_clock=site.clock, replica_id=replica
    )
    await node.start()
    return node, nc


async def stop_node(node: IngestNode, nc: nats.NATS) -> None:
    await node.stop()
    await nc.close()
    await node.join_workers(12)


async def events(nc: nats.NATS, prefix: str, kind: str, message_type):  # type: ignore[no-untyped-def]
    js = nc.jetstream()
    sub = await js.subscribe(
        subjects.event(prefix, kind), stream=subjects.events_stream(prefix), ordered_consumer=True,
        deliver_policy=DeliverPolicy.ALL,
    )  # fmt: skip
    found = []
    try:
        while True:
            msg = await sub.next_msg(timeout=2)
            found.append(message_type.FromString(msg.data))
    except nats.errors.TimeoutError:
        pass
    finally:
        await sub.unsubscribe()
    return found


async def test_expiry_warns_four_months_ahead_then_stops_the_camera_and_raises_alarms(
    site: Site, connection: nats.NATS
) -> None:
    add_camera(site, "cam-exp", "demo://plaza?seed=3", expiry_months=5)
    prefix = site.settings.nats_prefix
    packets: list[FramePacket] = []

    async def on_packet(msg) -> None:  # type: ignore[no-untyped-def]
        packets.append(FramePacket.FromString(msg.data))

    await connection.subscribe(subjects.raw(prefix, "cam-exp"), cb=on_packet)
    node, nc = await start_node(site, "r1")
    try:
        await until(lambda: len(packets) > 10, 30, "the camera recording")
        camera = site.registry.camera("cam-exp")
        assert node.current_status(camera).status == "online"
        assert await node.check_authorisations() == []  # five months left: nothing yet

        site.clock.advance(timedelta(days=40))  # less than four months left
        assert await node.check_authorisations() == [("PREF-cam-exp", "expiring")]
        assert await node.check_authorisations() == []  # raised once
        await node.evaluate()
        assert node.current_status(camera).status == "online"  # a warning does not stop recording

        site.clock.advance(timedelta(days=120))  # past expiry
        await node.evaluate()
        assert await node.check_authorisations() == [("PREF-cam-exp", "expired")]
        status = node.current_status(camera)
        assert status.status == "offline" and status.reason.startswith("authorisation expired"), status
        await asyncio.sleep(1.0)  # packets already handed to NATS may still arrive
        stopped_at = len(packets)
        await asyncio.sleep(3.0)
        assert len(packets) == stopped_at, "the camera kept publishing after its authorisation expired"
    finally:
        await stop_node(node, nc)

    notices = await events(connection, prefix, "authorisation.>", AuthorisationNotice)
    assert [(n.reference, n.kind, list(n.camera_ids)) for n in notices] == [
        ("PREF-cam-exp", "expiring", ["cam-exp"]),
        ("PREF-cam-exp", "expired", ["cam-exp"]),
    ]
    alarms = await events(connection, prefix, "alarm.raised", Alarm)
    assert [(a.kind, a.camera_id) for a in alarms] == [
        ("authorisation.expiring", ""),
        ("authorisation.expired", "cam-exp"),
    ]
    assert "file the renewal" in alarms[0].message and "stopped recording" in alarms[1].message
    statuses = await events(connection, prefix, "camera.status", CameraStatusChanged)
    assert [s.status for s in statuses if s.camera_id == "cam-exp"][-2:] == ["online", "offline"]
    assert statuses[-1].reason.startswith("authorisation expired") and statuses[-1].replica == "r1"


async def test_ptz_through_another_replica_moves_the_view_and_every_packet_says_where(
    site: Site, connection: nats.NATS
) -> None:
    camera_id = unique("ptz-")
    url = f"simptz://{camera_id}?width=352&height=288&fps=10"
    add_camera(site, camera_id, url, ptz_driver="simulated", width=352, height=288)
    packets: list[FramePacket] = []

    async def on_packet(msg) -> None:  # type: ignore[no-untyped-def]
        packets.append(FramePacket.FromString(msg.data))

    await connection.subscribe(subjects.raw(site.settings.nats_prefix, camera_id), cb=on_packet)
    nodes = [await start_node(site, "r1"), await start_node(site, "r2")]
    try:
        holder = await until(
            lambda: next((n for n, _ in nodes if n.controller(camera_id) is not None), None), 30, "a holder"
        )
        other = next(n for n, _ in nodes if n is not holder)
        operator = ingest_pb2.PtzActor(user="dupont", priority=50, role="operator")
        police = ingest_pb2.PtzActor(user="agent-pn", priority=60, role="police_nationale")
        await until(lambda: len(packets) > 5, 30, "packets")
        assert all(p.HasField("ptz") for p in packets) and packets[-1].ptz.pan == 0

        move = ingest_pb2.PtzCommand(
            camera_id=camera_id,
            actor=operator,
            kind="absolute",
            vector=ingest_pb2.PtzVector(pan=0.6, tilt=0.2, zoom=0.5),
        )
        state = await ptz.call(other, "PtzMove", move)  # forwarded over NATS to the holder
        assert state.session.holder == "dupont" and state.session.priority == 50
        moving = await until(lambda: [p for p in packets if p.moving], 10, "packets flagged as moving")
        assert moving
        await until(lambda: packets[-1].ptz.pan > 0.59 and not packets[-1].moving, 20, "the camera at its target")
        assert abs(packets[-1].ptz.zoom - 0.5) < 0.01

        with pytest.raises(Refusal) as busy:
            await ptz.call(other, "PtzMove", ingest_pb2.PtzCommand(camera_id=camera_id, actor=ingest_pb2.PtzActor(
                user="martin", priority=50), kind="stop"))  # fmt: skip
        assert busy.value.code.name == "ABORTED" and "held by dupont (priority 50" in str(busy.value)

        state = await ptz.call(other, "PtzMove", ingest_pb2.PtzCommand(camera_id=camera_id, actor=police, kind="home"))
        assert state.session.holder == "agent-pn"

        preset = ingest_pb2.PtzPresetRequest(camera_id=camera_id, actor=police, name="entrance", has_position=True,
                                             position=ingest_pb2.PtzVector(pan=-0.5, tilt=0.0, zoom=0.2))  # fmt: skip
        await ptz.call(other, "PtzSetPreset", preset)
        state = await ptz.call(
            holder,
            "PtzMove",
            ingest_pb2.PtzCommand(camera_id=camera_id, actor=police, kind="preset", preset="entrance"),
        )
        assert [p.name for p in state.presets] == ["entrance"]
        await until(lambda: abs(packets[-1].ptz.pan + 0.5) < 0.01, 20, "the preset's position in the packets")

        with pytest.raises(Refusal) as refused:
            await ptz.call(other, "PtzReserve", ingest_pb2.PtzReserveRequest(camera_id=camera_id, actor=operator,
                                                                             duration_s=60))  # fmt: skip
        assert refused.value.code.name == "PERMISSION_DENIED"
        no_ptz = unique("fixed-")
        add_camera(site, no_ptz, "demo://fixed")
        await other.refresh()
        with pytest.raises(Refusal, match="has no PTZ"):
            await ptz.call(other, "PtzGetState", ingest_pb2.PtzCameraRequest(camera_id=no_ptz, actor=operator))
    finally:
        for node, nc in nodes:
            await stop_node(node, nc)


async def test_ptz_reservation_and_guard_tour_carry_on_in_the_next_replica_holding_the_camera(
    site: Site, connection: nats.NATS
) -> None:
    camera_id = unique("ptz-")
    add_camera(
        site, camera_id, f"simptz://{camera_id}?width=352&height=288&fps=10", ptz_driver="simulated", width=352,
        height=288,
    )  # fmt: skip
    packets: list[FramePacket] = []

    async def on_packet(msg) -> None:  # type: ignore[no-untyped-def]
        packets.append(FramePacket.FromString(msg.data))

    await connection.subscribe(subjects.raw(site.settings.nats_prefix, camera_id), cb=on_packet)
    nodes = {name: await start_node(site, name) for name in ("r1", "r2")}

    async def holder_after(previous: IngestNode | None) -> IngestNode:
        return await until(
            lambda: next(
                (n for n, _ in nodes.values() if n is not previous and n.controller(camera_id) is not None), None
            ),
            30,
            "a replica holding the camera",
        )

    def state(node: IngestNode):  # type: ignore[no-untyped-def]
        return ptz.call(node, "PtzGetState", ingest_pb2.PtzCameraRequest(camera_id=camera_id, actor=operator))

    supervisor = ingest_pb2.PtzActor(user="chef", priority=80, role="supervisor")
    operator = ingest_pb2.PtzActor(user="dupont", priority=50, role="operator")
    police = ingest_pb2.PtzActor(user="agent-pn", priority=60, role="police_nationale")
    try:
        first = await holder_after(None)
        await until(lambda: first.controller(camera_id).ptz_state() is not None, 20, "the PTZ driver connected")
        await ptz.call(first, "PtzReserve", ingest_pb2.PtzReserveRequest(camera_id=camera_id, actor=supervisor,
                                                                         duration_s=600))  # fmt: skip
        # The holder goes away: the next one keeps the supervisor's reservation.
        await stop_node(*nodes.pop(next(k for k, (n, _) in nodes.items() if n is first)))
        second = await holder_after(first)
        taken = await state(second)
        assert taken.has_session and taken.session.holder == "chef" and taken.session.reserved
        assert taken.session.time_left_s > 500
        with pytest.raises(Refusal) as busy:
            await ptz.call(second, "PtzMove", ingest_pb2.PtzCommand(camera_id=camera_id, actor=operator, kind="home"))
        assert busy.value.code.name == "ABORTED" and "reserved by chef (priority 80" in str(busy.value)
        await ptz.call(second, "PtzRelease", ingest_pb2.PtzReleaseRequest(camera_id=camera_id, actor=supervisor))

        # A guard tour running in the replica that goes away runs on in the next one.
        for name, pan in (("nord", -0.6), ("sud", 0.6)):
            await ptz.call(second, "PtzSetPreset", ingest_pb2.PtzPresetRequest(
                camera_id=camera_id, actor=police, name=name, has_position=True,
                position=ingest_pb2.PtzVector(pan=pan, tilt=0.0, zoom=0.1)))  # fmt: skip
        steps = [ingest_pb2.PtzTourStep(preset="nord", dwell_s=1), ingest_pb2.PtzTourStep(preset="sud", dwell_s=1)]
        ronde = ingest_pb2.PtzTour(name="ronde", steps=steps)
        tour = ingest_pb2.PtzTourRequest(camera_id=camera_id, actor=police, tour=ronde)
        await ptz.call(second, "PtzPutTour", tour)
        await ptz.call(second, "PtzStartTour", tour)
        await until(lambda: packets and packets[-1].ptz.pan < -0.59, 30, "the tour at its first preset")
        nodes["r3"] = await start_node(site, "r3")
        await stop_node(*nodes.pop(next(k for k, (n, _) in nodes.items() if n is second)))
        third = await holder_after(second)
        carried = await state(third)
        assert carried.session.tour == "ronde" and carried.session.holder == "agent-pn"
        handed_over = len(packets)
        await until(lambda: any(p.ptz.pan > 0.59 for p in packets[handed_over:]), 40, "the tour reaching 'sud'")
        await until(lambda: any(p.ptz.pan < -0.59 for p in packets[handed_over:]), 40, "the tour back at 'nord'")
        # An operator steering takes over from the tour there, as anywhere (tours run at a low priority).
        home = ingest_pb2.PtzCommand(camera_id=camera_id, actor=operator, kind="home")
        moved = await ptz.call(third, "PtzMove", home)
        assert moved.session.holder == "dupont" and not moved.session.tour
    finally:
        for node, nc in nodes.values():
            await stop_node(node, nc)


async def test_an_edit_restarts_a_camera_only_when_its_source_changes_and_says_so(
    site: Site, connection: nats.NATS
) -> None:
    """Renaming a camera, moving it or changing its groups keeps its stream (no hole in the recording);
    a new URL restarts it, and its status says why (the archive names the hole "camera_reconfigured")."""
    add_camera(site, "cam-edit", "demo://plaza?seed=3")
    prefix = site.settings.nats_prefix
    sessions: list[str] = []

    async def on_packet(msg) -> None:  # type: ignore[no-untyped-def]
        sessions.append(FramePacket.FromString(msg.data).source_session)

    await connection.subscribe(subjects.raw(prefix, "cam-edit"), cb=on_packet)
    node, nc = await start_node(site, "r1")
    try:
        await until(lambda: len(sessions) > 10, 30, "the camera streaming")
        before = sessions[-1]
        site.clock.advance(timedelta(seconds=1))  # the registry stamps the edit on its (manual) clock
        edited = (
            site.registry.camera("cam-edit")
            .as_input()
            .model_copy(update={"name": "Parvis (renamed)", "groups": ["centre"], "lat": 45.761})
        )
        site.registry.update_camera(edited, "admin")
        await node.refresh()
        await node.evaluate()
        count = len(sessions)
        await until(lambda: len(sessions) > count + 10, 30, "more packets after the edit")
        assert set(sessions[count:]) == {before}, "the stream restarted for an edit it does not read"
        assert node.units["cam-edit"].record.name == "Parvis (renamed)"

        site.clock.advance(timedelta(seconds=1))
        moved = site.registry.camera("cam-edit").as_input().model_copy(update={"main_url": "demo://plaza?seed=4"})
        site.registry.update_camera(moved, "admin")
        await node.refresh()
        await node.evaluate()
        await until(lambda: sessions[-1] != before, 30, "the stream restarted on its new source")
    finally:
        await stop_node(node, nc)
    statuses = [s for s in await events(connection, prefix, "camera.status", CameraStatusChanged)]
    restarts = [s for s in statuses if s.camera_id == "cam-edit" and s.reason.startswith("restarting")]
    assert [(s.status, s.reason, s.previous_status) for s in restarts] == [
        ("connecting", "restarting: main_url changed", "online")
    ]
