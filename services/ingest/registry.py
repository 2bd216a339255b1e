"""The camera registry: cameras and prefectoral authorisations in ingest's database.

Every write checks the rules that span a camera and its authorisation (position inside the
perimeter, retention within the authorised maximum, lifecycle transitions) and either changes
everything asked or nothing, with a message naming the rule. Stream and PTZ URLs are sealed with
the deployment's secrets key before they reach the database and are opened only here.

Blocking (SQL): the async service calls these methods through asyncio.to_thread.
"""

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from pydantic import ValidationError
from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from services.common import db
from services.common.cameras import CameraConfig, Catalogue
from services.common.clock import Clock, to_us
from services.common.refusals import Conflict, Exists, Invalid, NotFound, Refusal
from services.common.secretbox import SecretBox
from services.ingest import authorisations as auth
from services.ingest.models import AuthorisationRow, CameraRow, PresetRow, TourRow
from services.ingest.sources import describe
from services.ingest.specs import (
    DECOMMISSIONED,
    IN_SERVICE,
    STREAMING_STATES,
    CameraInput,
    first_error,
    transition_problem,
)


@dataclass(frozen=True)
class AuthorisationRecord:
    reference: str
    decision_us: int
    expiry_us: int
    purposes: list[str]
    max_retention_days: int
    recipients: list[str]
    perimeter_geojson: str
    seeded: bool
    warned_us: int | None
    expired_alarm_us: int | None

    def status(self, now_us: int) -> str:
        return auth.status(self.decision_us, self.expiry_us, now_us)


@dataclass(frozen=True)
class CameraRecord:
    """A camera with its secrets opened: for ingest's own use, never sent anywhere as is."""

    id: str
    name: str
    main_url: str
    sub_url: str
    ptz_url: str
    transport: str
    model: str
    generation: str
    ptz_driver: str
    lat: float
    lon: float
    view_direction_deg: float
    groups: list[str]
    width: int
    height: int
    fps: float
    segment_duration_s: float
    close_up: bool
    retention_days: int
    authorisation_ref: str
    state: str
    state_since_us: int
    masks: list
    updated_us: int
    camera_masks: bool = False
    camera_osd: bool = False
    osd_overlay: bool = True
    osd_position: str = "top-left"

    def as_input(self) -> CameraInput:
        fields = {name: getattr(self, name) for name in CameraInput.model_fields}
        return CameraInput.model_validate(fields)


def recording_refusal(camera: CameraRecord, authorisation: AuthorisationRecord | None, now_us: int) -> str | None:
    """Why the camera may not record now, or None when it may (DESIGN §8.3)."""
    if camera.state not in STREAMING_STATES:
        return "camera is in maintenance" if camera.state == "maintenance" else f"camera is {camera.state}"
    if authorisation is None:
        return "no prefectoral authorisation: the camera may not record"
    state = authorisation.status(now_us)
    if state == auth.EXPIRED:
        return f"authorisation expired ({authorisation.reference}, on {_day(authorisation.expiry_us)})"
    if state == auth.NOT_YET_VALID:
        return f"authorisation {authorisation.reference} is not in force before {_day(authorisation.decision_us)}"
    if not auth.contains(authorisation.perimeter_geojson, camera.lat, camera.lon):
        return f"position outside the perimeter of authorisation {authorisation.reference}"
    if camera.retention_days > authorisation.max_retention_days:
        allowed = authorisation.max_retention_days
        return f"retention above the {allowed} days authorisation {authorisation.reference} allows"
    return None


def _day(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, UTC).strftime("%Y-%m-%d")


MASKED_CREDENTIALS = "***"


def masked_url(url: str) -> str:
    """The URL with its credentials replaced by ***: what the API and the CSV export show."""
    return describe(url) if url else ""


def restore_credentials(new_url: str, stored_url: str) -> str:
    """A URL given back with *** credentials (an edited export) gets the stored credentials."""
    try:
        parts = urlsplit(new_url)
    except ValueError:
        return new_url
    if parts.username != MASKED_CREDENTIALS:
        return new_url
    stored = urlsplit(stored_url)
    userinfo = stored.netloc.rpartition("@")[0] if "@" in stored.netloc else ""
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{userinfo}@{host}" if userinfo else host).geturl()


IMAGING_FIELDS = ("camera_masks", "camera_osd", "osd_overlay", "osd_position")


