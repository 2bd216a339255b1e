"""Mask governance in masking's database: versioned mask sets, four-eyes approval, PTZ cameras'
calibrations, statements, mask-error reports.

Rules (each broken rule raises a refusal, services/common/refusals.py, with a message for the user,
and changes nothing):
- A camera's mask sets are numbered 1, 2, 3...; a new set starts as a draft. Only drafts change.
- A draft is approved by someone other than its author (four-eyes). Approving supersedes the
  previously approved set in the same transaction, so a camera never has two approved sets.
- The first start imports the camera catalogue's masks as approved version 1 of each camera that
  has no set yet (authored and approved by "catalogue"), so existing deployments keep their masks.
- A camera is commissionable when it has an approved set or a supervisor's signed statement that
  no private area is in view.
- A PTZ camera's calibrations are numbered 1, 2, 3... and never change; a mask set records the one
  it was drawn or given under (its `calibration_version`), and is projected with that one only: a
  new calibration reaches the frames through a new set, approved by a second administrator like
  any mask change (four-eyes), never by itself.

Synchronous (SQLAlchemy); async callers use asyncio.to_thread.
"""

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from services.common import db
from services.common.clock import Clock, to_us
from services.common.optics import Optics
from services.common.refusals import Conflict, NotFound
from services.common.signing import verify
from services.masking.calibration import Fit, ReferencePoint
from services.masking.models import CalibrationRow, MaskErrorRow, MaskSetRow, StatementRow
from services.masking.planner import MaskSet

DRAFT, APPROVED, SUPERSEDED, DISCARDED = "draft", "approved", "superseded", "discarded"
OPEN, CLOSED = "open", "closed"
CATALOGUE = "catalogue"

Point = tuple[float, float]


@dataclass(frozen=True)
class CatalogueMasks:
    camera_id: str
    space: str
    polygons: list[list[Point]]


def version_label(version: int) -> str:
    return f"v{version}"


def polygons_of(row: MaskSetRow) -> list[dict]:
    """[{"points": [[x, y], ...], "label": str}, ...]"""
    return json.loads(row.polygons_json)


def mask_set_of(row: MaskSetRow, optics: Optics | None = None) -> MaskSet:
    """The set as the frame path applies it (with the optics of its calibration, if it has one)."""
    polygons = [[(float(x), float(y)) for x, y in p["points"]] for p in polygons_of(row)]
    return MaskSet(version_label(row.version), polygons, row.space, optics if row.space == "ptz" else None)


def optics_of(row: CalibrationRow) -> Optics:
    return Optics.from_dict(json.loads(row.optics_json))


def points_of(row: CalibrationRow) -> list[dict]:
    """[{"landmark", "pan", "tilt", "zoom", "x", "y", "residual_px"}, ...]"""
    return json.loads(row.points_json)


def _polygons_json(polygons: Sequence[Sequence[Point]], labels: Sequence[str] | None = None) -> str:
    labels = list(labels or [])
    return json.dumps(
        [
            {"points": [[x, y] for x, y in polygon], "label": labels[n] if n < len(labels) else ""}
            for n, polygon in enumerate(polygons)
        ]
    )


def statement_in_force(row: StatementRow | None, public_key_pem: str | None) -> bool:
    """Signed over its own bytes, by this deployment's key when masking knows it, not withdrawn."""
    if row is None or row.withdrawn_us is not None:
        return False
    if public_key_pem is not None and row.public_key_pem.strip() != public_key_pem.strip():
        return False
    return verify(row.public_key_pem, row.statement.encode(), row.signature)


