"""Real H.264 packets for in-process tests, encoded here from drawn images (no file needed)."""

from collections.abc import Callable
from fractions import Fraction

import av
import cv2
import numpy as np

from services.common.pb.csu.v1.frame_pb2 import CodecParameters, FramePacket

T0_US = 1_764_000_000_000_000  # 2025-11-24T16:00:00Z


def scene(index: int, width: int = 320, height: int = 240) -> np.ndarray:
    """A textured image that changes every frame (so the encoder has real work)."""
    rng = np.random.default_rng(index)
    img = np.full((height, width, 3), 90, np.uint8)
    img[:] += rng.integers(0, 60, (height, width, 1), dtype=np.uint8)
    cv2.circle(img, ((index * 7) % width, height // 2), 20, (250, 40, 40), -1)
    cv2.rectangle(img, (10, 10), (width // 2, height // 3), (30, 200, 250), -1)
    return img


def h264_packets(
    count: int,
    fps: int = 10,
    camera_id: str = "cam-t",
    session: str = "s1",
    start_us: int = T0_US,
    gop: int = 10,
    size: tuple[int, int] = (320, 240),
    paint: Callable[[int, np.ndarray], None] | None = None,
) -> list[FramePacket]:
    """Raw envelopes as ingest publishes them: Annex B H.264, parameter sets on keyframes.
    `paint(index, bgr_image)` changes each image before it is encoded (a camera's own mask...)."""
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height = size
    encoder.pix_fmt = "yuv420p"
    encoder.time_base = Fraction(1, fps)
    encoder.framerate = Fraction(fps)
    encoder.gop_size = gop
    encoder.max_b_frames = 0
    encoder.options = {"preset": "ultrafast", "tune": "zerolatency"}
    packets = []
    for i in range(count):
        image = scene(i, *size)
        if paint is not None:
            paint(i, image)
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts = i
        for p in encoder.encode(frame):
            envelope = FramePacket(
                camera_id=camera_id,
                stream="main",
                sequence=len(packets),
                pts=p.pts,
                dts=p.dts,
                time_base_num=1,
                time_base_den=fps,
                keyframe=p.is_keyframe,
                capture_time_us=start_us + p.pts * 1_000_000 // fps,
                source_session=session,
                frame_rate=fps,
                data=bytes(p),
            )
            if p.is_keyframe:
                envelope.codec.CopyFrom(CodecParameters(name="h264", width=size[0], height=size[1]))
            packets.append(envelope)
    return packets


def decode_packets(packets: list[FramePacket]) -> list[np.ndarray]:
    """Masked packets of one session muxed as the archive does (fMP4), decoded to RGB images."""
    import io

    from services.common.fmp4 import Fmp4Writer

    sink = io.BytesIO()
    writer = Fmp4Writer(sink, packets[0])
    for p in packets[1:]:
        writer.write(p)
    writer.close()
    with av.open(io.BytesIO(sink.getvalue())) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])]
