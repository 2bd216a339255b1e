"""The camera registry on a real database: authorisation and perimeter rules, norms, lifecycle,
secrets at rest, CSV import/export (all-or-nothing, line-numbered errors), the first-start seed."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from services.common import db
from services.common.cameras import demo_cameras, parse_catalogue
from services.common.clock import ManualClock, to_us
from services.common.refusals import Conflict, Exists, Invalid
from services.common.secretbox import SecretBox
from services.common.settings import Settings
from services.ingest import csvio
from services.ingest.authorisations import AuthorisationInput
from services.ingest.registry import SEED_REFERENCE, Registry, recording_refusal
from services.ingest.specs import CameraInput

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
# A perimeter around the old town: [lon, lat] corners.
OLD_TOWN = {
    "type": "Polygon",
    "coordinates": [[[4.80, 45.75], [4.86, 45.75], [4.86, 45.78], [4.80, 45.78], [4.80, 45.75]]],
}
INSIDE = (45.76, 4.83)
OUTSIDE = (45.80, 4.83)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def registry(database_url: str, tmp_path: Path, clock: ManualClock) -> Registry:
    settings = Settings(database_url=database_url, data_dir=tmp_path)  # type: ignore[call-arg]
    engine = db.make_engine(settings)
    db.migrate("ingest", engine)
    SecretBox.generate(tmp_path / "secrets.key")
    return Registry(engine, SecretBox.from_file(tmp_path / "secrets.key"), clock)


def authorisation(reference: str = "PREF-2026-001", years: int = 5, **overrides: object) -> AuthorisationInput:
    fields: dict[str, object] = {
        "reference": reference,
        "decision_us": to_us(NOW - timedelta(days=30)),
        "expiry_us": to_us(NOW.replace(year=NOW.year + years) - timedelta(days=31)),
        "purposes": ["protection des bâtiments publics", "prévention des atteintes aux personnes"],
        "max_retention_days": 15,
        "recipients": ["police municipale", "police nationale"],
        "perimeter_geojson": json.dumps(OLD_TOWN),
    }
    return AuthorisationInput.model_validate(fields | overrides)


def camera(camera_id: str = "cam-01", **overrides: object) -> CameraInput:
    fields: dict[str, object] = {
        "id": camera_id,
        "name": "Place des Terreaux",
        "main_url": "rtsp://admin:s3cr3t-pass@10.0.0.5:554/stream1",
        "lat": INSIDE[0],
        "lon": INSIDE[1],
        "view_direction_deg": 90,
        "groups": ["centre"],
        "width": 1920,
        "height": 1080,
        "fps": 12.5,
        "retention_days": 15,
        "authorisation_ref": "PREF-2026-001",
    }
    return CameraInput.model_validate(fields | overrides)


def test_camera_inside_a_valid_perimeter_records_and_its_credentials_are_sealed(
    registry: Registry, database_url: str, tmp_path: Path
) -> None:
    registry.put_authorisation(authorisation(), "admin")
    created = registry.create_camera(camera(), "admin")
    assert created.main_url == "rtsp://admin:s3cr3t-pass@10.0.0.5:554/stream1"
    auth = registry.authorisation("PREF-2026-001")
    assert recording_refusal(created, auth, to_us(NOW)) is None
    # At rest, the password is nowhere in the database.
    engine = db.make_engine(Settings(database_url=database_url, data_dir=tmp_path))  # type: ignore[call-arg]
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT main_url_sealed FROM ingest_cameras")).scalar_one()
    assert "s3cr3t" not in stored and "10.0.0.5" not in stored
    with pytest.raises(Exists, match="already exists"):
        registry.create_camera(camera(), "admin")


def test_moving_inside_is_free_moving_outside_is_refused(registry: Registry) -> None:
    registry.put_authorisation(authorisation(), "admin")
    registry.create_camera(camera(), "admin")
    moved = registry.update_camera(camera(lat=45.77, lon=4.85), "admin")
    assert (moved.lat, moved.lon) == (45.77, 4.85)
    assert moved.main_url.endswith("@10.0.0.5:554/stream1")  # empty URL on update keeps the stored one
    with pytest.raises(Conflict, match="outside the perimeter of authorisation PREF-2026-001"):
        registry.update_camera(camera(lat=OUTSIDE[0], lon=OUTSIDE[1]), "admin")
    assert (registry.camera("cam-01").lat, registry.camera("cam-01").lon) == (45.77, 4.85)
    with pytest.raises(Conflict, match="outside the perimeter"):
        registry.create_camera(camera("cam-02", lat=OUTSIDE[0], lon=OUTSIDE[1]), "admin")
    # Shrinking the perimeter away from a camera is refused too.
    small = {"type": "Polygon", "coordinates": [[[4.80, 45.75], [4.81, 45.75], [4.81, 45.76], [4.80, 45.75]]]}
    with pytest.raises(Conflict, match="would leave camera"):
        registry.put_authorisation(authorisation(perimeter_geojson=json.dumps(small)), "admin")


def test_authorisation_rules(registry: Registry) -> None:
    with pytest.raises(ValueError, match="at most 5 years"):
        authorisation(years=6)
    with pytest.raises(ValueError, match="less than or equal to 30"):
        authorisation(max_retention_days=31)
    with pytest.raises(ValueError, match="Polygon or MultiPolygon"):
        authorisation(perimeter_geojson=json.dumps({"type": "Point", "coordinates": [4.8, 45.7]}))
    bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}
    with pytest.raises(ValueError, match="not a valid polygon: Self-intersection"):
        authorisation(perimeter_geojson=json.dumps(bowtie))
    with pytest.raises(ValueError, match="expiry must be after the decision"):
        authorisation(expiry_us=to_us(NOW - timedelta(days=60)))
    registry.put_authorisation(authorisation(max_retention_days=10), "admin")
    with pytest.raises(Invalid, match="retention of 15 days exceeds the 10 days"):
        registry.create_camera(camera(), "admin")
    with pytest.raises(Invalid, match="unknown authorisation 'NOPE'"):
        registry.create_camera(camera(authorisation_ref="NOPE"), "admin")


def test_profiles_below_the_norms_are_refused() -> None:
    with pytest.raises(ValueError, match=r"320x240 at 25 fps is below the arrêté du 3 août 2007 minimum for stored"):
        camera(width=320, height=240, fps=25)
    with pytest.raises(ValueError, match="at least 352x288 at 6 fps"):
        camera(width=704, height=576, fps=5)
    with pytest.raises(ValueError, match="close-up cameras filming people: at least 704x576 at 12 fps"):
        camera(width=704, height=576, fps=10, close_up=True)
    assert camera(width=352, height=288, fps=6).width == 352
    assert camera(width=704, height=576, fps=12, close_up=True).close_up


def test_lifecycle_and_expiry(registry: Registry, clock: ManualClock) -> None:
    registry.put_authorisation(authorisation(years=1), "admin")
    registry.create_camera(camera(), "admin")
    assert registry.camera("cam-01").state == "commissioning"
    assert registry.set_state("cam-01", "in_service", "admin").state == "in_service"
    with pytest.raises(Conflict, match="cannot go from in_service to commissioning"):
        registry.set_state("cam-01", "commissioning", "admin")
    registry.set_state("cam-01", "maintenance", "admin")
    assert recording_refusal(registry.camera("cam-01"), registry.authorisation("PREF-2026-001"), to_us(NOW)) == (
        "camera is in maintenance"
    )
    registry.set_state("cam-01", "in_service", "admin")
    auth = registry.authorisation("PREF-2026-001")
    assert auth.status(to_us(NOW)) == "valid"
    assert auth.status(auth.expiry_us - 130 * 86_400_000_000) == "valid"
    assert auth.status(auth.expiry_us - 100 * 86_400_000_000) == "expiring"
    clock.advance(timedelta(days=400))
    refusal = recording_refusal(registry.camera("cam-01"), auth, to_us(clock.now()))
    assert refusal is not None and refusal.startswith("authorisation expired")
    registry.set_state("cam-01", "maintenance", "admin")
    with pytest.raises(Conflict, match="cannot go into service: authorisation expired"):
        registry.set_state("cam-01", "in_service", "admin")
    registry.set_state("cam-01", "decommissioned", "admin")
    with pytest.raises(Conflict, match="decommissioned: it can no longer be changed"):
        registry.update_camera(camera(name="x"), "admin")


def test_notices_are_raised_once(registry: Registry) -> None:
    registry.put_authorisation(authorisation(), "admin")
    assert registry.mark_notice("PREF-2026-001", "expiring", 1) is True
    assert registry.mark_notice("PREF-2026-001", "expiring", 2) is False
    assert registry.authorisation("PREF-2026-001").warned_us == 1


def _csv(rows: list[dict[str, object]]) -> bytes:
    header = list(rows[0])
    lines = [",".join(header)] + [",".join(str(r.get(h, "")) for h in header) for r in rows]
    return ("\n".join(lines) + "\n").encode()


def _row(n: int, **overrides: object) -> dict[str, object]:
    return {
        "id": f"cam-{n:03d}",
        "name": f"Caméra {n}",
        "main_url": f"rtsp://viewer:pw{n}@10.1.{n // 250}.{n % 250}/h264",
        "lat": 45.751 + 0.0002 * n,
        "lon": 4.81,
        "groups": "centre;nuit",
        "width": 1920,
        "height": 1080,
        "fps": 25,
        "retention_days": 15,
        "authorisation_ref": "PREF-2026-001",
    } | overrides


def test_csv_imports_128_cameras_in_one_call_and_exports_without_credentials(registry: Registry) -> None:
    registry.put_authorisation(authorisation(), "admin")
    rows = [_row(n) for n in range(128)]
    specs, errors = csvio.parse(_csv(rows), {})
    assert errors == []
    assert registry.apply_bulk(specs, "admin", dry_run=False) == (128, 0, [])
    cameras = registry.cameras()
    assert len(cameras) == 128 and cameras[5].groups == ["centre", "nuit"]
    exported = csvio.export(cameras)
    assert b"pw5" not in exported and b"rtsp://***@10.1.0.5/h264" in exported
    # The export re-imports unchanged (credentials kept), and an edit in it applies.
    edited = exported.replace("Caméra 7,".encode(), "Caméra sept,".encode())
    specs, errors = csvio.parse(edited, {c.id: c.state for c in cameras})
    assert errors == []
    assert registry.apply_bulk(specs, "admin", dry_run=False) == (0, 128, [])
    assert registry.camera("cam-007").name == "Caméra sept"
    assert registry.camera("cam-007").main_url == "rtsp://viewer:pw7@10.1.0.7/h264"


def test_csv_errors_carry_line_numbers_and_nothing_is_imported(registry: Registry) -> None:
    registry.put_authorisation(authorisation(), "admin")
    rows = [_row(n) for n in range(10)]
    rows[2] = _row(2, width=320, height=240)  # line 4
    rows[5] = _row(5, lat=45.9)  # line 7: outside the perimeter
    rows[7] = _row(7, id="cam-001")  # line 9: duplicate of line 3
    rows[8] = _row(8, retention_days=45)  # line 10
    specs, errors = csvio.parse(_csv(rows), {})
    by_line = dict(errors)
    assert set(by_line) == {4, 9, 10}
    assert "below the arrêté du 3 août 2007" in by_line[4]
    assert "already appears on line 3" in by_line[9]
    assert by_line[10].startswith("retention_days:")
    created, updated, refused = registry.apply_bulk(specs, "admin", dry_run=False)
    assert (created, updated) == (0, 0)
    assert [line for line, _ in refused] == [7] and "outside the perimeter" in refused[0][1]
    assert registry.cameras() == []  # all-or-nothing: the valid rows were not imported either
    bad_header = csvio.parse(b"id,name,colour\ncam-1,x,red\n", {})[1]
    assert bad_header[0][0] == 1 and "unknown column(s) colour" in bad_header[0][1]


def test_seed_from_the_catalogue_places_unplaced_cameras_under_a_flagged_demo_authorisation(
    registry: Registry,
) -> None:
    catalogue = parse_catalogue(
        json.dumps(
            {
                "authorisations": [
                    {
                        "reference": "PREF-2026-001",
                        "decision": "2026-01-10",
                        "expiry": "2031-01-09",
                        "purposes": ["voie publique"],
                        "max_retention_days": 20,
                        "recipients": ["police nationale"],
                        "perimeter": OLD_TOWN,
                    }
                ],
                "cameras": [
                    {
                        "id": "placed",
                        "name": "Placed",
                        "source": "rtsp://u:p@10.0.0.9/s",
                        "masks": [],
                        "position": {"lat": INSIDE[0], "lon": INSIDE[1]},
                        "authorisation": "PREF-2026-001",
                        "profile": {"width": 1280, "height": 720, "fps": 15},
                    },
                    *[c.model_dump() for c in demo_cameras(15)],
                ],
            }
        ).encode()
    )
    assert registry.seed(catalogue, (704, 576, 10.0)) == 3
    assert registry.seed(catalogue, (704, 576, 10.0)) == 0  # only an empty registry is seeded
    placed, demo = registry.camera("placed"), registry.camera("demo-1")
    assert placed.authorisation_ref == "PREF-2026-001" and placed.width == 1280
    assert demo.authorisation_ref == SEED_REFERENCE and demo.masks and demo.state == "in_service"
    seed = registry.authorisation(SEED_REFERENCE)
    assert seed.seeded and "not a prefectoral order" in seed.purposes[0]
    assert recording_refusal(demo, seed, to_us(NOW)) is None


def test_imaging_settings_default_to_burning_in_and_survive_an_update_that_does_not_name_them(
    registry: Registry,
) -> None:
    registry.put_authorisation(authorisation(), "admin")
    created = registry.create_camera(camera(), "admin")
    assert (created.camera_masks, created.camera_osd, created.osd_overlay, created.osd_position) == (
        False, False, True, "top-left",
    )  # fmt: skip
    onvif = "http://admin:pw@10.0.0.5/onvif/device_service"
    registry.update_camera(
        camera(ptz_url=onvif, camera_masks=True, camera_osd=True, osd_position="bottom-right"), "admin"
    )
    # A CSV round trip does not know these columns: they are kept, not reset.
    rows, errors = csvio.parse(csvio.export(registry.cameras()), {"cam-01": "commissioning"})
    assert not errors
    registry.update_camera(rows[0][1], "admin")
    kept = registry.camera("cam-01")
    assert (kept.camera_masks, kept.camera_osd, kept.osd_position) == (True, True, "bottom-right")
    with pytest.raises(ValueError, match="camera_masks needs the camera's ONVIF device service"):
        camera(camera_masks=True)
