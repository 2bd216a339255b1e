"""The static camera catalogue: which cameras exist, where their video comes from, their masks.

Read from the JSON file named by CSU_CAMERAS_FILE, or, when none is set, two built-in demo cameras
that need nothing outside the repository. Ingest reads the sources, masking the masks, and the
gateway learns the list from ingest over gRPC. (A database-backed registry with authorisations
replaces this file in the cameras issue; the file format stays as its import format.)

    [{"id": "cam-01", "name": "Place d'Armes", "source": "rtsp://host/stream",
      "masks": [[[0.42, 0.05], [0.75, 0.05], [0.75, 0.19], [0.42, 0.19]]]}]

Masks are polygons in normalised image coordinates (0..1 from the top-left corner), so one set
fits the main and sub streams alike. `masks` is required: an empty list is an explicit statement
that no private area is in view; a camera missing from the catalogue is masked entirely.
"""

import hashlib
import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from services.common.settings import LEGAL_MAX_RETENTION_DAYS, Settings
from services.common.subjects import check_camera_id

Point = tuple[Annotated[float, Field(ge=0.0, le=1.0)], Annotated[float, Field(ge=0.0, le=1.0)]]
Polygon = Annotated[list[Point], Field(min_length=3)]


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

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        return check_camera_id(value)

    @property
    def mask_version(self) -> str:
        """A content hash: any change to the polygons is a new version, and equal sets match."""
        canonical = json.dumps([[list(p) for p in poly] for poly in self.masks], separators=(",", ":"))
        return "m-" + hashlib.sha256(canonical.encode()).hexdigest()[:12]


_CATALOGUE = TypeAdapter(list[CameraConfig])

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
    if settings.cameras_file is None:
        return demo_cameras(settings.retention_days)
    return parse_cameras(Path(settings.cameras_file).read_bytes())


def parse_cameras(raw: bytes) -> list[CameraConfig]:
    cameras = _CATALOGUE.validate_json(raw)
    seen: set[str] = set()
    for camera in cameras:
        if camera.id in seen:
            raise ValueError(f"camera id {camera.id!r} appears twice")
        seen.add(camera.id)
    return cameras