class Registry:
    def __init__(self, engine: Engine, box: SecretBox, clock: Clock) -> None:
        self._engine = engine
        self._box = box
        self._clock = clock

    def _now_us(self) -> int:
        return to_us(self._clock.now())

    # -- reading ---------------------------------------------------------------------------

    def _camera(self, row: CameraRow) -> CameraRecord:
        return CameraRecord(
            id=row.id,
            name=row.name,
            main_url=self._box.open(row.main_url_sealed),
            sub_url=self._box.open(row.sub_url_sealed) if row.sub_url_sealed else "",
            ptz_url=self._box.open(row.ptz_url_sealed) if row.ptz_url_sealed else "",
            transport=row.transport,
            model=row.model,
            generation=row.generation,
            ptz_driver=row.ptz_driver,
            lat=row.lat,
            lon=row.lon,
            view_direction_deg=row.view_direction_deg,
            groups=json.loads(row.groups_json),
            width=row.width,
            height=row.height,
            fps=row.fps,
            segment_duration_s=row.segment_duration_s,
            close_up=row.close_up,
            retention_days=row.retention_days,
            authorisation_ref=row.authorisation_ref or "",
            state=row.state,
            state_since_us=row.state_since_us,
            masks=json.loads(row.masks_json),
            updated_us=row.updated_us,
            camera_masks=row.camera_masks,
            camera_osd=row.camera_osd,
            osd_overlay=row.osd_overlay,
            osd_position=row.osd_position,
        )

    @staticmethod
    def _authorisation(row: AuthorisationRow) -> AuthorisationRecord:
        return AuthorisationRecord(
            reference=row.reference,
            decision_us=row.decision_us,
            expiry_us=row.expiry_us,
            purposes=json.loads(row.purposes_json),
            max_retention_days=row.max_retention_days,
            recipients=json.loads(row.recipients_json),
            perimeter_geojson=row.perimeter_geojson,
            seeded=row.seeded,
            warned_us=row.warned_us,
            expired_alarm_us=row.expired_alarm_us,
        )

    def cameras(self) -> list[CameraRecord]:
        with db.session(self._engine) as s:
            return [self._camera(r) for r in s.exec(select(CameraRow).order_by(CameraRow.id)).all()]

    def camera(self, camera_id: str) -> CameraRecord:
        with db.session(self._engine) as s:
            row = s.get(CameraRow, camera_id)
            if row is None:
                raise NotFound(f"unknown camera {camera_id!r}")
            return self._camera(row)

    def authorisations(self) -> list[AuthorisationRecord]:
        with db.session(self._engine) as s:
            rows = s.exec(select(AuthorisationRow).order_by(AuthorisationRow.reference)).all()
            return [self._authorisation(r) for r in rows]

    def authorisation(self, reference: str) -> AuthorisationRecord:
        with db.session(self._engine) as s:
            row = s.get(AuthorisationRow, reference)
            if row is None:
                raise NotFound(f"unknown authorisation {reference!r}")
            return self._authorisation(row)

    def cameras_of(self, reference: str) -> list[str]:
        with db.session(self._engine) as s:
            rows = s.exec(select(CameraRow.id).where(CameraRow.authorisation_ref == reference)).all()
            return sorted(rows)

    def is_empty(self) -> bool:
        with db.session(self._engine) as s:
            return (s.exec(select(func.count()).select_from(CameraRow)).one() or 0) == 0

    # -- camera rules ------------------------------------------------------------------------

    def _check_against(self, s: Session, spec: CameraInput, action: str) -> AuthorisationRow | None:
        """The rules between a camera and its authorisation; raises Invalid/Conflict."""
        if not spec.authorisation_ref:
            if spec.state == IN_SERVICE:
                raise Conflict(f"camera {spec.id} is in service: it needs a prefectoral authorisation")
            return None
        row = s.get(AuthorisationRow, spec.authorisation_ref)
        if row is None:
            raise Invalid(f"unknown authorisation {spec.authorisation_ref!r}")
        if spec.retention_days > row.max_retention_days:
            raise Invalid(
                f"retention of {spec.retention_days} days exceeds the {row.max_retention_days} days "
                f"authorisation {row.reference} allows"
            )
        if not auth.contains(row.perimeter_geojson, spec.lat, spec.lon):
            raise Conflict(
                f"{action} camera {spec.id} at ({spec.lat:.6f}, {spec.lon:.6f}) would place it outside the "
                f"perimeter of authorisation {row.reference}: a camera outside its authorised perimeter "
                "needs a new prefectoral authorisation"
            )
        return row

    def _write_camera(self, s: Session, row: CameraRow | None, spec: CameraInput, actor: str, masks: list) -> None:
        now = self._now_us()
        if row is None:
            row = CameraRow(
                id=spec.id,
                main_url_sealed="",
                state=spec.state,
                state_since_us=now,
                created_us=now,
                masks_json=json.dumps(masks),
                name="",
                transport="",
                model="",
                generation="",
                ptz_driver="",
                lat=0,
                lon=0,
                view_direction_deg=0,
                groups_json="[]",
                width=0,
                height=0,
                fps=0,
                segment_duration_s=0,
                close_up=False,
                retention_days=0,
                updated_us=now,
                updated_by=actor,
            )
        row.name = spec.name
        row.main_url_sealed = self._box.seal(spec.main_url)
        row.sub_url_sealed = self._box.seal(spec.sub_url) if spec.sub_url else None
        row.ptz_url_sealed = self._box.seal(spec.ptz_url) if spec.ptz_url else None
        for name in (
            "transport", "model", "generation", "ptz_driver", "lat", "lon", "view_direction_deg", "width",
            "height", "fps", "segment_duration_s", "close_up", "retention_days", "camera_masks", "camera_osd",
            "osd_overlay", "osd_position",
        ):  # fmt: skip
            setattr(row, name, getattr(spec, name))
        row.groups_json = json.dumps(spec.groups)
        row.authorisation_ref = spec.authorisation_ref or None
        row.updated_us, row.updated_by = now, actor
        s.add(row)

    def _merged(self, existing: CameraRecord, spec: CameraInput, clear_sub: bool = False) -> CameraInput:
        """The update as applied: empty URLs keep the stored ones, *** credentials are restored."""
        main = restore_credentials(spec.main_url, existing.main_url) if spec.main_url else existing.main_url
        sub = (
            ""
            if clear_sub
            else (restore_credentials(spec.sub_url, existing.sub_url) if spec.sub_url else existing.sub_url)
        )
        ptz = restore_credentials(spec.ptz_url, existing.ptz_url) if spec.ptz_url else existing.ptz_url
        # An update that does not name the imaging settings (a CSV file, an older client) keeps them.
        kept = {k: getattr(existing, k) for k in IMAGING_FIELDS if k not in spec.model_fields_set}
        return spec.model_copy(
            update={"main_url": main, "sub_url": sub, "ptz_url": ptz, "state": existing.state, **kept}
        )

    def create_camera(self, spec: CameraInput, actor: str, masks: list | None = None) -> CameraRecord:
        if not spec.main_url:
            raise Invalid("main_url is required")
        if MASKED_CREDENTIALS + "@" in spec.main_url + spec.sub_url + spec.ptz_url:
            raise Invalid(f"camera {spec.id} is new: give its real credentials instead of ***")
        if spec.state not in STREAMING_STATES and spec.state != "maintenance":
            raise Invalid(f"a new camera starts in commissioning, in_service or maintenance, not {spec.state}")
        with db.session(self._engine) as s:
            if s.get(CameraRow, spec.id) is not None:
                raise Exists(f"camera {spec.id!r} already exists")
            self._check_in_service(s, spec)
            self._check_against(s, spec, "placing")
            self._write_camera(s, None, spec, actor, masks or [])
            s.commit()
        return self.camera(spec.id)

    def _check_in_service(self, s: Session, spec: CameraInput) -> None:
        if spec.state == IN_SERVICE and spec.authorisation_ref:
            row = s.get(AuthorisationRow, spec.authorisation_ref)
            if row is not None and not auth.in_force(row.decision_us, row.expiry_us, self._now_us()):
                raise Conflict(f"authorisation {row.reference} is not in force: the camera cannot be in service")

    def update_camera(self, spec: CameraInput, actor: str, clear_sub: bool = False) -> CameraRecord:
        existing = self.camera(spec.id)
        if existing.state == DECOMMISSIONED:
            raise Conflict(f"camera {spec.id} is decommissioned: it can no longer be changed")
        merged = self._merged(existing, spec, clear_sub)
        with db.session(self._engine) as s:
            row = s.get(CameraRow, spec.id)
            assert row is not None
            self._check_against(
                s, merged, "moving" if (merged.lat, merged.lon) != (existing.lat, existing.lon) else "keeping"
            )
            self._write_camera(s, row, merged, actor, [])
            s.commit()
        return self.camera(spec.id)

    def set_state(self, camera_id: str, state: str, actor: str) -> CameraRecord:
        existing = self.camera(camera_id)
        if problem := transition_problem(existing.state, state):
            raise Conflict(f"camera {camera_id}: {problem}")
        if state == IN_SERVICE:
            authorisation = self.authorisation(existing.authorisation_ref) if existing.authorisation_ref else None
            refusal = recording_refusal(replace(existing, state=IN_SERVICE), authorisation, self._now_us())
            if refusal:
                raise Conflict(f"camera {camera_id} cannot go into service: {refusal}")
        with db.session(self._engine) as s:
            row = s.get(CameraRow, camera_id)
            assert row is not None
            if row.state != state:
                row.state, row.state_since_us = state, self._now_us()
                row.updated_us, row.updated_by = self._now_us(), actor
                s.add(row)
                s.commit()
        return self.camera(camera_id)

    # -- bulk ------------------------------------------------------------------------------

    def apply_bulk(
        self, specs: list[tuple[int, CameraInput]], actor: str, dry_run: bool
    ) -> tuple[int, int, list[tuple[int, str]]]:
        """Create or update many cameras in one transaction: all of them, or none (errors by line)."""
        errors: list[tuple[int, str]] = []
        created = updated = 0
        existing = {c.id: c for c in self.cameras()}
        with db.session(self._engine) as s:
            for line, spec in specs:
                try:
                    if spec.id in existing:
                        current = existing[spec.id]
                        if current.state == DECOMMISSIONED:
                            raise Conflict(f"camera {spec.id} is decommissioned: it can no longer be changed")
                        target_state = spec.state
                        merged = self._merged(current, spec)
                        if problem := transition_problem(current.state, target_state):
                            raise Conflict(problem)
                        merged = merged.model_copy(update={"state": target_state})
                        self._check_in_service(s, merged)
                        self._check_against(
                            s, merged, "moving" if (merged.lat, merged.lon) != (current.lat, current.lon) else "keeping"
                        )
                        row = s.get(CameraRow, spec.id)
                        self._write_camera(s, row, merged, actor, [])
                        if row is not None and row.state != target_state:
                            row.state, row.state_since_us = target_state, self._now_us()
                        updated += 1
                    else:
                        if not spec.main_url:
                            raise Invalid("main_url is required for a new camera")
                        if MASKED_CREDENTIALS + "@" in spec.main_url + spec.sub_url + spec.ptz_url:
                            raise Invalid(f"camera {spec.id} is new: give its real credentials instead of ***")
                        self._check_in_service(s, spec)
                        self._check_against(s, spec, "placing")
                        self._write_camera(s, None, spec, actor, [])
                        created += 1
                except Refusal as exc:
                    errors.append((line, str(exc)))
            if errors or dry_run:
                s.rollback()
                return (0, 0, errors) if errors else (created, updated, [])
            s.commit()
        return created, updated, []

    # -- authorisations --------------------------------------------------------------------

    def put_authorisation(self, data: auth.AuthorisationInput, actor: str, seeded: bool = False) -> AuthorisationRecord:
        now = self._now_us()
        with db.session(self._engine) as s:
            row = s.get(AuthorisationRow, data.reference)
            cameras = s.exec(select(CameraRow).where(CameraRow.authorisation_ref == data.reference)).all()
            outside = [c.id for c in cameras if not auth.contains(data.perimeter_geojson, c.lat, c.lon)]
            if outside:
                raise Conflict(
                    f"the new perimeter of {data.reference} would leave camera(s) {', '.join(outside)} outside it: "
                    "move or re-authorise them first"
                )
            over = [c.id for c in cameras if c.retention_days > data.max_retention_days]
            if over:
                raise Conflict(
                    f"camera(s) {', '.join(over)} keep footage longer than {data.max_retention_days} days: "
                    "lower their retention first"
                )
            if row is None:
                row = AuthorisationRow(
                    reference=data.reference,
                    decision_us=0,
                    expiry_us=0,
                    purposes_json="[]",
                    max_retention_days=1,
                    recipients_json="[]",
                    perimeter_geojson="",
                    seeded=seeded,
                    created_us=now,
                    updated_us=now,
                    updated_by=actor,
                )
            if row.expiry_us != data.expiry_us:
                # A renewed (or corrected) expiry gets its own warning and alarm.
                row.warned_us = row.expired_alarm_us = None
            row.decision_us, row.expiry_us = data.decision_us, data.expiry_us
            row.purposes_json = json.dumps(data.purposes)
            row.recipients_json = json.dumps(data.recipients)
            row.max_retention_days = data.max_retention_days
            row.perimeter_geojson = data.perimeter_geojson
            row.updated_us, row.updated_by = now, actor
            s.add(row)
            s.commit()
        return self.authorisation(data.reference)

    def delete_authorisation(self, reference: str, actor: str) -> None:
        del actor  # the deletion is audited by the caller (gateway); the row leaves no trace here
        with db.session(self._engine) as s:
            row = s.get(AuthorisationRow, reference)
            if row is None:
                raise NotFound(f"unknown authorisation {reference!r}")
            users = s.exec(select(CameraRow.id).where(CameraRow.authorisation_ref == reference)).all()
            if users:
                raise Conflict(f"authorisation {reference} still covers camera(s) {', '.join(sorted(users))}")
            s.delete(row)
            s.commit()

    def mark_notice(self, reference: str, kind: str, at_us: int) -> bool:
        """Record that the warning/expiry alarm was raised; False if someone already did (once only)."""
        column = col(AuthorisationRow.warned_us) if kind == auth.EXPIRING else col(AuthorisationRow.expired_alarm_us)
        with self._engine.begin() as conn:
            result = conn.execute(
                AuthorisationRow.__table__.update()  # type: ignore[attr-defined]
                .where(col(AuthorisationRow.reference) == reference, column.is_(None))
                .values({column: at_us})
            )
            return result.rowcount == 1

    # -- PTZ presets and tours ------------------------------------------------------------

    def presets(self, camera_id: str) -> dict[str, tuple[float, float, float]]:
        with db.session(self._engine) as s:
            rows = s.exec(select(PresetRow).where(PresetRow.camera_id == camera_id).order_by(PresetRow.name)).all()
            return {r.name: (r.pan, r.tilt, r.zoom) for r in rows}

    def put_preset(self, camera_id: str, name: str, position: tuple[float, float, float], actor: str) -> None:
        self.camera(camera_id)
        with db.session(self._engine) as s:
            row = s.get(PresetRow, (camera_id, name)) or PresetRow(
                camera_id=camera_id, name=name, pan=0, tilt=0, zoom=0, updated_us=0, updated_by=actor
            )
            row.pan, row.tilt, row.zoom = position
            row.updated_us, row.updated_by = self._now_us(), actor
            s.add(row)
            s.commit()

    def delete_preset(self, camera_id: str, name: str) -> None:
        with db.session(self._engine) as s:
            row = s.get(PresetRow, (camera_id, name))
            if row is None:
                raise NotFound(f"camera {camera_id} has no preset {name!r}")
            used = [
                t.name
                for t in s.exec(select(TourRow).where(TourRow.camera_id == camera_id)).all()
                if any(step[0] == name for step in json.loads(t.steps_json))
            ]
            if used:
                raise Conflict(f"preset {name!r} is used by guard tour(s) {', '.join(used)}")
            s.delete(row)
            s.commit()

    def tours(self, camera_id: str) -> dict[str, list[tuple[str, float]]]:
        with db.session(self._engine) as s:
            rows = s.exec(select(TourRow).where(TourRow.camera_id == camera_id).order_by(TourRow.name)).all()
            return {r.name: [(p, float(d)) for p, d in json.loads(r.steps_json)] for r in rows}

    def put_tour(self, camera_id: str, name: str, steps: list[tuple[str, float]], actor: str) -> None:
        presets = self.presets(camera_id)
        missing = sorted({p for p, _ in steps if p not in presets})
        if missing:
            raise Invalid(f"guard tour {name!r} uses unknown preset(s) {', '.join(missing)}")
        with db.session(self._engine) as s:
            row = s.get(TourRow, (camera_id, name)) or TourRow(
                camera_id=camera_id, name=name, steps_json="[]", updated_us=0, updated_by=actor
            )
            row.steps_json = json.dumps([[p, d] for p, d in steps])
            row.updated_us, row.updated_by = self._now_us(), actor
            s.add(row)
            s.commit()

    def delete_tour(self, camera_id: str, name: str) -> None:
        with db.session(self._engine) as s:
            row = s.get(TourRow, (camera_id, name))
            if row is None:
                raise NotFound(f"camera {camera_id} has no guard tour {name!r}")
            s.delete(row)
            s.commit()

    # -- first start -------------------------------------------------------------------------

    def seed(self, catalogue: Catalogue, default_profile: tuple[int, int, float]) -> int:
        """Fill an empty registry from the catalogue file (or the demo cameras); the count seeded.

        Cameras without a position or authorisation are placed at a demonstration site under a
        demonstration authorisation (reference SEED-DEMO, flagged `seeded`), so `make run` and the
        tests record out of the box. It is not a prefectoral order: replace it before production.
        """
        if not self.is_empty():
            return 0
        now = self.clock_now()
        actor = "seed"
        for item in catalogue.authorisations:
            self.put_authorisation(
                auth.AuthorisationInput(
                    reference=item.reference,
                    decision_us=to_us(datetime.combine(item.decision, datetime.min.time(), UTC)),
                    expiry_us=to_us(datetime.combine(item.expiry, datetime.min.time(), UTC)),
                    purposes=item.purposes,
                    max_retention_days=item.max_retention_days,
                    recipients=item.recipients,
                    perimeter_geojson=json.dumps(item.perimeter),
                ),
                actor,
            )
        unplaced = [c for c in catalogue.cameras if c.position is None or c.authorisation is None]
        if unplaced:
            self.put_authorisation(
                auth.AuthorisationInput(
                    reference=SEED_REFERENCE,
                    decision_us=to_us(now - timedelta(days=1)),
                    expiry_us=to_us(auth.add_months(now, 12 * auth.MAX_YEARS - 1)),
                    purposes=["demonstration and tests (seeded on first start; not a prefectoral order)"],
                    max_retention_days=max(c.retention_days for c in unplaced),
                    recipients=["CSU"],
                    perimeter_geojson=json.dumps(SEED_PERIMETER),
                ),
                actor,
                seeded=True,
            )
        for n, camera in enumerate(catalogue.cameras):
            spec = _spec_from_catalogue(camera, n, default_profile)
            try:
                self.create_camera(spec, actor, [[list(p) for p in poly] for poly in camera.masks])
            except Exists:
                pass  # another replica seeded it at the same moment
        return len(catalogue.cameras)

    def clock_now(self) -> datetime:
        return self._clock.now()


