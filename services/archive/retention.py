"""How long each camera's recordings are kept: the camera's retention from IngestService, the
last value ingest gave (kept in the database) while ingest cannot answer, the global
CSU_RETENTION_DAYS only for a camera ingest never described, never more than the legal 30 days.

The clamp is applied here, whatever a camera or a setting says, so every reader (sweeper, range
checks, lifecycle rule) inherits it.
"""

import asyncio
from collections.abc import Iterable

import grpc
from sqlalchemy import Engine
from sqlmodel import select

from services.archive.models import CameraRetention
from services.common.clock import Clock, SystemClock, to_us
from services.common.db import session
from services.common.log import get_logger
from services.common.pb.csu.v1 import ingest_pb2, ingest_pb2_grpc
from services.common.settings import LEGAL_MAX_RETENTION_DAYS
from services.common.timefmt import DAY_US

log = get_logger(__name__)


def clamp_days(days: int) -> int:
    return max(1, min(int(days), LEGAL_MAX_RETENTION_DAYS))


class RetentionPolicy:
    def __init__(
        self,
        default_days: int,
        ingest: "ingest_pb2_grpc.IngestServiceAsyncStub | None" = None,
        engine: Engine | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.default_days = clamp_days(default_days)
        self._ingest = ingest
        self._engine = engine
        self._clock = clock or SystemClock()
        self._days: dict[str, int] = {}
        self._names: dict[str, str] = {}

    def load(self) -> None:
        """What ingest said before this process started (call once the tables exist)."""
        if self._engine is None:
            return
        with session(self._engine) as s:
            for row in s.exec(select(CameraRetention)):
                self._days[row.camera_id] = clamp_days(row.days)
                self._names[row.camera_id] = row.name

    def days_for(self, camera_id: str) -> int:
        return clamp_days(self._days.get(camera_id, self.default_days))

    def cutoff_us(self, camera_id: str, now_us: int) -> int:
        """Footage that started before this instant is past the camera's retention."""
        return now_us - self.days_for(camera_id) * DAY_US

    def longest_days(self) -> int:
        return clamp_days(max([self.default_days, *self._days.values()]))

    def name_for(self, camera_id: str) -> str:
        return self._names.get(camera_id, camera_id)

    def known_cameras(self) -> list[str]:
        return sorted(self._names)

    def update(self, cameras: Iterable[ingest_pb2.Camera]) -> None:
        changed = []
        for camera in cameras:
            if camera.retention_days:
                days = clamp_days(camera.retention_days)
                if self._days.get(camera.id) != days or self._names.get(camera.id) != (camera.name or camera.id):
                    changed.append((camera.id, days, camera.name or camera.id))
                self._days[camera.id] = days
            self._names[camera.id] = camera.name or camera.id
        if changed and self._engine is not None:
            now = to_us(self._clock.now())
            with session(self._engine) as s:
                for camera_id, days, name in changed:
                    s.merge(CameraRetention(camera_id=camera_id, days=days, name=name[:128], updated_us=now))
                s.commit()

    async def refresh(self, timeout_s: float = 5.0) -> bool:
        """Ask ingest for every camera's retention; keep what we knew when it cannot answer."""
        if self._ingest is None:
            return False
        try:
            response = await self._ingest.ListCameras(ingest_pb2.ListCamerasRequest(), timeout=timeout_s)
        except grpc.aio.AioRpcError as exc:
            log.warning("camera retention not refreshed: ingest unavailable", code=exc.code().name)
            return False
        await asyncio.to_thread(self.update, response.cameras)
        return True
