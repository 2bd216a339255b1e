"""A simulated PTZ camera: a dome with optics of its own, looking at a panorama of a street.

`simptz://<name>[?width=704&height=576&fps=10]` is both a video source (SimPtzSource, encoded to
H.264 here like the demo camera) and, with ptz_driver "simulated" and the same URL, a PTZ device
(SimPtzDriver). Both reach the same SimPtzCamera of that name in this process, so moving the
camera really changes the image and the position reported in every packet.

Motion is physical enough for arbitration, tours and masks to be tested on it: continuous moves
run at the given velocity until stopped, absolute/relative moves travel at MAX_SPEED towards their
target, and `moving` is true until the target is reached.

The image is what a dome with SIM_OPTICS (services/common/optics.py) sees of a street panorama
(azimuth -90..90 degrees, elevation +-36.8): every pixel is the scene in the direction its ray
points. SIM_OPTICS are deliberately not the deployment's defaults (CSU_PTZ_*): another field of
view, a non-linear zoom, a tilt offset and a pan turning the other way, as real domes differ. So
masks projected with the defaults miss their windows here, as they would on a real dome, and only
a calibration (services/masking/calibration.py) makes them hold; masking never reads SIM_OPTICS.
The scene has facades with numbered buildings, large coordinate labels along the street, people
and cars crossing, and PRIVATE_WINDOWS painted in a colour found nowhere else (PRIVATE_BGR), so a
test can tell a leaked window from anything else in any frame.
"""

import itertools
import math
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import cv2
import numpy as np

from services.common.clock import to_us
from services.common.optics import Optics, unit_vectors
from services.ingest.ptz.driver import PtzError, PtzSnapshot, clamp_position, clamp_velocity
from services.ingest.sources import SourceError, SourcePacket, StreamInfo
from services.ingest.synthetic import SceneEncoder

SCENE_W, SCENE_H = 2816, 1152
# The panorama: azimuth -90..90 degrees across its width, the same scale vertically.
PX_PER_DEG = SCENE_W / 180.0
SCENE_AZ0_DEG = -90.0
SCENE_EL_TOP_DEG = SCENE_H / 2 / PX_PER_DEG
# Units per second at full velocity (the whole pan range in 4 s), and for absolute moves.
MAX_SPEED = 0.5
# The dome's own optics: 54 to 6 degrees (9x) on a zoom curve of exponent 1.6, tilt 0 looking 4
# degrees down, pan turning left for positive values, bearing 10 degrees. The defaults are 60 to
# 3.3 degrees (20x) linear, level, pan to the right.
SIM_OPTICS = Optics(
    hfov_wide_deg=54.0,
    hfov_tele_deg=6.0,
    zoom_exponent=1.6,
    pan_offset_deg=10.0,
    tilt_offset_deg=-4.0,
    pan_direction=-1,
    tilt_direction=1,
)
# Windows of homes (scene pixels x0, y0, x1, y1), painted PRIVATE_BGR (magenta, nowhere else in the
# scene), on a facade a little right of where the dome looks at pan 0 (bearing 10 degrees).
PRIVATE_BGR = (255, 0, 255)
PRIVATE_WINDOWS = ((1620, 400, 1676, 466), (1760, 400, 1816, 466), (1690, 540, 1746, 606))
_FACADE = (1580, 330, 1860, 800)
SKY_BGR = (210, 180, 150)