SEED_REFERENCE = "SEED-DEMO"
# A demonstration site (a square of about 1.1 km around a point in Lyon); seeded cameras are
# spread inside it.
SEED_SITE = (45.7640, 4.8357)
SEED_PERIMETER = {
    "type": "Polygon",
    "coordinates": [[
        [SEED_SITE[1] - 0.007, SEED_SITE[0] - 0.005], [SEED_SITE[1] + 0.007, SEED_SITE[0] - 0.005],
        [SEED_SITE[1] + 0.007, SEED_SITE[0] + 0.005], [SEED_SITE[1] - 0.007, SEED_SITE[0] + 0.005],
        [SEED_SITE[1] - 0.007, SEED_SITE[0] - 0.005],
    ]],
}  # fmt: skip


def _spec_from_catalogue(camera: CameraConfig, index: int, default_profile: tuple[int, int, float]) -> CameraInput:
    placed = camera.position is not None and camera.authorisation is not None
    lat, lon = SEED_SITE[0] + 0.0002 * (index % 20), SEED_SITE[1] + 0.0003 * (index // 20 % 20)
    width, height, fps = default_profile
    profile = camera.profile
    try:
        return CameraInput(
            id=camera.id,
            name=camera.name,
            main_url=camera.source,
            sub_url=camera.sub_source or "",
            transport=camera.transport,
            model=camera.model,
            generation=camera.generation,
            ptz_driver=camera.ptz_driver,
            ptz_url=camera.ptz_url,
            lat=camera.position.lat if placed and camera.position else lat,
            lon=camera.position.lon if placed and camera.position else lon,
            view_direction_deg=camera.position.view_direction_deg if placed and camera.position else 0.0,
            groups=camera.groups,
            width=profile.width if profile else width,
            height=profile.height if profile else height,
            fps=profile.fps if profile else fps,
            close_up=profile.close_up if profile else False,
            retention_days=camera.retention_days,
            authorisation_ref=camera.authorisation if placed and camera.authorisation else SEED_REFERENCE,
            state=camera.state,
            camera_masks=camera.camera_masks,
            camera_osd=camera.camera_osd,
            osd_overlay=camera.osd_overlay,
            osd_position=camera.osd_position,
        )
    except ValidationError as exc:
        raise Invalid(f"catalogue camera {camera.id}: {first_error(exc)}") from exc
