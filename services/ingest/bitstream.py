"""In-band parameter sets: noticing a camera that changes codec parameters mid-stream.

A camera reconfigured while streaming (new resolution, profile, bitrate mode) keeps the RTSP
session and sends new SPS/PPS (VPS for H.265) in-band before its next keyframe; the demuxer's
codec parameters still describe the old ones. Ingest compares the parameter sets carried by each
keyframe with the previous ones; on a change it starts a new source session (so no consumer joins
packets of two configurations, e.g. into one segment) and sends the new parameters and size.

Only Annex B packets (start codes) carry in-band parameter sets; MP4-style length-prefixed
packets (files) keep theirs out of band, where the demuxer reports them.
"""

from collections.abc import Buffer
from dataclasses import dataclass

H264_SPS, H264_PPS = 7, 8
HEVC_VPS, HEVC_SPS, HEVC_PPS = 32, 33, 34
_START = b"\x00\x00\x01"
# Parameter sets precede the access unit's coded slices, and a keyframe of a 1080p camera is
# hundreds of kB of slice data: only its head is copied and walked, growing if its non-slice units
# (SEI, parameter sets) do not fit.
_HEAD = 4096


@dataclass(frozen=True)
class ParameterSets:
    units: tuple[bytes, ...]
    width: int
    height: int

    def annexb(self) -> bytes:
        return b"".join(b"\x00\x00\x00\x01" + u for u in self.units)


def _kind(codec: str, header: int) -> tuple[bool, bool]:
    """(is a parameter set, is a coded slice) for a NAL unit's first byte."""
    if codec == "h264":
        kind = header & 0x1F
        return kind in (H264_SPS, H264_PPS), 1 <= kind <= 5
    kind = (header >> 1) & 0x3F
    return kind in (HEVC_VPS, HEVC_SPS, HEVC_PPS), kind <= 31


def _leading_sets(codec: str, head: bytes, whole: bool) -> list[bytes] | None:
    """The parameter sets among the NAL units before the first slice; None if head stops short of it."""
    sets: list[bytes] = []
    start = head.find(_START)
    while start >= 0:
        start += 3
        end = head.find(_START, start)
        if start < len(head):
            is_set, is_slice = _kind(codec, head[start])
            if is_slice:
                return sets
            if is_set:
                if end < 0 and not whole:
                    return None
                # A 4-byte start code leaves its leading zero on the previous unit.
                unit = head[start:end].rstrip(b"\x00") if end >= 0 else head[start:]
                if unit:
                    sets.append(unit)
        start = end
    return sets if whole else None


def parameter_sets(codec: str, data: Buffer) -> ParameterSets | None:
    """The parameter sets a keyframe carries in-band, or None (none, or not Annex B)."""
    if codec not in ("h264", "hevc"):
        return None
    view = memoryview(data)
    if not (view[:3] == _START or view[:4] == b"\x00" + _START):
        return None
    size = view.nbytes
    limit = _HEAD
    while (units := _leading_sets(codec, bytes(view[:limit]), limit >= size)) is None:
        limit *= 8
    if not units:
        return None
    width, height = picture_size(codec, units)
    return ParameterSets(tuple(units), width, height)


def picture_size(codec: str, units: "tuple[bytes, ...] | list[bytes]") -> tuple[int, int]:
    """Width and height from the sequence parameter set among units ((0, 0) when none parses)."""
    for unit in units:
        try:
            if codec == "h264" and unit[0] & 0x1F == H264_SPS:
                return h264_sps_size(unit)
            if codec == "hevc" and (unit[0] >> 1) & 0x3F == HEVC_SPS:
                return hevc_sps_size(unit)
        except (IndexError, ValueError):
            return 0, 0
    return 0, 0


class _Bits:
    """Exp-Golomb reader over an RBSP (emulation prevention bytes removed)."""

    def __init__(self, data: bytes) -> None:
        self.data = data.replace(b"\x00\x00\x03", b"\x00\x00")
        self.pos = 0

    def bit(self) -> int:
        byte = self.data[self.pos >> 3]
        value = (byte >> (7 - (self.pos & 7))) & 1
        self.pos += 1
        return value

    def bits(self, n: int) -> int:
        value = 0
        for _ in range(n):
            value = (value << 1) | self.bit()
        return value

    def ue(self) -> int:
        zeros = 0
        while self.bit() == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("invalid exp-Golomb code")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        value = self.ue()
        return (value + 1) // 2 if value & 1 else -(value // 2)


