"""The three ways through masking in-process: pass-through, camera-masked with its checks, burn in,
and every switch between them, with a leak check on every published frame."""

import cv2
import numpy as np

from services.common.pb.csu.v1.frame_pb2 import FramePacket
from services.masking import modes
from services.masking.masks import rgb_hex_to_yuv
from services.masking.modes import BURN_IN, CAMERA_MASKED, PASS_THROUGH, CameraFacts, Confirmation
from services.masking.pipeline import CameraMasker, EncoderSettings, MaskSet
from services.masking.router import CameraRouter, Switch
from tests.support.frames import T0_US, decode_packets, h264_packets

ENCODER = EncoderSettings(preset="ultrafast", crf=20, threads=1, keyframe_interval_s=1.0)
GREY = rgb_hex_to_yuv("#808080")
SQUARE = [(0.25, 0.25), (0.75, 0.25), (0.75, 0.75), (0.25, 0.75)]
# The square's pixels at 320x240, less a band the encoders may smear.
INSIDE = (slice(64, 176), slice(84, 236))
STATEMENT = CameraFacts(statement=True, camera_osd=True)
CAMERA = CameraFacts(camera_osd=True, camera_masks=True)


def camera_mask(_: int, image: np.ndarray) -> None:
    """What a camera burning the square in does to its image."""
    cv2.rectangle(image, (80, 60), (239, 179), (128, 128, 128), -1)


def router(masks: MaskSet | None, facts: CameraFacts, switches: list[Switch] | None = None) -> CameraRouter:
    masker = CameraMasker("cam-t", masks, GREY, ENCODER)
    return CameraRouter(masker, facts, GREY, switches.append if switches is not None else None)


def run(r: CameraRouter, packets: list[FramePacket]) -> list[FramePacket]:
    out: list[FramePacket] = []
    for p in packets:
        out += r.process(p)
    return out + r.flush()


def sessions(out: list[FramePacket]) -> list[list[FramePacket]]:
    groups: list[list[FramePacket]] = []
    for p in out:
        if not groups or groups[-1][0].source_session != p.source_session:
            groups.append([])
        groups[-1].append(p)
    return groups


images = decode_packets


def masked(image: np.ndarray) -> bool:
    return int(np.abs(image[INSIDE].astype(int) - 128).max()) <= 8


def test_pass_through_publishes_the_cameras_bytes_under_a_statement() -> None:
    packets = h264_packets(25)
    r = router(None, STATEMENT)
    out = run(r, packets)
    assert r.way == PASS_THROUGH
    assert [p.data for p in out] == [p.data for p in packets]
    assert {p.mask_version for p in out} == {modes.STATEMENT_VERSION}
    assert all(p.HasField("codec") for p in out if p.keyframe)
    assert len(images(out)) == 25


def test_pass_through_needs_statement_fixed_camera_declared_osd_and_no_masks() -> None:
    for facts, masks, reason in (
        (CameraFacts(camera_osd=True), None, modes.NO_STATEMENT),
        (CameraFacts(statement=True, camera_osd=True, ptz=True), None, modes.PTZ_CAMERA),
        (CameraFacts(statement=True), None, modes.NO_CAMERA_OSD),
        (STATEMENT, MaskSet("v1", [SQUARE]), modes.MASKS_APPROVED),
    ):
        r = router(masks, facts)
        out = run(r, h264_packets(10))
        assert (r.way, r.reason) == (BURN_IN, reason)
        assert all(masked(i) for i in images(out))


def test_a_set_that_could_not_be_loaded_is_never_passed_through() -> None:
    masker = CameraMasker("cam-t", None, GREY, ENCODER, missing_reason="mask_set_unavailable")
    r = CameraRouter(masker, STATEMENT, GREY)
    out = run(r, h264_packets(10))
    assert r.way == BURN_IN and all(p.fully_masked for p in out)


def test_b_frames_or_another_codec_are_burned_in() -> None:
    packets = h264_packets(10)
    packets[3].dts -= 1  # a reordered stream
    r = router(None, STATEMENT)
    run(r, packets[:10])
    later = h264_packets(10, start_us=T0_US + 1_000_000)
    for p in later:
        r.process(p)
    assert (r.way, r.reason) == (BURN_IN, modes.B_FRAMES)