class MaskStore:
    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.engine = engine
        self.clock = clock

    def _now(self) -> int:
        return to_us(self.clock.now())

    # -- reading -------------------------------------------------------------------------------

    def approved(self, camera_id: str) -> MaskSetRow | None:
        with db.session(self.engine) as s:
            return s.exec(
                select(MaskSetRow).where(MaskSetRow.camera_id == camera_id, MaskSetRow.status == APPROVED)
            ).first()

    def approved_for(self, camera_ids: Iterable[str]) -> dict[str, MaskSetRow]:
        ids = list(camera_ids)
        if not ids:
            return {}
        with db.session(self.engine) as s:
            rows = s.exec(
                select(MaskSetRow).where(col(MaskSetRow.camera_id).in_(ids), col(MaskSetRow.status) == APPROVED)
            ).all()
        return {r.camera_id: r for r in rows}

    def versions(self, camera_id: str) -> list[MaskSetRow]:
        with db.session(self.engine) as s:
            return list(
                s.exec(
                    select(MaskSetRow).where(col(MaskSetRow.camera_id) == camera_id).order_by(col(MaskSetRow.version))
                ).all()
            )

    def get(self, camera_id: str, version: int) -> MaskSetRow:
        """The version (0: the approved set)."""
        if version == 0:
            row = self.approved(camera_id)
            if row is None:
                raise NotFound(f"camera {camera_id!r} has no approved mask set")
            return row
        with db.session(self.engine) as s:
            row = s.exec(
                select(MaskSetRow).where(MaskSetRow.camera_id == camera_id, MaskSetRow.version == version)
            ).first()
        if row is None:
            raise NotFound(f"camera {camera_id!r} has no mask set version {version}")
        return row

    def mask_sets(self, rows: Iterable[MaskSetRow]) -> dict[str, MaskSet]:
        """Each row's set as the frame path applies it, with its calibration's optics (one query)."""
        rows = list(rows)
        wanted = {(r.camera_id, r.calibration_version) for r in rows if r.calibration_version is not None}
        optics: dict[tuple[str, int], Optics] = {}
        if wanted:
            with db.session(self.engine) as s:
                found = s.exec(
                    select(CalibrationRow).where(col(CalibrationRow.camera_id).in_({c for c, _ in wanted}))
                ).all()
            optics = {(c.camera_id, c.version): optics_of(c) for c in found if (c.camera_id, c.version) in wanted}
        return {r.camera_id: mask_set_of(r, optics.get((r.camera_id, r.calibration_version or 0))) for r in rows}

    # -- calibrations --------------------------------------------------------------------------

    def calibration(self, camera_id: str, version: int = 0) -> CalibrationRow | None:
        """The version (0: the latest), or None."""
        with db.session(self.engine) as s:
            query = select(CalibrationRow).where(CalibrationRow.camera_id == camera_id)
            if version:
                query = query.where(CalibrationRow.version == version)
            return s.exec(query.order_by(col(CalibrationRow.version).desc())).first()

    def save_calibration(
        self,
        camera_id: str,
        result: Fit,
        points: Sequence[ReferencePoint],
        width: int,
        height: int,
        actor: str,
        comment: str,
    ) -> CalibrationRow:
        """A new calibration numbered after the camera's last one."""
        rows = [
            {"landmark": p.landmark, "pan": p.pan, "tilt": p.tilt, "zoom": p.zoom, "x": p.x, "y": p.y,
             "residual_px": round(r, 3)}
            for p, r in zip(points, result.residuals_px, strict=True)
        ]  # fmt: skip
        for _ in range(5):  # two at once: the unique (camera, version) makes one retry
            with db.session(self.engine) as s:
                last = s.exec(
                    select(func.max(CalibrationRow.version)).where(CalibrationRow.camera_id == camera_id)
                ).one()
                row = CalibrationRow(
                    id=uuid.uuid4().hex,
                    camera_id=camera_id,
                    version=(last or 0) + 1,
                    optics_json=json.dumps(result.optics.as_dict()),
                    points_json=json.dumps(rows),
                    rms_px=result.rms_px,
                    max_px=result.max_px,
                    image_width=width,
                    image_height=height,
                    fitted=" ".join(result.fitted),
                    comment=comment,
                    author=actor,
                    created_us=self._now(),
                )
                s.add(row)
                try:
                    s.commit()
                except IntegrityError:
                    s.rollback()
                    continue
                return row
        raise Conflict("the calibration could not be numbered; try again")

    # -- changing ------------------------------------------------------------------------------

    def create(
        self,
        camera_id: str,
        space: str,
        polygons: Sequence[Sequence[Point]],
        actor: str,
        comment: str = "",
        labels: Sequence[str] | None = None,
        calibration_version: int | None = None,
    ) -> MaskSetRow:
        """A new draft numbered after the camera's last version."""
        for _ in range(5):  # two creations at once: the unique (camera, version) makes one retry
            with db.session(self.engine) as s:
                last = s.exec(select(func.max(MaskSetRow.version)).where(MaskSetRow.camera_id == camera_id)).one()
                row = MaskSetRow(
                    id=uuid.uuid4().hex,
                    camera_id=camera_id,
                    version=(last or 0) + 1,
                    status=DRAFT,
                    space=space,
                    polygons_json=_polygons_json(polygons, labels),
                    comment=comment,
                    author=actor,
                    created_us=self._now(),
                    calibration_version=calibration_version,
                )
                s.add(row)
                try:
                    s.commit()
                except IntegrityError:
                    s.rollback()
                    continue
                return row
        raise Conflict("the mask set could not be numbered; try again")

    def update_draft(
        self,
        camera_id: str,
        version: int,
        space: str,
        polygons: Sequence[Sequence[Point]],
        actor: str,
        comment: str | None = None,
        labels: Sequence[str] | None = None,
        calibration_version: int | None = None,
    ) -> MaskSetRow:
        with db.session(self.engine) as s:
            row = self._draft(s, camera_id, version)
            row.space = space
            row.polygons_json = _polygons_json(polygons, labels)
            row.calibration_version = calibration_version
            if comment is not None:
                row.comment = comment
            # Whoever last changed a draft is its author: they may not approve it either.
            row.author = actor
            s.add(row)
            s.commit()
            return row

    def discard(self, camera_id: str, version: int, actor: str) -> MaskSetRow:
        del actor  # recorded by the gateway's audit trail
        with db.session(self.engine) as s:
            row = self._draft(s, camera_id, version)
            row.status = DISCARDED
            s.add(row)
            s.commit()
            return row

    def approve(self, camera_id: str, version: int, actor: str) -> tuple[MaskSetRow, MaskSetRow | None]:
        """(the approved set, the set it superseded)."""
        with db.session(self.engine) as s:
            row = self._draft(s, camera_id, version)
            if row.author == actor:
                raise Conflict(
                    f"four-eyes rule: {actor} authored version {version}; another mask administrator "
                    "must approve it",
                )  # fmt: skip
            now = self._now()
            previous = s.exec(
                select(MaskSetRow).where(MaskSetRow.camera_id == camera_id, MaskSetRow.status == APPROVED)
            ).first()
            if previous is not None:
                previous.status = SUPERSEDED
                previous.superseded_us = now
                s.add(previous)
                s.flush()
            row.status, row.approver, row.approved_us = APPROVED, actor, now
            s.add(row)
            s.commit()
            return row, previous

    def _draft(self, s, camera_id: str, version: int) -> MaskSetRow:
        row = s.exec(select(MaskSetRow).where(MaskSetRow.camera_id == camera_id, MaskSetRow.version == version)).first()
        if row is None:
            raise NotFound(f"camera {camera_id!r} has no mask set version {version}")
        if row.status != DRAFT:
            raise Conflict(f"version {version} is {row.status}: only drafts can change")
        return row

    def import_catalogue(self, cameras: Iterable[CatalogueMasks]) -> int:
        """Approved version 1 for each catalogue camera that has no mask set yet; how many."""
        imported = 0
        for camera in cameras:
            with db.session(self.engine) as s:
                exists = s.exec(select(MaskSetRow.id).where(MaskSetRow.camera_id == camera.camera_id)).first()
                if exists is not None:
                    continue
                now = self._now()
                s.add(
                    MaskSetRow(
                        id=uuid.uuid4().hex,
                        camera_id=camera.camera_id,
                        version=1,
                        status=APPROVED,
                        space=camera.space,
                        polygons_json=_polygons_json(camera.polygons),
                        comment="imported from the camera catalogue",
                        author=CATALOGUE,
                        created_us=now,
                        approver=CATALOGUE,
                        approved_us=now,
                        origin=CATALOGUE,
                    )
                )
                try:
                    s.commit()
                    imported += 1
                except IntegrityError:
                    s.rollback()  # another replica imported it at the same moment
        return imported

    # -- commissioning -------------------------------------------------------------------------

    def record_statement(self, row: StatementRow) -> StatementRow:
        with db.session(self.engine) as s:
            s.add(row)
            s.commit()
            return row

    def statement(self, camera_id: str) -> StatementRow | None:
        """The camera's latest statement (withdrawn or not)."""
        with db.session(self.engine) as s:
            return s.exec(
                select(StatementRow)
                .where(col(StatementRow.camera_id) == camera_id)
                .order_by(col(StatementRow.signed_us).desc())
            ).first()

    def statements_for(self, camera_ids: Iterable[str]) -> dict[str, StatementRow]:
        """Each camera's latest statement (withdrawn or not)."""
        ids = list(camera_ids)
        if not ids:
            return {}
        with db.session(self.engine) as s:
            rows = s.exec(
                select(StatementRow).where(col(StatementRow.camera_id).in_(ids)).order_by(col(StatementRow.signed_us))
            ).all()
        return {r.camera_id: r for r in rows}

    def withdraw_statement(self, camera_id: str, actor: str) -> StatementRow:
        with db.session(self.engine) as s:
            row = s.exec(
                select(StatementRow)
                .where(col(StatementRow.camera_id) == camera_id)
                .order_by(col(StatementRow.signed_us).desc())
            ).first()
            if row is None or row.withdrawn_us is not None:
                raise NotFound(f"camera {camera_id!r} has no no-private-area statement in force")
            row.withdrawn_us, row.withdrawn_by = self._now(), actor
            s.add(row)
            s.commit()
            return row

    # -- mask-error reports --------------------------------------------------------------------

    def report(self, camera_id: str, reporter: str, description: str, snapshot_ref: str, version: str) -> MaskErrorRow:
        row = MaskErrorRow(
            id=uuid.uuid4().hex,
            camera_id=camera_id,
            reporter=reporter,
            description=description,
            snapshot_ref=snapshot_ref,
            mask_version=version,
            reported_us=self._now(),
            status=OPEN,
        )
        with db.session(self.engine) as s:
            s.add(row)
            s.commit()
        return row

    def reports(self, camera_id: str = "", status: str = "") -> list[MaskErrorRow]:
        query = select(MaskErrorRow)
        if camera_id:
            query = query.where(MaskErrorRow.camera_id == camera_id)
        if status:
            query = query.where(MaskErrorRow.status == status)
        with db.session(self.engine) as s:
            return list(s.exec(query.order_by(col(MaskErrorRow.reported_us))).all())

    def close_report(self, report_id: str, actor: str, resolution: str) -> MaskErrorRow:
        with db.session(self.engine) as s:
            row = s.get(MaskErrorRow, report_id)
            if row is None:
                raise NotFound(f"no mask-error report {report_id!r}")
            if row.status == CLOSED:
                raise Conflict(f"report {report_id} was already closed by {row.closed_by}")
            row.status, row.closed_by, row.closed_us, row.resolution = CLOSED, actor, self._now(), resolution
            s.add(row)
            s.commit()
            return row
