"""The ONVIF PTZ driver (onvif-zeep-async): the PTZ service of ONVIF Profile S cameras.

The camera's address is its device service URL with credentials,
http://user:password@host:port/onvif/device_service. Connecting discovers the media and PTZ
service addresses (GetServices, or GetCapabilities on older cameras) and the first media profile
with a PTZ configuration, whose token every PTZ call names. Requests are signed with a WS-Security
UsernameToken digest, corrected for the camera's clock offset.

Coordinates are ONVIF's generic spaces (pan/tilt [-1, 1], zoom [0, 1]), which are the
platform's, so positions pass through unchanged.
"""

import asyncio
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from services.common.clock import to_us
from services.ingest.ptz.driver import PtzError, PtzSnapshot, clamp_position, clamp_velocity
from services.ingest.sources import describe

CALL_TIMEOUT_S = 10.0


def _problem(exc: BaseException) -> str:
    """An ONVIF/SOAP/HTTP failure in words; never the URL with its credentials."""
    text = str(exc) or type(exc).__name__
    lowered = text.lower()
    if "notauthorized" in lowered.replace(" ", "") or "not authorized" in lowered or "401" in text:
        return "wrong credentials (the camera refused the request: not authorized)"
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return f"no answer from the camera within {CALL_TIMEOUT_S:g} s"
    if "cannot connect" in lowered or "connection refused" in lowered or "connect call failed" in lowered:
        return "cannot reach the camera's ONVIF service (connection refused)"
    return text


class OnvifPtzDriver:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PtzError(f"not an ONVIF device service URL: {describe(url)}")
        self._where = describe(url)
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._user = unquote(parts.username or "")
        self._password = unquote(parts.password or "")
        self._camera: Any = None
        self._ptz: Any = None
        self._token = ""

    async def _call(self, operation: str, params: dict[str, Any]) -> Any:
        if self._ptz is None:
            raise PtzError(f"ONVIF camera {self._where} is not connected")
        try:
            return await asyncio.wait_for(getattr(self._ptz, operation)(params), CALL_TIMEOUT_S)
        except PtzError:
            raise
        except Exception as exc:
            raise PtzError(f"ONVIF {operation} failed: {_problem(exc)}") from exc

    async def connect(self) -> None:
        from onvif import ONVIFCamera  # imported here: it configures logging when imported

        await self.close()
        try:
            camera = ONVIFCamera(self._host, self._port, self._user, self._password, no_cache=True, adjust_time=True)
            await asyncio.wait_for(camera.update_xaddrs(), CALL_TIMEOUT_S)
            media = await camera.create_media_service()
            profiles = await asyncio.wait_for(media.GetProfiles(), CALL_TIMEOUT_S)
            ptz = await camera.create_ptz_service()
        except Exception as exc:
            if "camera" in locals():
                await _quiet_close(camera)
            raise PtzError(f"cannot connect to ONVIF camera {self._where}: {_problem(exc)}") from exc
        token = next((p.token for p in profiles or [] if getattr(p, "PTZConfiguration", None)), None)
        if token is None:
            await _quiet_close(camera)
            raise PtzError(f"ONVIF camera {self._where} has no media profile with a PTZ configuration")
        self._camera, self._ptz, self._token = camera, ptz, token

    async def status(self) -> PtzSnapshot:
        result = await self._call("GetStatus", {"ProfileToken": self._token})
        position = result.Position
        if position is None or position.PanTilt is None:
            raise PtzError("the camera reports no PTZ position")
        zoom = position.Zoom.x if position.Zoom is not None else 0.0
        move = result.MoveStatus
        moving = move is not None and "MOVING" in (str(move.PanTilt or ""), str(move.Zoom or ""))
        pan, tilt, zoom = clamp_position(position.PanTilt.x, position.PanTilt.y, zoom)
        return PtzSnapshot(pan, tilt, zoom, moving, to_us(datetime.now(UTC)))

    @staticmethod
    def _vector(pan: float, tilt: float, zoom: float) -> dict[str, Any]:
        return {"PanTilt": {"x": pan, "y": tilt}, "Zoom": {"x": zoom}}

    async def continuous_move(self, pan: float, tilt: float, zoom: float) -> None:
        velocity = self._vector(clamp_velocity(pan), clamp_velocity(tilt), clamp_velocity(zoom))
        await self._call("ContinuousMove", {"ProfileToken": self._token, "Velocity": velocity})

    async def absolute_move(self, pan: float, tilt: float, zoom: float) -> None:
        position = self._vector(*clamp_position(pan, tilt, zoom))
        await self._call("AbsoluteMove", {"ProfileToken": self._token, "Position": position})

    async def relative_move(self, pan: float, tilt: float, zoom: float) -> None:
        await self._call("RelativeMove", {"ProfileToken": self._token, "Translation": self._vector(pan, tilt, zoom)})

    async def stop(self) -> None:
        await self._call("Stop", {"ProfileToken": self._token, "PanTilt": True, "Zoom": True})

    async def goto_home(self) -> None:
        await self._call("GotoHomePosition", {"ProfileToken": self._token})

    async def set_home(self) -> None:
        await self._call("SetHomePosition", {"ProfileToken": self._token})

    async def presets(self) -> dict[str, str]:
        result = await self._call("GetPresets", {"ProfileToken": self._token})
        return {p.token: (p.Name or p.token) for p in result or []}

    async def set_preset(self, name: str) -> str:
        existing = {n: t for t, n in (await self.presets()).items()}
        params: dict[str, Any] = {"ProfileToken": self._token, "PresetName": name}
        if name in existing:
            params["PresetToken"] = existing[name]
        return str(await self._call("SetPreset", params))

    async def goto_preset(self, token: str) -> None:
        await self._call("GotoPreset", {"ProfileToken": self._token, "PresetToken": token})

    async def remove_preset(self, token: str) -> None:
        await self._call("RemovePreset", {"ProfileToken": self._token, "PresetToken": token})

    async def close(self) -> None:
        if self._camera is not None:
            await _quiet_close(self._camera)
        self._camera = self._ptz = None


async def _quiet_close(camera: Any) -> None:
    try:
        await camera.close()
    except Exception:  # noqa: BLE001 - closing a broken connection may fail; nothing to do about it
        pass