def h264_sps_size(sps: bytes) -> tuple[int, int]:
    """Displayed width and height from an H.264 SPS NAL unit (ITU-T H.264 7.3.2.1.1)."""
    r = _Bits(sps[1:])
    profile_idc = r.bits(8)
    r.bits(16)  # constraint flags, level_idc
    r.ue()  # seq_parameter_set_id
    chroma_format_idc = 1
    if profile_idc in (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135):
        chroma_format_idc = r.ue()
        if chroma_format_idc == 3:
            r.bit()  # separate_colour_plane_flag
        r.ue()  # bit_depth_luma_minus8
        r.ue()  # bit_depth_chroma_minus8
        r.bit()  # qpprime_y_zero_transform_bypass_flag
        if r.bit():  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma_format_idc != 3 else 12):
                if r.bit():
                    size = 16 if i < 6 else 64
                    last = next_scale = 8
                    for _ in range(size):
                        if next_scale:
                            next_scale = (last + r.se() + 256) % 256
                        last = next_scale or last
    r.ue()  # log2_max_frame_num_minus4
    poc_type = r.ue()
    if poc_type == 0:
        r.ue()
    elif poc_type == 1:
        r.bit()
        r.se()
        r.se()
        for _ in range(r.ue()):
            r.se()
    r.ue()  # max_num_ref_frames
    r.bit()  # gaps_in_frame_num_value_allowed_flag
    width_mbs = r.ue() + 1
    height_map_units = r.ue() + 1
    frame_mbs_only = r.bit()
    if not frame_mbs_only:
        r.bit()  # mb_adaptive_frame_field_flag
    r.bit()  # direct_8x8_inference_flag
    width = width_mbs * 16
    height = height_map_units * 16 * (2 - frame_mbs_only)
    if r.bit():  # frame_cropping_flag
        left, right, top, bottom = r.ue(), r.ue(), r.ue(), r.ue()
        crop_x = 1 if chroma_format_idc in (0, 3) else 2
        crop_y = (1 if chroma_format_idc in (0, 2) else 2) * (2 - frame_mbs_only)
        if chroma_format_idc == 0:
            crop_y = 2 - frame_mbs_only
        width -= (left + right) * crop_x
        height -= (top + bottom) * crop_y
    return width, height


def hevc_sps_size(sps: bytes) -> tuple[int, int]:
    """Displayed width and height from an H.265 SPS NAL unit (ITU-T H.265 7.3.2.2.1)."""
    r = _Bits(sps[2:])
    r.bits(4)  # sps_video_parameter_set_id
    sub_layers = r.bits(3)  # sps_max_sub_layers_minus1
    r.bit()  # sps_temporal_id_nesting_flag
    # profile_tier_level(1, sps_max_sub_layers_minus1): the general part is 88 + 8 bits.
    r.bits(88)
    r.bits(8)  # general_level_idc
    present = [(r.bit(), r.bit()) for _ in range(sub_layers)]  # sub-layer profile, level present
    if sub_layers > 0:
        r.bits(2 * (8 - sub_layers))  # reserved_zero_2bits
    for profile, level in present:
        if profile:
            r.bits(88)
        if level:
            r.bits(8)
    r.ue()  # sps_seq_parameter_set_id
    chroma_format_idc = r.ue()
    if chroma_format_idc == 3:
        r.bit()  # separate_colour_plane_flag
    width, height = r.ue(), r.ue()
    if r.bit():  # conformance_window_flag
        left, right, top, bottom = r.ue(), r.ue(), r.ue(), r.ue()
        sub_width = 2 if chroma_format_idc in (1, 2) else 1
        sub_height = 2 if chroma_format_idc == 1 else 1
        width -= sub_width * (left + right)
        height -= sub_height * (top + bottom)
    return width, height
