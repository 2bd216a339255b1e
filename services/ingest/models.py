"""The camera registry's tables: cameras, prefectoral authorisations, PTZ presets and guard tours.

Times are integer microseconds since the epoch, UTC. Stream and PTZ URLs carry credentials, so
they are stored sealed (services.common.secretbox) and only ingest ever opens them. Lists
(groups, purposes, recipients, masks, tour steps) are JSON text, identical on SQLite and PostgreSQL.
Design: docs/design/schema.md
"""

from sqlalchemy import BigInteger, Column, Text
from sqlmodel import Field, SQLModel


class AuthorisationRow(SQLModel, table=True):
    __tablename__ = "ingest_authorisations"

    reference: str = Field(primary_key=True, max_length=64)
    decision_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    expiry_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    purposes_json: str = Field(sa_column=Column(Text, nullable=False))
    max_retention_days: int
    recipients_json: str = Field(sa_column=Column(Text, nullable=False))
    perimeter_geojson: str = Field(sa_column=Column(Text, nullable=False))
    # Created by the first start from a catalogue without authorisations (demo, tests).
    seeded: bool = False
    # When the 4-month warning and the expiry alarm were raised (once each, across replicas).
    warned_us: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    expired_alarm_us: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    created_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    updated_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    updated_by: str = Field(max_length=200)


class CameraRow(SQLModel, table=True):
    __tablename__ = "ingest_cameras"

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    main_url_sealed: str = Field(sa_column=Column(Text, nullable=False))
    sub_url_sealed: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    ptz_url_sealed: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    transport: str = Field(max_length=8)
    model: str = Field(max_length=100)
    generation: str = Field(max_length=50)
    ptz_driver: str = Field(max_length=16)
    lat: float
    lon: float
    view_direction_deg: float
    groups_json: str = Field(sa_column=Column(Text, nullable=False))
    width: int
    height: int
    fps: float
    segment_duration_s: float
    close_up: bool
    retention_days: int
    authorisation_ref: str | None = Field(default=None, max_length=64)
    state: str = Field(max_length=16)
    state_since_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    masks_json: str = Field(sa_column=Column(Text, nullable=False))
    created_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    updated_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    updated_by: str = Field(max_length=200)
    # Ways through masking and the overlay (proto CameraImaging).
    camera_masks: bool = False
    camera_osd: bool = False
    osd_overlay: bool = True
    osd_position: str = Field(default="top-left", max_length=16)


class PresetRow(SQLModel, table=True):
    __tablename__ = "ingest_ptz_presets"

    camera_id: str = Field(primary_key=True, max_length=64)
    name: str = Field(primary_key=True, max_length=64)
    pan: float
    tilt: float
    zoom: float
    updated_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    updated_by: str = Field(max_length=200)


class TourRow(SQLModel, table=True):
    __tablename__ = "ingest_ptz_tours"

    camera_id: str = Field(primary_key=True, max_length=64)
    name: str = Field(primary_key=True, max_length=64)
    steps_json: str = Field(sa_column=Column(Text, nullable=False))
    updated_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    updated_by: str = Field(max_length=200)
