"""RTP to access units (ingest's RTSP client): every packetization a camera may send, and what a
lost or broken packet does. The packets are built here by the RFCs' rules from known NAL units, so
what comes out can be compared with what went in."""

import struct

import pytest

from services.ingest.rtsp.depacketize import MAX_ACCESS_UNIT, START_CODE, depacketizer

PT = 96


def rtp(seq: int, ts: int, payload: bytes, marker: bool = False, *, csrc: int = 0, extension: bytes = b"",
        padding: int = 0) -> bytes:  # fmt: skip
    b0 = 0x80 | csrc | (0x10 if extension else 0) | (0x20 if padding else 0)
    head = struct.pack("!BBHII", b0, (0x80 if marker else 0) | PT, seq & 0xFFFF, ts & 0xFFFFFFFF, 0x1234)
    head += b"\x00\x00\x00\x07" * csrc
    if extension:
        head += struct.pack("!HH", 0xBEDE, len(extension) // 4) + extension
    tail = (b"\x00" * (padding - 1) + bytes([padding])) if padding else b""
    return head + payload + tail


class Collector:
    def __init__(self, codec: str = "h264") -> None:
        self.units: list[tuple[bytes, int, bool]] = []
        self.d = depacketizer(codec, PT, lambda data, ts, key: self.units.append((data, ts, key)))

    def push(self, *packets: bytes) -> None:
        for packet in packets:
            framed = b"xx" + packet + b"yy"  # the connection hands over views into a larger read
            self.d.push(framed, memoryview(framed), 2, 2 + len(packet))


def annexb(*units: bytes) -> bytes:
    return b"".join(START_CODE + u for u in units)


SPS, PPS = bytes([0x67, 0x64, 0x00, 0x28, 0xAC]), bytes([0x68, 0xEE, 0x3C, 0xB0])
IDR = bytes([0x65]) + bytes(range(250)) * 18  # 4,501 bytes: five fragments of 1,000 below
SLICE = bytes([0x41, 0x9A, 0x26, 0x22])


def fu_a(unit: bytes, size: int) -> list[bytes]:
    """RFC 6184 5.8: the unit's header goes into the FU indicator and header; its payload in pieces."""
    header, body = unit[0], unit[1:]
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    out = []
    for i, piece in enumerate(pieces):
        fu_header = (0x80 if i == 0 else 0) | (0x40 if i == len(pieces) - 1 else 0) | (header & 0x1F)
        out.append(bytes([(header & 0xE0) | 28, fu_header]) + piece)
    return out


def stap_a(*units: bytes) -> bytes:
    return bytes([0x18]) + b"".join(struct.pack("!H", len(u)) + u for u in units)


def test_h264_single_units_aggregates_and_fragments_make_annex_b_access_units() -> None:
    c = Collector()
    fragments = fu_a(IDR, 1000)
    packets = [rtp(10, 9000, stap_a(SPS, PPS))]
    packets += [rtp(11 + i, 9000, f, marker=i == len(fragments) - 1) for i, f in enumerate(fragments)]
    packets += [rtp(16, 12600, SLICE, marker=True)]
    c.push(*packets)
    assert c.units == [(annexb(SPS, PPS, IDR), 0, True), (annexb(SLICE), 3600, False)]
    assert c.d.lost == 0 and c.d.units == 2


def test_rtp_header_csrc_extension_and_padding_are_skipped() -> None:
    c = Collector()
    c.push(rtp(1, 0, SLICE, marker=True, csrc=2, extension=b"\x10\xaa\x00\x00", padding=3))
    assert c.units == [(annexb(SLICE), 0, False)]


def test_a_camera_that_never_sets_the_marker_ends_units_on_the_next_timestamp() -> None:
    c = Collector()
    c.push(rtp(1, 1000, SLICE), rtp(2, 1000, SLICE), rtp(3, 4600, SLICE))
    assert c.units == [(annexb(SLICE, SLICE), 0, False)]


def test_a_lost_packet_drops_its_access_unit_whole_and_the_next_one_comes_through() -> None:
    c = Collector()
    fragments = fu_a(IDR, 1000)
    c.push(rtp(1, 0, fragments[0]), rtp(2, 0, fragments[1]), rtp(4, 0, fragments[3]))  # 3 is lost
    c.push(rtp(5, 0, fragments[4], marker=True), rtp(6, 3600, SLICE, marker=True))
    assert c.units == [(annexb(SLICE), 0, False)] and c.d.lost == 1


def test_a_fragment_whose_start_was_lost_is_not_passed_on() -> None:
    c = Collector()
    fragments = fu_a(IDR, 1000)
    c.push(*(rtp(7 + i, 0, f, marker=i == 4) for i, f in enumerate(fragments) if i))  # no start fragment
    c.push(rtp(12, 3600, SLICE, marker=True))
    assert c.units == [(annexb(SLICE), 0, False)] and c.d.lost == 1


def test_timestamps_are_counted_from_the_first_unit_across_the_32_bit_wrap_and_b_frames() -> None:
    c = Collector()
    start = 2**32 - 3600
    for seq, ts in enumerate((start, start + 10800, start + 3600, start + 7200, start + 14400)):
        c.push(rtp(seq, ts, SLICE, marker=True))
    assert [ts for _, ts, _ in c.units] == [0, 10800, 3600, 7200, 14400]


def test_a_recovery_point_counts_as_a_keyframe_and_other_payloads_are_ignored() -> None:
    c = Collector()
    sei_recovery = bytes([0x06, 0x06, 0x01, 0xC4, 0x80])
    c.push(rtp(1, 0, sei_recovery), rtp(2, 0, SLICE, marker=True))
    other = bytearray(rtp(3, 3600, SLICE, marker=True))
    other[1] = 0x80 | 97  # another payload type on the channel
    c.push(bytes(other))
    assert c.units == [(annexb(sei_recovery, SLICE), 0, True)]


def test_interleaved_mode_packets_and_runaway_units_are_dropped() -> None:
    c = Collector()
    c.push(rtp(1, 0, bytes([0x19, 0, 0]) + SLICE, marker=True))  # STAP-B: packetization mode 2 only
    assert c.units == [] and c.d.lost == 1
    big = bytes([0x41]) + bytes(60_000)
    for seq in range(2, 2 + MAX_ACCESS_UNIT // 60_000 + 2):
        c.push(rtp(seq, 3600, big))
    c.push(rtp(900, 3600, SLICE, marker=True), rtp(901, 7200, SLICE, marker=True))
    # Timestamps count from the first unit passed on.
    assert c.units == [(annexb(SLICE), 0, False)] and c.d.lost == 2


VPS, HSPS, HPPS = bytes([0x40, 0x01, 0x0C]), bytes([0x42, 0x01, 0x01]), bytes([0x44, 0x01, 0xC0])
CRA = bytes([0x2A, 0x01]) + bytes(range(256)) * 8  # type 21 (CRA_NUT): an IRAP picture
TRAIL = bytes([0x02, 0x01, 0xD0, 0x0A])  # type 1 (TRAIL_R)


def fu_h265(unit: bytes, size: int) -> list[bytes]:
    """RFC 7798 4.4.3: payload header of type 49, then the FU header with the unit's type."""
    kind, body = (unit[0] >> 1) & 0x3F, unit[2:]
    header = bytes([(unit[0] & 0x81) | (49 << 1), unit[1]])
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    return [
        header + bytes([(0x80 if i == 0 else 0) | (0x40 if i == len(pieces) - 1 else 0) | kind]) + piece
        for i, piece in enumerate(pieces)
    ]


def test_h265_single_units_aggregation_and_fragmentation_units() -> None:
    c = Collector("hevc")
    aggregate = bytes([48 << 1, 0x01]) + b"".join(struct.pack("!H", len(u)) + u for u in (VPS, HSPS, HPPS))
    fragments = fu_h265(CRA, 700)
    c.push(rtp(1, 90_000, aggregate))
    c.push(*(rtp(2 + i, 90_000, f, marker=i == len(fragments) - 1) for i, f in enumerate(fragments)))
    c.push(rtp(10, 99_000, TRAIL, marker=True))
    assert c.units == [(annexb(VPS, HSPS, HPPS, CRA), 0, True), (annexb(TRAIL), 9000, False)]


def test_no_depacketizer_for_other_codecs() -> None:
    with pytest.raises(ValueError, match="jpeg"):
        depacketizer("jpeg", 26, lambda *_: None)


def test_parameter_sets_sent_apart_go_with_the_next_picture() -> None:
    c = Collector()
    c.push(rtp(1, 1000, SPS, marker=True), rtp(2, 1000, PPS, marker=True))  # a timestamp and marker of their own
    c.push(*(rtp(3 + i, 4600, f, marker=i == 4) for i, f in enumerate(fu_a(IDR, 1000))))
    c.push(rtp(8, 8200, SLICE, marker=True))
    assert c.units == [(annexb(SPS, PPS, IDR), 0, True), (annexb(SLICE), 3600, False)]
