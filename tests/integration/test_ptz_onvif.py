"""The ONVIF PTZ driver (onvif-zeep-async) against a real SOAP 1.2 ONVIF PTZ device on loopback
(tests/support/onvif_ptz.py, backed by the simulated PTZ camera), alone and under the controller.

This proves the driver's SOAP exchanges, WS-Security digest, profile discovery, coordinate mapping
and fault handling against the ONVIF WSDLs; it does not prove any vendor's firmware behaves the same.
"""

import asyncio
from pathlib import Path

import pytest

from services.common import db
from services.common.clock import SystemClock
from services.common.secretbox import SecretBox
from services.common.settings import Settings
from services.ingest.ptz.arbitration import PtzBusy
from services.ingest.ptz.controller import Actor, PtzController
from services.ingest.ptz.driver import PtzError
from services.ingest.ptz.onvif import OnvifPtzDriver
from services.ingest.ptz.sim import SimPtzCamera
from services.ingest.registry import Registry
from services.ingest.specs import CameraInput
from tests.support.onvif_ptz import OnvifPtzServer
from tests.support.platform import until
from tests.support.servers import free_port


@pytest.fixture
def device() -> OnvifPtzServer:
    with OnvifPtzServer(SimPtzCamera("onvif-dome"), "operateur", "Pa55-word!") as server:
        yield server


async def test_driver_moves_reads_presets_and_home(device: OnvifPtzServer) -> None:
    driver = OnvifPtzDriver(device.url())
    await driver.connect()
    try:
        start = await driver.status()
        assert (start.pan, start.tilt, start.zoom, start.moving) == (0, 0, 0, False)

        await driver.absolute_move(0.4, -0.3, 0.5)
        assert (await driver.status()).moving
        await until(lambda: _at(driver, 0.4, -0.3, 0.5), 10, "the absolute position")

        await driver.relative_move(-0.2, 0.1, 0.0)
        await until(lambda: _at(driver, 0.2, -0.2, 0.5), 10, "the relative move")

        token = await driver.set_preset("entree")
        assert await driver.presets() == {token: "entree"}
        await driver.continuous_move(1.0, 0.0, 0.0)
        await asyncio.sleep(0.3)
        await driver.stop()
        moved = await driver.status()
        assert moved.pan > 0.25 and not moved.moving
        await driver.goto_preset(token)
        await until(lambda: _at(driver, 0.2, -0.2, 0.5), 10, "the preset")

        await driver.set_home()
        await driver.absolute_move(-1, 1, 0)
        await until(lambda: _at(driver, -1, 1, 0), 15, "the corner")
        await driver.goto_home()
        await until(lambda: _at(driver, 0.2, -0.2, 0.5), 15, "home")
        await driver.remove_preset(token)
        assert await driver.presets() == {}
        with pytest.raises(PtzError, match="GotoPreset failed"):
            await driver.goto_preset(token)
    finally:
        await driver.close()
    ops = device.operations()
    assert ops[:3] == ["GetSystemDateAndTime", "GetServices", "GetProfiles"]
    assert {"ContinuousMove", "AbsoluteMove", "RelativeMove", "Stop", "SetPreset", "GotoPreset", "RemovePreset",
            "GotoHomePosition", "SetHomePosition", "GetStatus", "GetPresets"} <= set(ops)  # fmt: skip
    assert all(user == "operateur" for op, user in device.calls if op != "GetSystemDateAndTime")


async def _at(driver: OnvifPtzDriver, pan: float, tilt: float, zoom: float) -> bool:
    s = await driver.status()
    return not s.moving and abs(s.pan - pan) < 0.01 and abs(s.tilt - tilt) < 0.01 and abs(s.zoom - zoom) < 0.01


async def test_wrong_credentials_and_unreachable_cameras_are_named(device: OnvifPtzServer) -> None:
    with pytest.raises(PtzError, match=r"wrong credentials") as wrong:
        await OnvifPtzDriver(device.url(password="guessed")).connect()
    assert "guessed" not in str(wrong.value) and "***@127.0.0.1" in str(wrong.value)
    with pytest.raises(PtzError, match="cannot connect to ONVIF camera") as unreachable:
        await OnvifPtzDriver(f"http://u:p@127.0.0.1:{free_port()}/onvif/device_service").connect()
    assert "p@" not in str(unreachable.value)


async def test_controller_over_onvif_arbitrates_and_tracks_the_position(
    device: OnvifPtzServer, database_url: str, tmp_path: Path
) -> None:
    key = tmp_path / "k"
    SecretBox.generate(key)
    settings = Settings(database_url=database_url, data_dir=tmp_path, ptz_idle_timeout_s=5)  # type: ignore[call-arg]
    engine = db.make_engine(settings)
    db.migrate("ingest", engine)
    registry = Registry(engine, SecretBox.from_file(key), SystemClock())
    registry.create_camera(
        CameraInput(
            id="dome",
            name="Dôme",
            main_url="rtsp://10.0.0.1/s",
            lat=45,
            lon=4,
            width=1280,
            height=720,
            fps=12,
            ptz_driver="onvif",
            ptz_url=device.url(),
        ),
        "admin",
    )
    controller = PtzController("dome", "onvif", OnvifPtzDriver(device.url()), registry, settings, SystemClock())
    controller.start()
    try:
        await until(_async(lambda: controller.ptz_state() is not None), 20, "the first position read")
        dupont, police = Actor("dupont", 50, "operator"), Actor("agent-pn", 60, "police_nationale")
        await controller.command(dupont, "absolute", (0.5, 0.0, 0.2))
        assert controller.ptz_state().moving  # at once, before the camera reports it
        await until(_async(lambda: abs(controller.ptz_state().pan - 0.5) < 0.01), 15, "the polled position")
        with pytest.raises(PtzBusy, match="held by dupont"):
            await controller.command(Actor("martin", 50), "stop", (0, 0, 0))
        await controller.set_preset(police, "pont", None)
        assert registry.presets("dome")["pont"][0] == pytest.approx(0.5, abs=0.01)
        await controller.command(police, "home", (0, 0, 0))
        state = await controller.state()
        assert state.session.holder == "agent-pn" and state.driver == "onvif" and not state.driver_problem
    finally:
        await controller.close()


def _async(check):  # type: ignore[no-untyped-def]
    async def wrapped() -> bool:
        return bool(check())

    return wrapped
