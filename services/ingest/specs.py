"""A camera as an administrator describes it, validated field by field, and its lifecycle.

    commissioning -> in_service <-> maintenance -> decommissioned (final)

Every rule that a single camera's fields can break is checked here (so the API, the CSV import and
the seed give the same messages); rules that involve an authorisation live in the registry.
"""

import re
from typing import Annotated, Final, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from services.common.settings import LEGAL_MAX_RETENTION_DAYS
from services.common.subjects import check_camera_id
from services.common.technical_norms import profile_problem
from services.ingest.authorisations import REFERENCE_PATTERN

COMMISSIONING: Final = "commissioning"
IN_SERVICE: Final = "in_service"
MAINTENANCE: Final = "maintenance"
DECOMMISSIONED: Final = "decommissioned"
STATES = (COMMISSIONING, IN_SERVICE, MAINTENANCE, DECOMMISSIONED)
TRANSITIONS: dict[str, frozenset[str]] = {
    COMMISSIONING: frozenset({IN_SERVICE, DECOMMISSIONED}),
    IN_SERVICE: frozenset({MAINTENANCE, DECOMMISSIONED}),
    MAINTENANCE: frozenset({IN_SERVICE, DECOMMISSIONED}),
    DECOMMISSIONED: frozenset(),
}
# States in which the camera's source is opened (and, with a valid authorisation, recorded).
STREAMING_STATES = frozenset({COMMISSIONING, IN_SERVICE})
PTZ_DRIVERS = ("", "onvif", "simulated")
NETWORK_SCHEMES = ("rtsp", "rtsps", "http", "https")
LOCAL_SCHEMES = ("demo", "simptz", "file")

Group = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Short = Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)]


def transition_problem(current: str, target: str) -> str | None:
    if target not in STATES:
        return f"unknown state {target!r}: one of {', '.join(STATES)}"
    if target == current:
        return None
    if target not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "none (final state)"
        return f"a camera cannot go from {current} to {target} (allowed: {allowed})"
    return None


def source_url_problem(url: str, what: str) -> str | None:
    """Why url cannot be a source, or None. Reachability is checked at run time (a status)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in NETWORK_SCHEMES:
        try:
            port = parts.port
        except ValueError:
            return f"{what} has an invalid port"
        if not parts.hostname:
            return f"{what} has no host"
        del port
        return None
    if scheme in LOCAL_SCHEMES or scheme == "":
        return None  # a file path (relative to the service's working folder when not absolute)
    return f"{what} must be rtsp://, rtsps://, http(s)://, a file path, demo:// or simptz://"


class CameraInput(BaseModel):
    """All of a camera's settings. On update, empty URLs mean "keep the stored one"."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: str
    name: Name
    main_url: str = ""
    sub_url: str = ""
    transport: Literal["tcp", "udp"] = "tcp"
    model: Short = ""
    generation: Short = ""
    ptz_driver: Literal["", "onvif", "simulated"] = ""
    ptz_url: str = ""
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    view_direction_deg: float = Field(0.0, ge=0, lt=360)
    groups: list[Group] = Field(default_factory=lambda: ["default"], min_length=1)
    width: int = Field(ge=1, le=16384)
    height: int = Field(ge=1, le=16384)
    fps: float = Field(gt=0, le=120)
    segment_duration_s: float = Field(60.0, gt=0, le=600)
    close_up: bool = False
    retention_days: int = Field(15, ge=1, le=LEGAL_MAX_RETENTION_DAYS)
    authorisation_ref: str = ""
    state: Literal["commissioning", "in_service", "maintenance", "decommissioned"] = COMMISSIONING
    # Ways through masking (services/masking/modes.py) and the overlay masking burns in.
    camera_masks: bool = False
    camera_osd: bool = False
    osd_overlay: bool = True
    osd_position: Literal["top-left", "top-right", "bottom-left", "bottom-right"] = "top-left"

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        return check_camera_id(value)

    @field_validator("authorisation_ref")
    @classmethod
    def _reference(cls, value: str) -> str:
        if value and not re.fullmatch(REFERENCE_PATTERN, value):
            raise ValueError(f"invalid authorisation reference {value!r}")
        return value

    @model_validator(mode="after")
    def _rules(self) -> "CameraInput":
        for url, what in ((self.main_url, "main_url"), (self.sub_url, "sub_url")):
            if url and (problem := source_url_problem(url, what)):
                raise ValueError(problem)
        if self.ptz_driver == "onvif" and self.ptz_url:
            parts = urlsplit(self.ptz_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("ptz_url of an ONVIF camera must be http(s)://[user:password@]host[:port]")
        if self.ptz_driver == "simulated" and self.ptz_url and not self.ptz_url.startswith("simptz://"):
            raise ValueError("ptz_url of a simulated PTZ camera must be simptz://<name>")
        if self.camera_masks:
            parts = urlsplit(self.ptz_url)
            if self.ptz_driver == "simulated" or parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(
                    "camera_masks needs the camera's ONVIF device service in ptz_url "
                    "(http(s)://[user:password@]host[:port]/onvif/device_service)"
                )
        if problem := profile_problem(self.width, self.height, self.fps, self.close_up):
            raise ValueError(problem)
        return self


def first_error(exc: Exception) -> str:
    """A pydantic ValidationError as one readable line: 'field: message; ...'."""
    from pydantic import ValidationError

    if not isinstance(exc, ValidationError):
        return str(exc)
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)
