"""A synthetic camera: a street scene drawn and encoded to H.264 here, so `make run` needs no file.

The scene has what the platform must deal with: a building whose windows a privacy mask must
cover (see cameras.DEMO_WINDOW_MASK), people and a car crossing the street, and the date, time
and camera name burned in like a real camera's on-screen display.
"""

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import cv2
import numpy as np

from services.ingest.sources import SourceError, SourcePacket, StreamInfo
from services.ingest.synthetic import SceneEncoder

WIDTH, HEIGHT, FPS = 704, 576, 10


def _background(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    img[:] = (200, 170, 140)  # sky (BGR)
    # Building: brick facade with two rows of windows in the masked band (8-30 % height).
    cv2.rectangle(img, (40, 30), (440, 330), (60, 80, 150), -1)
    for row, col in itertools.product(range(2), range(6)):
        x, y = 70 + col * 62, 60 + row * 60
        shade = int(rng.integers(40, 220))
        cv2.rectangle(img, (x, y), (x + 36, y + 40), (shade, shade // 2, 30), -1)
    cv2.rectangle(img, (470, 120), (680, 330), (120, 120, 120), -1)  # shop front
    img[330:] = (90, 90, 90)  # street
    for x in range(0, WIDTH, 60):
        cv2.line(img, (x, 450), (x + 30, 450), (230, 230, 230), 4)
    noise = rng.integers(-6, 7, img.shape, dtype=np.int16)
    return np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)


class DemoSource:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        try:
            self._seed = int(query.get("seed", ["1"])[0])
        except ValueError as exc:
            raise SourceError(f"demo source {url!r}: seed must be an integer") from exc
        self._scene = parts.netloc or "plaza"
        self._background = _background(self._seed)
        self._encoder = SceneEncoder(WIDTH, HEIGHT, FPS, crf=23)
        self.info = StreamInfo(codec="h264", extradata=b"", width=WIDTH, height=HEIGHT, frame_rate=FPS, live=False)

    def _draw(self, index: int) -> np.ndarray:
        img = self._background.copy()
        t = index / FPS
        for person in range(3):
            speed = 40 + 17 * person + 5 * self._seed
            x = int((t * speed + person * 230) % (WIDTH + 40)) - 20
            y = 360 + person * 55
            cv2.ellipse(img, (x, y - 28), (9, 11), 0, 0, 360, (150, 180, 220), -1)
            cv2.rectangle(img, (x - 11, y - 16), (x + 11, y + 30), (40 + 60 * person, 60, 160), -1)
        car_x = int((t * 90 * (1 if self._seed % 2 else -1)) % (WIDTH + 160)) - 80
        cv2.rectangle(img, (car_x, 470), (car_x + 120, 520), (30, 30, 200), -1)
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        cv2.putText(
            img,
            f"{stamp}  {self._scene}",
            (12, HEIGHT - 14),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.6,
            (255, 255, 255),
            2,
            cv2.LINE_AA,
        )
        return img

    def packets(self) -> Iterator[SourcePacket]:
        for index in itertools.count():
            yield from self._encoder.encode(self._draw(index), index)

    def close(self) -> None:
        """Nothing to release: the encoder is freed with the object."""