def test_masks_approved_switch_pass_through_to_burn_in_at_the_next_keyframe() -> None:
    switches: list[Switch] = []
    r = router(None, STATEMENT, switches)
    packets = h264_packets(30)  # keyframes at 0, 10, 20
    out = run(r, packets[:15])
    r.set_masks(MaskSet("v1", [SQUARE]))
    out += run(r, packets[15:])
    assert [p.data for p in out[:20]] == [p.data for p in packets[:20]]  # until the keyframe
    first, second = sessions(out)
    assert len(first) == 20 and {p.mask_version for p in second} == {"v1"}
    assert second[0].keyframe and all(masked(i) for i in images(second))
    assert [(s.previous, s.way, s.reason) for s in switches] == [
        ("", PASS_THROUGH, ""),
        (PASS_THROUGH, BURN_IN, modes.MASKS_APPROVED),
    ]
    assert not any(s.failure for s in switches)


def test_statement_withdrawn_masks_the_whole_image_from_the_next_keyframe() -> None:
    r = router(None, STATEMENT)
    packets = h264_packets(30)
    out = run(r, packets[:12])
    r.set_facts(CameraFacts(camera_osd=True))
    out += run(r, packets[12:])
    first, second = sessions(out)
    assert len(first) == 20
    assert all(p.fully_masked for p in second)


def test_camera_masked_passes_the_cameras_bytes_while_its_masks_verify() -> None:
    packets = h264_packets(30, paint=camera_mask)
    r = router(MaskSet("v1", [SQUARE]), CAMERA)
    r.set_confirmation(Confirmation("v1", T0_US))
    out = run(r, packets)
    assert r.way == CAMERA_MASKED
    assert [p.data for p in out] == [p.data for p in packets]
    assert {p.mask_version for p in out} == {"v1@camera"}
    assert all(masked(i) for i in images(out))
    assert r.still is not None  # the keyframes decoded for the check feed the mask editor's preview


def test_a_dropped_camera_mask_is_burned_in_from_the_keyframe_that_shows_it() -> None:
    # The camera burns the mask for 15 frames, then silently drops it (keyframes at 0, 10, 20).
    packets = h264_packets(30, paint=lambda i, img: camera_mask(i, img) if i < 15 else None)
    switches: list[Switch] = []
    r = router(MaskSet("v1", [SQUARE]), CAMERA, switches)
    r.set_confirmation(Confirmation("v1", T0_US))
    out = run(r, packets)
    assert r.way == BURN_IN and r.reason == modes.VERIFICATION_FAILED
    # Leak check: frames 15-19 are the camera's P-frames of the GOP verified at frame 10 (only
    # keyframes are decoded when the camera is still); from the next keyframe on, burned in.
    for group in sessions(out):
        for index, image in enumerate(images(group)):
            if group[index].mask_version != "v1@camera":
                assert masked(image)
    assert switches[-1].failure and switches[-1].reason == modes.VERIFICATION_FAILED
    # The camera masking again does not bring it back before a new read-back.
    more = h264_packets(10, paint=camera_mask, start_us=T0_US + 3_000_000)
    run(r, more)
    assert r.way == BURN_IN and r.reason == modes.READBACK_STALE
    r.set_confirmation(Confirmation("v1", T0_US + 3_500_000))
    run(r, h264_packets(10, paint=camera_mask, start_us=T0_US + 4_000_000))
    assert r.way == CAMERA_MASKED


def test_a_lost_readback_masks_the_whole_image_at_once_until_the_next_keyframe() -> None:
    packets = h264_packets(30, paint=camera_mask)
    r = router(MaskSet("v1", [SQUARE]), CAMERA)
    r.set_confirmation(Confirmation("v1", T0_US))
    out = run(r, packets[:15])
    r.set_confirmation(Confirmation("", T0_US + 1_400_000, problem="mask 2 missing"))
    out += run(r, packets[15:])
    passed, switched = sessions(out)[:2]
    assert len(passed) == 15
    assert all(p.fully_masked for p in switched[:5]) and switched[0].keyframe
    assert not any(p.fully_masked for p in switched[5:])
    assert all(masked(i) for i in images(switched))
    assert r.reason == modes.READBACK_MISMATCH


