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


def avcc_parameter_sets(extradata: bytes) -> tuple[int, list[bytes]]:
    """(NAL length size, [SPS..., PPS...]) of an avcC record (ISO 14496-15 5.2.4.1)."""
    if len(extradata) < 7 or extradata[0] != 1:
        raise ValueError("not an avcC record")
    length_size = (extradata[4] & 0x03) + 1
    units: list[bytes] = []
    pos = 6
    for count_mask, count_pos in ((0x1F, 5), (0xFF, None)):
        if count_pos is None:
            if pos >= len(extradata):
                break
            count, pos = extradata[pos] & count_mask, pos + 1
        else:
            count = extradata[count_pos] & count_mask
        for _ in range(count):
            size = int.from_bytes(extradata[pos : pos + 2], "big")
            unit = extradata[pos + 2 : pos + 2 + size]
            if len(unit) != size:
                raise ValueError("truncated avcC record")
            units.append(unit)
            pos += 2 + size
    return length_size, units


class AnnexB:
    """A camera's H.264 packets as masked packets must be: Annex B, SPS/PPS in-band on keyframes.

    What pass-through does instead of transcoding: length-prefixed packets (MP4 files, some
    demuxers) get start codes, and a keyframe without its parameter sets gets those of the codec
    parameters put in front. Bytes are moved, never decoded: a packet's slices are the camera's.
    """

    def __init__(self, extradata: bytes = b"") -> None:
        self.length_size = 0
        self.sets = b""
        if extradata:
            self.configure(extradata)

    def configure(self, extradata: bytes) -> None:
        if extradata[:1] == b"\x01":
            self.length_size, units = avcc_parameter_sets(extradata)
            self.sets = b"".join(b"\x00\x00\x00\x01" + u for u in units)
        else:
            self.length_size = 0
            self.sets = bytes(extradata)

    def packet(self, data: bytes, keyframe: bool) -> bytes:
        if self.length_size and not (data[:3] == b"\x00\x00\x01" or data[:4] == b"\x00\x00\x00\x01"):
            data = self._start_codes(data)
        if keyframe and self.sets and not has_parameter_sets(data):
            data = self.sets + data
        return data

    def _start_codes(self, data: bytes) -> bytes:
        out = bytearray()
        pos, n = 0, self.length_size
        while pos + n <= len(data):
            size = int.from_bytes(data[pos : pos + n], "big")
            pos += n
            out += b"\x00\x00\x00\x01" + data[pos : pos + size]
            pos += size
        return bytes(out)
