"""Migrations and the recordings index on the test database (PostgreSQL in CI, else SQLite)."""

import pytest
from sqlalchemy import inspect

from services.archive import index
from services.archive.models import Segment
from services.common import db
from services.common.settings import Settings


@pytest.fixture
def engine(database_url: str):  # type: ignore[no-untyped-def]
    engine = db.make_engine(Settings(database_url=database_url))  # type: ignore[call-arg]
    yield engine
    engine.dispose()


def segment(n: int, start_us: int, end_us: int, camera: str = "cam-1") -> Segment:
    return Segment(
        id=f"{n:032x}",
        camera_id=camera,
        stream="main",
        start_us=start_us,
        end_us=end_us,
        object_key=f"cam/{camera}/{n}.mp4",
        bytes=10,
        sha256="0" * 64,
        frames=1,
        mask_version="m-1",
        created_us=end_us,
    )


def test_migrations_are_idempotent_and_owned_by_the_service(engine) -> None:  # type: ignore[no-untyped-def]
    db.migrate("archive", engine)
    db.migrate("archive", engine)
    tables = set(inspect(engine).get_table_names())
    assert {"archive_segments", "alembic_version_archive"} <= tables
    assert db.ping(engine)


def test_overlap_queries_use_half_open_intervals(engine) -> None:  # type: ignore[no-untyped-def]
    db.migrate("archive", engine)
    for n, (start, end) in enumerate([(0, 100), (100, 200), (300, 400)]):
        index.insert(engine, segment(n, start, end))
    index.insert(engine, segment(9, 0, 1000, camera="cam-2"))
    index.insert(engine, segment(0, 0, 100))  # a retried insert is a no-op
    ids = lambda rows: [r.id[-1] for r in rows]  # noqa: E731
    assert ids(index.overlapping(engine, "cam-1", "main", 0, 1000)) == ["0", "1", "2"]
    assert ids(index.overlapping(engine, "cam-1", "main", 100, 300)) == ["1"]
    assert ids(index.overlapping(engine, "cam-1", "main", 200, 300)) == []
    assert ids(index.overlapping(engine, "cam-1", "main", 150, 350)) == ["1", "2"]
    assert index.get(engine, f"{9:032x}").camera_id == "cam-2"
    assert index.get(engine, "f" * 32) is None
