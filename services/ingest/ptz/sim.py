"""A simulated PTZ camera: a large drawn street scene from which pan/tilt/zoom select the view.

`simptz://<name>[?width=704&height=576&fps=10]` is both a video source (SimPtzSource, encoded to
H.264 here like the demo camera) and, with ptz_driver "simulated" and the same URL, a PTZ device
(SimPtzDriver). Both reach the same SimPtzCamera of that name in this process, so moving the
camera really changes the image and the position reported in every packet.

Motion is physical enough for arbitration, tours and masks to be tested on it: continuous moves
run at the given velocity until stopped, absolute/relative moves travel at MAX_SPEED towards their
target, and `moving` is true until the target is reached. The scene (4x2 views wide at zoom 0)
has a grid of numbered facade windows (what privacy masks cover), large coordinate labels along
the street, and people and cars crossing, so any view is recognisable in tests.
"""

import itertools
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import cv2
import numpy as np

from services.common.clock import to_us
from services.ingest.ptz.driver import PtzError, PtzSnapshot, clamp_position, clamp_velocity
from services.ingest.sources import SourceError, SourcePacket, StreamInfo
from services.ingest.synthetic import SceneEncoder

SCENE_W, SCENE_H = 2816, 1152
# Units per second at full velocity (the whole pan range in 4 s), and for absolute moves.
MAX_SPEED = 0.5
ZOOM_RANGE = 8.0  # zoom 1 narrows the field of view 8 times


