"""Frame envelopes on and off the bus: written by producers without copying packets twice, parsed and
checked against the subject they came on."""

from collections.abc import Callable
from fractions import Fraction

from av.rational import AVRational

from services.common.pb.csu.v1.frame_pb2 import CodecParameters, FramePacket, PtzPosition


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


# Keys of FramePacket.data (field 20) and FramePacket.codec (field 10), length-delimited (wire type 2).
_DATA_KEY = _varint(20 << 3 | 2)
_CODEC_KEY = _varint(10 << 3 | 2)


class EnvelopeWriter:
    """Serialized FramePackets of one (camera, stream, source session), for a producer's hot loop.

    Building a FramePacket with the data and serializing it copies the packet twice and allocates a
    protobuf arena the size of the packet, per packet: for a 1080p camera that costs more CPU than
    demuxing. Here the fields that never change in a session are serialized once, the per-packet
    fields go through one reused message, and the data field comes last: `head` gives every byte
    of the envelope before the data, so the envelope is head + data and the producer can hand the
    demuxer's buffer to the socket as it is. Protobuf parsers merge the concatenated fields, so what
    consumers parse is exactly the FramePacket the fields describe.
    """

    def __init__(
        self, camera_id: str, stream: str, source_session: str, frame_rate: float, codec: CodecParameters
    ) -> None:
        self._camera_id, self._stream, self._session, self._frame_rate = camera_id, stream, source_session, frame_rate
        self._time_base: AVRational | Fraction | None = None
        self._fixed = b""
        self._codec = _CODEC_KEY + _varint(codec.ByteSize()) + codec.SerializeToString()
        self._per_packet = FramePacket()
        self._has_ptz = False

    def _fix(self, time_base: AVRational | Fraction) -> None:
        self._time_base = time_base
        self._fixed = FramePacket(
            camera_id=self._camera_id,
            stream=self._stream,
            source_session=self._session,
            frame_rate=self._frame_rate,
            time_base_num=time_base.numerator,
            time_base_den=time_base.denominator,
        ).SerializeToString()

    def head(
        self,
        sequence: int,
        pts: int,
        dts: int,
        time_base: AVRational | Fraction,
        keyframe: bool,
        capture_time_us: int,
        size: int,
        ptz: PtzPosition | None = None,
        moving: bool = False,
    ) -> bytes:
        """The envelope up to its data field, for `size` bytes of data; codec parameters ride on keyframes."""
        if time_base is not self._time_base and time_base != self._time_base:
            self._fix(time_base)
        m = self._per_packet
        m.sequence, m.pts, m.dts, m.keyframe, m.capture_time_us = sequence, pts, dts, keyframe, capture_time_us
        if ptz is not None:
            m.ptz.CopyFrom(ptz)
            m.moving = moving
            self._has_ptz = True
        elif self._has_ptz:
            m.ClearField("ptz")
            m.moving = self._has_ptz = False
        return b"".join(
            (self._fixed, m.SerializeToString(), self._codec if keyframe else b"", _DATA_KEY, _varint(size))
        )


def parse_frame(subject: str, data: bytes, subject_of: Callable[[str, str], str]) -> FramePacket:
    """The envelope, or ValueError when it is not one or claims another camera than its subject.

    subject_of(camera_id, stream) gives the subject such a packet must travel on, so a publisher
    can never slip one camera's frames into another camera's stream.
    """
    try:
        packet = FramePacket.FromString(data)
    except Exception as exc:
        raise ValueError(f"not a frame envelope: {exc}") from exc
    if subject != subject_of(packet.camera_id, packet.stream):
        raise ValueError(f"envelope for {packet.camera_id!r}/{packet.stream!r} arrived on {subject!r}")
    return packet
