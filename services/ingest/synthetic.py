"""H.264 for the sources that draw their own pictures: the demo cameras and the simulated PTZ camera.

Encoded like a camera on a low-latency profile (a keyframe every two seconds, no B-frames), so the
rest of the platform sees what a real camera would send.
"""

from collections.abc import Iterator
from fractions import Fraction

import av
import numpy as np

from services.ingest.sources import SourcePacket


class SceneEncoder:
    def __init__(self, width: int, height: int, fps: int, crf: int) -> None:
        self._time_base = Fraction(1, fps)
        self._encoder = av.CodecContext.create("libx264", "w")
        self._encoder.width, self._encoder.height = width, height
        self._encoder.pix_fmt = "yuv420p"
        self._encoder.time_base = self._time_base
        self._encoder.framerate = Fraction(fps, 1)
        self._encoder.gop_size = fps * 2
        self._encoder.max_b_frames = 0
        self._encoder.options = {"preset": "ultrafast", "tune": "zerolatency", "crf": str(crf)}

    def encode(
        self, image: np.ndarray, index: int, ptz: tuple[float, float, float] | None = None, moving: bool = False
    ) -> Iterator[SourcePacket]:
        """The packets of picture number `index` (BGR), stamped at index / fps on the source's timeline."""
        tb = self._time_base
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts = index
        frame.time_base = tb
        for packet in self._encoder.encode(frame):
            pts = packet.pts if packet.pts is not None else index
            yield SourcePacket(
                data=bytes(packet),
                pts_s=float(pts * tb),
                dts_s=float(pts * tb),
                pts=pts,
                dts=pts,
                time_base=tb,
                keyframe=packet.is_keyframe,
                ptz=ptz,
                moving=moving,
            )