def _scene(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.zeros((SCENE_H, SCENE_W, 3), np.uint8)
    img[:] = (210, 180, 150)  # sky (BGR)
    street_y = 800
    x = 0
    building = 0
    while x < SCENE_W:
        width = int(rng.integers(220, 420))
        top = int(rng.integers(120, 420))
        colour = tuple(int(c) for c in rng.integers(50, 170, 3))
        cv2.rectangle(img, (x, top), (x + width - 8, street_y), colour, -1)
        for row, col in itertools.product(range((street_y - top - 60) // 90), range((width - 40) // 70)):
            wx, wy = x + 24 + col * 70, top + 30 + row * 90
            shade = int(rng.integers(30, 230))
            cv2.rectangle(img, (wx, wy), (wx + 40, wy + 55), (shade, shade // 2 + 40, 40), -1)
        cv2.putText(img, f"N{building}", (x + 12, street_y - 14), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (240, 240, 240), 3)
        x += width
        building += 1
    img[street_y:] = (85, 85, 85)
    for gx in range(0, SCENE_W, 176):
        cv2.line(img, (gx, street_y + 170), (gx + 90, street_y + 170), (230, 230, 230), 6)
        cv2.putText(img, f"{gx // 176:02d}", (gx + 20, SCENE_H - 40), cv2.FONT_HERSHEY_SIMPLEX, 2.0, (0, 220, 255), 5)
    noise = rng.integers(-5, 6, img.shape, dtype=np.int16)
    return np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def view_rect(pan: float, tilt: float, zoom: float, aspect: float) -> tuple[int, int, int, int]:
    """The scene rectangle (x, y, w, h) a position shows."""
    crop_h = SCENE_H / (1 + (ZOOM_RANGE - 1) * zoom)
    crop_w = min(SCENE_W, crop_h * aspect)
    cx = SCENE_W / 2 + pan * (SCENE_W - crop_w) / 2
    cy = SCENE_H / 2 - tilt * (SCENE_H - crop_h) / 2
    return int(cx - crop_w / 2), int(cy - crop_h / 2), int(crop_w), int(crop_h)


class SimPtzCamera:
    """The simulated device: its position, its motion, its presets. Thread-safe."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._pos = [0.0, 0.0, 0.0]
        self._velocity = [0.0, 0.0, 0.0]
        self._target: list[float] | None = None
        self._updated = time.monotonic()
        self._home = (0.0, 0.0, 0.0)
        self._presets: dict[str, tuple[str, tuple[float, float, float]]] = {}
        self._tokens = itertools.count(1)
        self.scene = _scene(sum(name.encode()))
        self.commands = 0

    def _advance(self) -> None:
        now = time.monotonic()
        dt, self._updated = now - self._updated, now
        if self._target is not None:
            done = True
            for i in range(3):
                delta = self._target[i] - self._pos[i]
                step = MAX_SPEED * dt
                if abs(delta) <= step:
                    self._pos[i] = self._target[i]
                else:
                    self._pos[i] += step if delta > 0 else -step
                    done = False
            if done:
                self._target = None
        elif any(self._velocity):
            for i in range(3):
                self._pos[i] += self._velocity[i] * MAX_SPEED * dt
            self._pos = list(clamp_position(*self._pos))

    def snapshot(self) -> PtzSnapshot:
        with self._lock:
            self._advance()
            moving = self._target is not None or any(self._velocity)
            return PtzSnapshot(self._pos[0], self._pos[1], self._pos[2], moving, to_us(datetime.now(UTC)))

    def continuous(self, pan: float, tilt: float, zoom: float) -> None:
        with self._lock:
            self._advance()
            self._target = None
            self._velocity = [clamp_velocity(pan), clamp_velocity(tilt), clamp_velocity(zoom)]
            self.commands += 1

    def goto(self, pan: float, tilt: float, zoom: float) -> None:
        with self._lock:
            self._advance()
            self._velocity = [0.0, 0.0, 0.0]
            self._target = list(clamp_position(pan, tilt, zoom))
            self.commands += 1

    def relative(self, pan: float, tilt: float, zoom: float) -> None:
        with self._lock:
            self._advance()
            base = self._target or self._pos
            target = [base[0] + pan, base[1] + tilt, base[2] + zoom]
        self.goto(*target)

    def stop(self) -> None:
        with self._lock:
            self._advance()
            self._velocity, self._target = [0.0, 0.0, 0.0], None
            self.commands += 1

    def home(self) -> None:
        self.goto(*self._home)

    def set_home(self) -> None:
        snap = self.snapshot()
        self._home = (snap.pan, snap.tilt, snap.zoom)

    def presets(self) -> dict[str, str]:
        with self._lock:
            return {token: name for token, (name, _) in self._presets.items()}

    def set_preset(self, name: str) -> str:
        snap = self.snapshot()
        with self._lock:
            token = next((t for t, (n, _) in self._presets.items() if n == name), f"p{next(self._tokens)}")
            self._presets[token] = (name, (snap.pan, snap.tilt, snap.zoom))
            return token

    def goto_preset(self, token: str) -> None:
        with self._lock:
            preset = self._presets.get(token)
        if preset is None:
            raise PtzError(f"no preset {token!r} on the camera")
        self.goto(*preset[1])

    def remove_preset(self, token: str) -> None:
        with self._lock:
            if self._presets.pop(token, None) is None:
                raise PtzError(f"no preset {token!r} on the camera")

    def render(self, width: int, height: int, t: float) -> tuple[np.ndarray, PtzSnapshot]:
        snap = self.snapshot()
        x, y, w, h = view_rect(snap.pan, snap.tilt, snap.zoom, width / height)
        view = self.scene[y : y + h, x : x + w].copy()
        scale = w / SCENE_W
        for k in range(4):  # people and cars crossing, in scene coordinates
            px = int((t * (60 + 25 * k) + k * 700) % (SCENE_W + 200)) - 100 - x
            py = 860 + 60 * k - y
            cv2.rectangle(view, (px - 14, py - 50), (px + 14, py + 20), (40 + 50 * k, 70, 170), -1)
        image = cv2.resize(view, (width, height), interpolation=cv2.INTER_AREA if scale > 0 else cv2.INTER_LINEAR)
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        label = f"{stamp}  {self.name}  P{snap.pan:+.2f} T{snap.tilt:+.2f} Z{snap.zoom:.2f}"
        cv2.putText(image, label, (10, height - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 2, cv2.LINE_AA)
        return image, snap


_CAMERAS: dict[str, SimPtzCamera] = {}
_CAMERAS_LOCK = threading.Lock()


def camera_for(url: str) -> SimPtzCamera:
    """The process's simulated camera for simptz://<name> (created on first use)."""
    parts = urlsplit(url)
    if parts.scheme != "simptz" or not parts.netloc:
        raise PtzError(f"not a simulated PTZ camera URL: {url!r} (simptz://<name>)")
    with _CAMERAS_LOCK:
        return _CAMERAS.setdefault(parts.netloc, SimPtzCamera(parts.netloc))


class SimPtzSource:
    """The simulated camera's video: what its current position shows, as H.264."""

    def __init__(self, url: str) -> None:
        query = parse_qs(urlsplit(url).query)
        try:
            self._width = int(query.get("width", ["704"])[0])
            self._height = int(query.get("height", ["576"])[0])
            self._fps = int(query.get("fps", ["10"])[0])
        except ValueError as exc:
            raise SourceError(f"simulated PTZ camera {url!r}: width, height and fps must be integers") from exc
        if not (64 <= self._width <= 3840 and 64 <= self._height <= 2160 and 1 <= self._fps <= 60):
            raise SourceError(f"simulated PTZ camera {url!r}: size or frame rate out of range")
        self.camera = camera_for(url)
        self._encoder = SceneEncoder(self._width, self._height, self._fps, crf=25)
        self.info = StreamInfo(
            codec="h264", extradata=b"", width=self._width, height=self._height, frame_rate=self._fps, live=False
        )

    def packets(self) -> Iterator[SourcePacket]:
        for index in itertools.count():
            image, snap = self.camera.render(self._width, self._height, index / self._fps)
            yield from self._encoder.encode(image, index, (snap.pan, snap.tilt, snap.zoom), snap.moving)

    def close(self) -> None:
        """Nothing to release: the encoder is freed with the object; the device state stays."""


class SimPtzDriver:
    """PtzDriver over a SimPtzCamera of this process."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._camera: SimPtzCamera | None = None

    async def connect(self) -> None:
        self._camera = camera_for(self._url)

    @property
    def camera(self) -> SimPtzCamera:
        if self._camera is None:
            raise PtzError("simulated PTZ driver not connected")
        return self._camera

    async def status(self) -> PtzSnapshot:
        return self.camera.snapshot()

    async def continuous_move(self, pan: float, tilt: float, zoom: float) -> None:
        self.camera.continuous(pan, tilt, zoom)

    async def absolute_move(self, pan: float, tilt: float, zoom: float) -> None:
        self.camera.goto(pan, tilt, zoom)

    async def relative_move(self, pan: float, tilt: float, zoom: float) -> None:
        self.camera.relative(pan, tilt, zoom)

    async def stop(self) -> None:
        self.camera.stop()

    async def goto_home(self) -> None:
        self.camera.home()

    async def set_home(self) -> None:
        self.camera.set_home()

    async def presets(self) -> dict[str, str]:
        return self.camera.presets()

    async def set_preset(self, name: str) -> str:
        return self.camera.set_preset(name)

    async def goto_preset(self, token: str) -> None:
        self.camera.goto_preset(token)

    async def remove_preset(self, token: str) -> None:
        self.camera.remove_preset(token)

    async def close(self) -> None:
        self._camera = None
