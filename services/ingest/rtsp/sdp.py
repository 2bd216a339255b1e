"""The camera's session description (SDP, RFC 4566), as far as ingest needs it: its first video
track, that track's codec, payload type, clock, parameter sets and control URL.

Control URLs resolve the way FFmpeg resolves them (and cameras expect): an absolute URL is used as
it is, `*` or none means the base, anything else is appended to the base after one "/". The base is
the DESCRIBE answer's Content-Base (else Content-Location, else the URL asked for).
"""

import base64
import binascii
from dataclasses import dataclass

# Encoding names (rtpmap) of the codecs the RTP depacketizers take.
CODECS = {"H264": "h264", "H265": "hevc", "HEVC": "hevc"}
# Static payload types a camera may use without an rtpmap line (RFC 3551).
_STATIC = {26: ("jpeg", 90_000), 32: ("mpv", 90_000), 34: ("h263", 90_000)}


class SdpError(ValueError):
    """The description has no usable video track."""


@dataclass(frozen=True)
class VideoTrack:
    codec: str  # "h264", "hevc", or the camera's encoding name in lower case (then FFmpeg reads it)
    payload_type: int
    clock_rate: int
    control: str  # absolute URL of the track (SETUP)
    session_control: str  # absolute URL of the whole session (PLAY)
    # NAL units from sprop-parameter-sets (H.264) or sprop-vps/sps/pps (H.265), in that order.
    parameter_sets: tuple[bytes, ...]
    frame_rate: float  # a=framerate, 0 when not given
    fmtp: dict[str, str]


def resolve(base: str, control: str) -> str:
    if not control or control == "*":
        return base
    if "://" in control:
        return control
    return (base if base.endswith("/") else base + "/") + control


def _sprop(value: str) -> list[bytes]:
    units = []
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            unit = base64.b64decode(item + "=" * (-len(item) % 4), validate=False)
        except (binascii.Error, ValueError):
            continue
        if unit:
            units.append(unit)
    return units


def _fmtp(value: str) -> dict[str, str]:
    params = {}
    for item in value.split(";"):
        name, sep, param = item.strip().partition("=")
        if sep and name:
            params[name.strip().lower()] = param.strip()
    return params


def video_track(sdp: bytes, base: str) -> VideoTrack:
    """The first video track of the description; SdpError when there is none."""
    text = sdp.decode("utf-8", errors="replace")
    session_control = ""
    media: list[tuple[str, list[str]]] = []  # (m= line, its attribute lines)
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("m="):
            media.append((line[2:], []))
        elif line.startswith("a="):
            if media:
                media[-1][1].append(line[2:])
            elif line.startswith("a=control:"):
                session_control = line[len("a=control:") :].strip()
    for description, attributes in media:
        fields = description.split()
        if len(fields) < 4 or fields[0] != "video":
            continue
        formats = [int(f) for f in fields[3:] if f.isdigit()]
        if not formats:
            continue
        payload_type = formats[0]
        codec, clock_rate = _STATIC.get(payload_type, ("", 90_000))
        control, frame_rate, fmtp = "", 0.0, {}
        for attribute in attributes:
            name, _, value = attribute.partition(":")
            if name == "rtpmap":
                pt, _, encoding = value.partition(" ")
                if pt.strip() == str(payload_type):
                    name_rate = encoding.strip().split("/")
                    codec = CODECS.get(name_rate[0].upper(), name_rate[0].lower())
                    if len(name_rate) > 1 and name_rate[1].isdigit():
                        clock_rate = int(name_rate[1])
            elif name == "fmtp":
                pt, _, params = value.partition(" ")
                if pt.strip() == str(payload_type):
                    fmtp = _fmtp(params)
            elif name == "control":
                control = value.strip()
            elif name in ("framerate", "x-framerate"):
                try:
                    frame_rate = max(0.0, float(value.strip()))
                except ValueError:
                    frame_rate = 0.0
        if not codec:
            raise SdpError(f"the camera's video track has payload type {payload_type} and no rtpmap")
        if codec == "h264":
            sets = _sprop(fmtp.get("sprop-parameter-sets", ""))
        elif codec == "hevc":
            sets = [u for key in ("sprop-vps", "sprop-sps", "sprop-pps") for u in _sprop(fmtp.get(key, ""))]
        else:
            sets = []
        return VideoTrack(
            codec=codec,
            payload_type=payload_type,
            clock_rate=clock_rate or 90_000,
            control=resolve(base, control),
            session_control=resolve(base, session_control),
            parameter_sets=tuple(sets),
            frame_rate=frame_rate,
            fmtp=fmtp,
        )
    raise SdpError("the camera describes no video stream")
