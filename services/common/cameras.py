"""The camera catalogue file: the seed of ingest's camera registry, and (for now) masking's masks.

Read from the JSON file named by CSU_CAMERAS_FILE, or, when none is set, two built-in demo cameras
that need nothing outside the repository. Ingest copies it into its registry (database) on its
first start with an empty registry and from then on serves the registry; masking still reads the
masks from here until mask governance moves them.

    [{"id": "cam-01", "name": "Place d'Armes", "source": "rtsp://host/stream",
      "masks": [[[0.42, 0.05], [0.75, 0.05], [0.75, 0.19], [0.42, 0.19]]]}]

The file may also be an object {"authorisations": [...], "cameras": [...]}, and a camera may
carry the registry's other fields: sub_source, model, generation, ptz_driver, ptz_url,
position {lat, lon, view_direction_deg}, profile {width, height, fps, close_up}, authorisation
(a reference), state. Cameras without position or authorisation are seeded under a demonstration
authorisation (see services/ingest/registry.py), which the operator must replace.

Masks are polygons in normalised image coordinates (0..1 from the top-left corner), so one set
fits the main and sub streams alike. `masks` is required: an empty list is an explicit statement
that no private area is in view; a camera missing from the catalogue is masked entirely.
"""

import hashlib
import json
from datetime import date
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from services.common.settings import LEGAL_MAX_RETENTION_DAYS, Settings
from services.common.subjects import check_camera_id

Point = tuple[Annotated[float, Field(ge=0.0, le=1.0)], Annotated[float, Field(ge=0.0, le=1.0)]]
Polygon = Annotated[list[Point], Field(min_length=3)]


class CataloguePosition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    view_direction_deg: float = Field(0.0, ge=0, lt=360)


class CatalogueProfile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    width: int
    height: int
    fps: float
    close_up: bool = False


class CatalogueAuthorisation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    reference: str
    decision: date
    expiry: date
    purposes: list[str]
    max_retention_days: int = Field(ge=1, le=LEGAL_MAX_RETENTION_DAYS)
    recipients: list[str]
    # GeoJSON Polygon or MultiPolygon, [lon, lat].
    perimeter: dict


class CameraConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    name: str
    source: str = Field(description="rtsp://, http(s)://, a file path, or demo://<scene>")
    transport: Literal["tcp", "udp"] = "tcp"
    masks: list[Polygon]
    retention_days: int = Field(15, ge=1, le=LEGAL_MAX_RETENTION_DAYS)
    # Permissions are granted per camera group (see the gateway's security module).
    groups: list[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]] = ["default"]
    # Registry fields (optional in the file; see the module docstring).
    sub_source: str | None = None
    model: str = ""
    generation: str = ""
    ptz_driver: Literal["", "onvif", "simulated"] = ""
    ptz_url: str = ""
    position: CataloguePosition | None = None
    profile: CatalogueProfile | None = None
    authorisation: str | None = None
    state: Literal["commissioning", "in_service", "maintenance", "decommissioned"] = "in_service"
    # Ways through masking and the overlay (see services/ingest/specs.py).
    camera_masks: bool = False
    camera_osd: bool = False
    osd_overlay: bool = True
    osd_position: Literal["top-left", "top-right", "bottom-left", "bottom-right"] = "top-left"

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        return check_camera_id(value)

    @property
    def mask_version(self) -> str:
        """A content hash: any change to the polygons is a new version, and equal sets match."""
        canonical = json.dumps([[list(p) for p in poly] for poly in self.masks], separators=(",", ":"))
        return "m-" + hashlib.sha256(canonical.encode()).hexdigest()[:12]


class Catalogue(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    authorisations: list[CatalogueAuthorisation] = []
    cameras: list[CameraConfig]


_CATALOGUE = TypeAdapter(list[CameraConfig] | Catalogue)

# The demo scene draws a building whose upper windows sit in this band (see ingest.demo).
DEMO_WINDOW_MASK: list[Point] = [(0.08, 0.08), (0.60, 0.08), (0.60, 0.30), (0.08, 0.30)]


def demo_cameras(retention_days: int) -> list[CameraConfig]:
    scenes = [("demo-1", "Démo — parvis", "plaza"), ("demo-2", "Démo — rue piétonne", "street")]
    return [
        CameraConfig(
            id=camera_id,
            name=name,
            source=f"demo://{scene}?seed={n}",
            masks=[DEMO_WINDOW_MASK],
            retention_days=retention_days,
        )
        for n, (camera_id, name, scene) in enumerate(scenes, start=1)
    ]


def load_cameras(settings: Settings) -> list[CameraConfig]:
    return load_catalogue(settings).cameras


def load_catalogue(settings: Settings) -> Catalogue:
    if settings.cameras_file is None:
        return Catalogue(cameras=demo_cameras(settings.retention_days))
    return parse_catalogue(Path(settings.cameras_file).read_bytes())


def parse_cameras(raw: bytes) -> list[CameraConfig]:
    return parse_catalogue(raw).cameras


def parse_catalogue(raw: bytes) -> Catalogue:
    parsed = _CATALOGUE.validate_json(raw)
    catalogue = parsed if isinstance(parsed, Catalogue) else Catalogue(cameras=parsed)
    seen: set[str] = set()
    for camera in catalogue.cameras:
        if camera.id in seen:
            raise ValueError(f"camera id {camera.id!r} appears twice")
        seen.add(camera.id)
    return catalogue
