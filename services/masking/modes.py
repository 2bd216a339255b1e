"""Which of the three ways through masking a camera takes (DESIGN §3), and why not a cheaper one.

- burn in: decode, fill the approved masks, burn date, time and camera name in, encode. The
  default, and where every doubt leads.
- pass-through: a fixed camera under a supervisor's signed statement that no private area is in
  view, with no approved mask to apply: its packets go out as the camera encoded them (no decode,
  no encode). The camera's own OSD must carry date, time and camera identity (declared on the
  camera, `camera_osd`), since masking burns nothing in.
- camera-masked: the camera burns the approved mask set itself (pushed and read back through
  ingest's ONVIF driver); masking decodes keyframes (and frames while a PTZ camera moves) to check
  that every approved polygon is covered by the pushed uniform colour, and passes the camera's
  packets while that holds. Needs the camera's own OSD too.

`wanted` is the policy on what the node knows about a camera; the per-packet conditions (codec,
B-frames, read-back age, verification) are the router's (router.py). Both only ever choose a
cheaper way when every condition holds: anything unknown means burning in.
Design: docs/design/masking.md
"""

from dataclasses import dataclass

from services.masking.planner import NO_APPROVED_SET, MaskSet

BURN_IN, PASS_THROUGH, CAMERA_MASKED = "burn_in", "pass_through", "camera_masked"
WAYS = (BURN_IN, PASS_THROUGH, CAMERA_MASKED)

# mask_version of passed-through packets: nothing to mask, under a signed statement.
STATEMENT_VERSION = "statement"
# Suffix of the mask_version of camera-masked packets ("v3@camera": version 3, burned by the camera).
CAMERA_SUFFIX = "@camera"

# Why a camera is burned in (metric label values, audit details).
NO_STATEMENT = "no_statement_in_force"
PTZ_CAMERA = "ptz_camera"
NO_CAMERA_OSD = "camera_osd_not_declared"
MASKS_APPROVED = "masks_approved"
MASKS_UNKNOWN = "mask_set_unavailable"
CAMERA_MASKS_OFF = "camera_masks_not_enabled"
NOT_H264 = "not_h264"
B_FRAMES = "b_frames"
READBACK_MISSING = "readback_missing"
READBACK_MISMATCH = "readback_mismatch"
READBACK_STALE = "readback_stale"
NEW_SESSION = "new_session_unconfirmed"
VERIFICATION_FAILED = "verification_failed"
POSITION_UNKNOWN = "position_unknown"
OUT_OF_SYNC = "decoder_out_of_sync"


@dataclass(frozen=True)
class CameraFacts:
    """What the node knows about a camera from ingest's registry and masking's own tables."""

    ptz: bool = False
    # A supervisor's signed no-private-area statement, verified and not withdrawn.
    statement: bool = False
    # The camera burns date, time and its identity into its own image (declared by an admin).
    camera_osd: bool = False
    # The camera is to burn the approved masks itself (its driver supports it).
    camera_masks: bool = False


@dataclass(frozen=True)
class Confirmation:
    """A read-back of the camera's own masks: the approved version it holds exactly, or a problem."""

    version: str
    read_us: int
    problem: str = ""


def wanted(facts: CameraFacts, masks: MaskSet | None, missing_reason: str = NO_APPROVED_SET) -> tuple[str, str]:
    """(way, reason): the cheapest way the camera may take; the reason names why not cheaper."""
    has_polygons = masks is not None and bool(masks.polygons)
    if masks is None and missing_reason != NO_APPROVED_SET:
        return BURN_IN, MASKS_UNKNOWN
    if not has_polygons:
        if not facts.statement:
            return BURN_IN, NO_STATEMENT
        if facts.ptz:
            return BURN_IN, PTZ_CAMERA
        if not facts.camera_osd:
            return BURN_IN, NO_CAMERA_OSD
        return PASS_THROUGH, ""
    if not facts.camera_masks:
        return BURN_IN, MASKS_APPROVED
    if not facts.camera_osd:
        return BURN_IN, NO_CAMERA_OSD
    return CAMERA_MASKED, ""