def scene_direction(x: float, y: float) -> tuple[float, float]:
    """(azimuth, elevation) in radians of a scene pixel."""
    return math.radians(SCENE_AZ0_DEG + x / PX_PER_DEG), math.radians(SCENE_EL_TOP_DEG - y / PX_PER_DEG)


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
        # Green at least as strong as red or blue: no facade can pass for a private window.
        b, g, r = (int(c) for c in rng.integers(50, 170, 3))
        colour = (b, max(g, min(b, r)), r)
        cv2.rectangle(img, (x, top), (x + width - 8, street_y), colour, -1)
        for row, col in itertools.product(range((street_y - top - 60) // 90), range((width - 40) // 70)):
            wx, wy = x + 24 + col * 70, top + 30 + row * 90
            shade = int(rng.integers(30, 230))
            cv2.rectangle(img, (wx, wy), (wx + 40, wy + 55), (shade, shade // 2 + 40, 40), -1)
        cv2.putText(img, f"N{building}", (x + 12, street_y - 14), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (240, 240, 240), 3)
        x += width
        building += 1
    fx0, fy0, fx1, fy1 = _FACADE
    cv2.rectangle(img, (fx0, fy0), (fx1, fy1), (90, 110, 150), -1)
    for x0, y0, x1, y1 in PRIVATE_WINDOWS:
        cv2.rectangle(img, (x0, y0), (x1, y1), PRIVATE_BGR, -1)
    img[street_y:] = (85, 85, 85)
    for gx in range(0, SCENE_W, 176):
        cv2.line(img, (gx, street_y + 170), (gx + 90, street_y + 170), (230, 230, 230), 6)
        cv2.putText(img, f"{gx // 176:02d}", (gx + 20, SCENE_H - 40), cv2.FONT_HERSHEY_SIMPLEX, 2.0, (0, 220, 255), 5)
    noise = rng.integers(-5, 6, img.shape, dtype=np.int16)
    return np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)


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
        self._map_cache: tuple[tuple, np.ndarray, np.ndarray] | None = None

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
        aspect = width / height
        map_x, map_y = self._maps(width, height, snap.pan, snap.tilt, snap.zoom)
        image = cv2.remap(self.scene, map_x, map_y, cv2.INTER_LINEAR, borderValue=SKY_BGR)
        rotation = SIM_OPTICS.rotation(snap.pan, snap.tilt)
        for k in range(4):  # people and cars crossing, in scene coordinates, drawn as the dome sees them
            px = (t * (60 + 25 * k) + k * 700) % (SCENE_W + 200) - 100
            py = 860 + 60 * k
            corners = [
                scene_direction(x, y)
                for x, y in ((px - 14, py - 50), (px + 14, py - 50), (px + 14, py + 20), (px - 14, py + 20))
            ]
            cam = unit_vectors(*(np.array(a) for a in zip(*corners, strict=True))) @ rotation.T
            if (cam[:, 2] > 0.05).all():
                pts = SIM_OPTICS.to_image(cam, snap.zoom, aspect) * (width, height)
                cv2.fillPoly(image, [pts.astype(np.int32)], (40 + 50 * k, 150, 60))
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        label = f"{stamp}  {self.name}  P{snap.pan:+.2f} T{snap.tilt:+.2f} Z{snap.zoom:.2f}"
        cv2.putText(image, label, (10, height - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 2, cv2.LINE_AA)
        return image, snap

    def _maps(self, width: int, height: int, pan: float, tilt: float, zoom: float) -> tuple[np.ndarray, np.ndarray]:
        """Where each output pixel takes the scene from (cv2.remap maps) at one position: each pixel's
        ray (SIM_OPTICS.rays, in float32 and unnormalised: ~5 ms at 352x288, 20 ms at 704x576). The
        last one is kept: a still camera asks for the same every frame."""
        key = (width, height, pan, tilt, zoom)
        cached = self._map_cache
        if cached is not None and cached[0] == key:
            return cached[1], cached[2]
        f = SIM_OPTICS.focal(zoom)
        xs = ((np.arange(width, dtype=np.float32) + 0.5) / width - 0.5) * 2 / f
        ys = (0.5 - (np.arange(height, dtype=np.float32) + 0.5) / height) * 2 / (f * width / height)
        cam_x, cam_y = np.meshgrid(xs, ys)
        r = SIM_OPTICS.rotation(pan, tilt).astype(np.float32)
        # world = camera @ rotation (its inverse), with the camera's z = 1.
        wx = cam_x * r[0, 0] + cam_y * r[1, 0] + r[2, 0]
        wy = cam_x * r[0, 1] + cam_y * r[1, 1] + r[2, 1]
        wz = cam_x * r[0, 2] + cam_y * r[1, 2] + r[2, 2]
        az = np.degrees(np.arctan2(wx, wz))
        el = np.degrees(np.arctan2(wy, np.hypot(wx, wz)))
        map_x = (az - SCENE_AZ0_DEG) * PX_PER_DEG - 0.5
        map_y = (SCENE_EL_TOP_DEG - el) * PX_PER_DEG - 0.5
        self._map_cache = (key, map_x, map_y)
        return map_x, map_y


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
