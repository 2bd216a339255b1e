"""The PTZ driver interface every camera driver implements (ONVIF, simulated).

Positions use ONVIF's generic spaces, which the frame envelope carries as they are: pan and tilt
in [-1, 1], zoom in [0, 1]. Velocities are in [-1, 1] (zoom velocity too). A driver failure
raises PtzError with a message an operator can act on; drivers never log credentials.
"""

from dataclasses import dataclass
from typing import Protocol

from services.common.refusals import Unavailable


class PtzError(Unavailable):
    """The camera's PTZ cannot do what was asked (unreachable, refused, unsupported)."""


@dataclass(frozen=True)
class PtzSnapshot:
    pan: float
    tilt: float
    zoom: float
    moving: bool
    # When the position was read (UTC microseconds).
    read_time_us: int


def clamp_position(pan: float, tilt: float, zoom: float) -> tuple[float, float, float]:
    return max(-1.0, min(1.0, pan)), max(-1.0, min(1.0, tilt)), max(0.0, min(1.0, zoom))


def clamp_velocity(value: float) -> float:
    return max(-1.0, min(1.0, value))


class PtzDriver(Protocol):
    async def connect(self) -> None: ...

    async def status(self) -> PtzSnapshot: ...

    async def continuous_move(self, pan: float, tilt: float, zoom: float) -> None: ...

    async def absolute_move(self, pan: float, tilt: float, zoom: float) -> None: ...

    async def relative_move(self, pan: float, tilt: float, zoom: float) -> None: ...

    async def stop(self) -> None: ...

    async def goto_home(self) -> None: ...

    async def set_home(self) -> None: ...

    async def presets(self) -> dict[str, str]:
        """The camera's own presets: token -> name."""
        ...

    async def set_preset(self, name: str) -> str:
        """Store the current position in the camera under name; the preset's token."""
        ...

    async def goto_preset(self, token: str) -> None: ...

    async def remove_preset(self, token: str) -> None: ...

    async def close(self) -> None: ...
