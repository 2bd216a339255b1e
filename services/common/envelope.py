"""Frame envelopes off the bus: parsed and checked against the subject they came on."""

from collections.abc import Callable

from services.common.pb.csu.v1.frame_pb2 import FramePacket


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
