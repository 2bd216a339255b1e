"""Privacy masks held by the camera (ONVIF Media2) against the ONVIF test camera on loopback, whose
RTSP stream really burns them: push, read back, compare, and the cameras that do not keep them."""

import json
from pathlib import Path

import pytest

from services.ingest.onvif_masks import CameraMask, MaskDriverError, compare, sync
from tests.support.onvif_ptz import OnvifPtzServer

GREY = (126, 128, 128)
WINDOWS = CameraMask(((0.42, 0.05), (0.75, 0.05), (0.75, 0.19), (0.42, 0.19)), GREY)
DOOR = CameraMask(((0.1, 0.5), (0.2, 0.5), (0.2, 0.9)), GREY)


@pytest.fixture
def device(tmp_path: Path) -> OnvifPtzServer:
    with OnvifPtzServer(None, "installateur", "Pa55-word!", masks_file=tmp_path / "masks.json") as server:
        yield server


async def test_masks_are_pushed_read_back_and_burned_as_boxes(device: OnvifPtzServer) -> None:
    held, problem = await sync(device.url(), [WINDOWS, DOOR], push=False)
    assert held == [] and "holds 0 enabled mask(s), 2 approved" in problem
    held, problem = await sync(device.url(), [WINDOWS, DOOR], push=True)
    assert problem == "" and len(held) == 2
    burned = json.loads(device.masks_file.read_text())
    assert burned["rects"] == [pytest.approx([0.42, 0.05, 0.75, 0.19]), pytest.approx([0.1, 0.5, 0.2, 0.9])]
    # Pushing again changes nothing (already held); another set replaces it.
    assert (await sync(device.url(), [WINDOWS, DOOR], push=True))[1] == ""
    held, problem = await sync(device.url(), [DOOR], push=True)
    assert problem == "" and len(held) == 1


async def test_a_camera_that_drops_a_mask_reports_it_and_one_that_reboots_forgets_them(
    device: OnvifPtzServer,
) -> None:
    device.drop_mask = 1
    held, problem = await sync(device.url(), [WINDOWS, DOOR], push=True)
    # What the camera says it holds is right: only its pixels can show the drop (masking's check).
    assert problem == "" and len(json.loads(device.masks_file.read_text())["rects"]) == 1
    device.reboot()
    held, problem = await sync(device.url(), [WINDOWS, DOOR], push=False)
    assert held == [] and problem


async def test_wrong_credentials_and_a_camera_without_media2_are_clear_errors(device: OnvifPtzServer) -> None:
    with pytest.raises(MaskDriverError, match="not authorized"):
        await sync(device.url(password="wrong"), [WINDOWS], push=True)
    with OnvifPtzServer(None, "u", "p") as plain:
        with pytest.raises(MaskDriverError, match="no ONVIF Media2 service"):
            await sync(plain.url(), [WINDOWS], push=True)


def test_compare_tolerates_rounding_and_vertex_order_not_shape_or_colour() -> None:
    rounded = CameraMask(((0.751, 0.05), (0.751, 0.191), (0.42, 0.19), (0.42, 0.05)), GREY)
    assert compare([WINDOWS], [rounded]) == ""
    shrunk = CameraMask(((0.42, 0.05), (0.70, 0.05), (0.70, 0.19), (0.42, 0.19)), GREY)
    assert compare([WINDOWS], [shrunk]) != ""
    assert compare([WINDOWS], [CameraMask(WINDOWS.polygon, (16, 128, 128))]) != ""
    assert compare([WINDOWS], [CameraMask(WINDOWS.polygon, GREY, enabled=False)]) != ""
    assert compare([WINDOWS], [CameraMask(WINDOWS.polygon, GREY, kind="Blurred")]) != ""
