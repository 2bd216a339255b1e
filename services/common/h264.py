"""Just enough H.264 bitstream knowledge to remux masked packets without decoding them.

Masked packets are Annex B (start-code delimited) with SPS/PPS in-band on every keyframe, which is
what libx264 emits when no global header is requested; everything here relies on that.
"""

import re

_START_CODE = re.compile(b"\x00\x00\x01")
NAL_SPS = 7
NAL_PPS = 8
NAL_IDR = 5


def nal_units(data: bytes) -> list[bytes]:
    """The NAL units of an Annex B buffer, without their start codes."""
    starts = [m.end() for m in _START_CODE.finditer(data)]
    units = []
    for i, start in enumerate(starts):
        end = starts[i + 1] - 3 if i + 1 < len(starts) else len(data)
        unit = data[start:end]
        # A 4-byte start code leaves its leading zero on the previous unit.
        if i + 1 < len(starts):
            unit = unit.rstrip(b"\x00")
        if unit:
            units.append(unit)
    return units


def nal_type(unit: bytes) -> int:
    return unit[0] & 0x1F


def has_parameter_sets(data: bytes) -> bool:
    types = {nal_type(u) for u in nal_units(data)}
    return NAL_SPS in types and NAL_PPS in types


def mse_codec(keyframe: bytes) -> str:
    """The RFC 6381 codec string ("avc1.64001f") browsers need to open a Media Source buffer."""
    for unit in nal_units(keyframe):
        if nal_type(unit) == NAL_SPS and len(unit) >= 4:
            return f"avc1.{unit[1]:02x}{unit[2]:02x}{unit[3]:02x}"
    raise ValueError("keyframe carries no SPS")
