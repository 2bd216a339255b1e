"""Masked stills for the mask editor: the latest keyframe (or a PTZ preset's view as last seen),
with the applied mask set or a draft burned in, as JPEG.

The unmasked still never leaves this module: the JPEG is encoded from the filled planes, with
the same decision rules as the frame path (a draft is projected the same way; a stale PTZ
position masks the whole preview).
"""

import cv2

from services.common.pb.csu.v1.frame_pb2 import PtzPosition
from services.common.pb.csu.v1.masking_pb2 import PreviewImage, PreviewRequest
from services.common.refusals import NotFound, Unavailable
from services.masking.masks import Yuv
from services.masking.pipeline import CameraMasker
from services.masking.planner import MaskPlanner, MaskSet
from services.masking.router import CameraRouter
from services.masking.stills import Still, render_still

# A preset matches a still taken within this distance on each axis (generic units).
PRESET_TOLERANCE = 0.01
JPEG_QUALITY = 85


def _preset_still(masker: CameraMasker | CameraRouter, request: PreviewRequest) -> Still:
    if not request.has_preset_position:
        raise NotFound(f"unknown position for preset {request.preset!r}")
    target = request.preset_position
    best: tuple[float, Still] | None = None
    for key, still in list(masker.position_stills.items()):
        distance = max(abs(key[0] - target.pan), abs(key[1] - target.tilt), abs(key[2] - target.zoom))
        if distance <= PRESET_TOLERANCE and (best is None or distance < best[0]):
            best = (distance, still)
    if best is None:
        raise NotFound(
            f"no image of preset {request.preset!r} seen yet: send the camera there once, then ask again",
        )
    return best[1]


def render_preview(
    masker: CameraMasker | CameraRouter, request: PreviewRequest, draft: MaskSet | None, colour: Yuv
) -> PreviewImage:
    still = _preset_still(masker, request) if request.preset else masker.still
    if still is None:
        raise NotFound(f"no image received from camera {masker.camera_id} yet")
    current = masker.planner
    # A planner of its own: the frame path's caches are not shared across threads. A draft drawn
    # before the camera was calibrated is shown through the default optics, so that its author can
    # see the scene to calibrate and draw; the approved set is shown as the frames are masked.
    planner = MaskPlanner(
        draft if draft is not None else current.masks, current.ptz_model, current.policy, current.margin_px,
        current.missing_reason, allow_uncalibrated=draft is not None,
    )  # fmt: skip
    image, decision = render_still(still, planner, colour, request.max_width)
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise Unavailable("the preview could not be encoded")
    answer = PreviewImage(
        jpeg=jpeg.tobytes(),
        mask_version=planner.version,
        capture_time_us=still.info.capture_time_us,
        fully_masked=decision.raster is None,
        width=image.shape[1],
        height=image.shape[0],
        reason=decision.reason,
    )
    if still.info.ptz is not None:
        pan, tilt, zoom, read_us = still.info.ptz
        answer.ptz.CopyFrom(PtzPosition(pan=pan, tilt=tilt, zoom=zoom, read_time_us=read_us))
        answer.has_ptz = True
    return answer