def test_a_new_session_is_burned_in_until_the_camera_is_read_back_again() -> None:
    # A camera reboot is a new stream session: its masks may be gone.
    r = router(MaskSet("v1", [SQUARE]), CAMERA)
    r.set_confirmation(Confirmation("v1", T0_US))
    run(r, h264_packets(10, paint=camera_mask))
    assert r.way == CAMERA_MASKED
    rebooted = h264_packets(20, session="s2", start_us=T0_US + 5_000_000)  # no masks after the reboot
    out = run(r, rebooted)
    assert r.way == BURN_IN and r.reason == modes.NEW_SESSION
    # Masked whole while the camera is read back again (no decoding: a replica taking over many
    # cameras at once must not burn them all in)...
    assert all(p.fully_masked for p in out) and all(masked(i) for i in images(out))
    # ...and burned in once that takes longer than the grace period.
    later = run(r, h264_packets(20, session="s2", start_us=T0_US + 16_000_000))
    assert not any(p.fully_masked for p in later[10:]) and all(masked(i) for i in images(later))


def test_a_new_mask_version_unconfirmed_by_the_camera_is_burned_in() -> None:
    r = router(MaskSet("v1", [SQUARE]), CAMERA)
    r.set_confirmation(Confirmation("v1", T0_US))
    packets = h264_packets(20, paint=camera_mask)
    out = run(r, packets[:5])
    r.set_masks(MaskSet("v2", [SQUARE, [(0.0, 0.0), (0.1, 0.0), (0.1, 0.1)]]))
    out += run(r, packets[5:])
    assert r.way == BURN_IN and r.reason == modes.READBACK_MISMATCH
    assert all(masked(i) for group in sessions(out)[1:] for i in images(group))


def test_a_camera_that_never_burns_a_mask_never_has_a_frame_passed() -> None:
    # Pushed and read back, but not burned (a camera silently dropping a mask): caught on the first
    # keyframe, before any of its frames could pass.
    switches: list[Switch] = []
    r = router(MaskSet("v1", [SQUARE]), CAMERA, switches)
    r.set_confirmation(Confirmation("v1", T0_US))
    out = run(r, h264_packets(30))
    assert r.way == BURN_IN and [s.reason for s in switches] == [modes.VERIFICATION_FAILED]
    assert not any(p.mask_version.endswith(modes.CAMERA_SUFFIX) for p in out)
    assert all(masked(i) for i in images(out))


def test_a_ptz_camera_is_checked_on_every_frame_while_it_moves() -> None:
    from services.common.optics import Optics
    from services.common.pb.csu.v1.frame_pb2 import PtzPosition
    from services.masking.projection import model_for

    model = model_for("onvif", Optics.from_zoom_ratio(60.0, 20.0, 360.0, 180.0))
    home = [model.unproject(p, _at(0, 0, 0), 320 / 240) for p in SQUARE]
    # The camera burns the square for 14 frames, then (moving) its mask lags behind the view.
    packets = h264_packets(20, paint=lambda i, img: camera_mask(i, img) if i < 14 else None)
    for i, p in enumerate(packets):
        p.ptz.CopyFrom(PtzPosition(pan=0.0, tilt=0.0, zoom=0.0, read_time_us=p.capture_time_us))
        p.moving = 12 <= i
    masker = CameraMasker("cam-t", MaskSet("v1", [home], "ptz"), GREY, ENCODER, ptz_model=model)
    r = CameraRouter(masker, CameraFacts(ptz=True, camera_osd=True, camera_masks=True), GREY)
    r.set_confirmation(Confirmation("v1", T0_US))
    out = run(r, packets)
    assert r.reason == modes.VERIFICATION_FAILED
    passed = [p for p in out if p.mask_version == "v1@camera"]
    assert len(passed) == 14  # 0-13; frame 14 failed its check and was not passed
    assert all(p.fully_masked for p in out[14:])  # the whole image until the next keyframe


def _at(pan: float, tilt: float, zoom: float):  # type: ignore[no-untyped-def]
    from services.masking.projection import Position

    return Position(pan, tilt, zoom)
