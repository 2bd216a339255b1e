"""The camera registry: cameras, prefectoral authorisations, PTZ presets and guard tours.

Revision ID: ingest_0001
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "ingest_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ingest_authorisations",
        sa.Column("reference", sa.String(64), primary_key=True),
        sa.Column("decision_us", sa.BigInteger, nullable=False),
        sa.Column("expiry_us", sa.BigInteger, nullable=False),
        sa.Column("purposes_json", sa.Text, nullable=False),
        sa.Column("max_retention_days", sa.Integer, nullable=False),
        sa.Column("recipients_json", sa.Text, nullable=False),
        sa.Column("perimeter_geojson", sa.Text, nullable=False),
        sa.Column("seeded", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("warned_us", sa.BigInteger, nullable=True),
        sa.Column("expired_alarm_us", sa.BigInteger, nullable=True),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("updated_us", sa.BigInteger, nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
    )
    op.create_table(
        "ingest_cameras",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("main_url_sealed", sa.Text, nullable=False),
        sa.Column("sub_url_sealed", sa.Text, nullable=True),
        sa.Column("ptz_url_sealed", sa.Text, nullable=True),
        sa.Column("transport", sa.String(8), nullable=False),
        sa.Column("model", sa.String(100), nullable=False),
        sa.Column("generation", sa.String(50), nullable=False),
        sa.Column("ptz_driver", sa.String(16), nullable=False),
        sa.Column("lat", sa.Float, nullable=False),
        sa.Column("lon", sa.Float, nullable=False),
        sa.Column("view_direction_deg", sa.Float, nullable=False),
        sa.Column("groups_json", sa.Text, nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("fps", sa.Float, nullable=False),
        sa.Column("segment_duration_s", sa.Float, nullable=False),
        sa.Column("close_up", sa.Boolean, nullable=False),
        sa.Column("retention_days", sa.Integer, nullable=False),
        sa.Column("authorisation_ref", sa.String(64), sa.ForeignKey("ingest_authorisations.reference"), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("state_since_us", sa.BigInteger, nullable=False),
        sa.Column("masks_json", sa.Text, nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("updated_us", sa.BigInteger, nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
    )
    op.create_index("ix_ingest_cameras_authorisation", "ingest_cameras", ["authorisation_ref"])
    for table, columns in (
        (
            "ingest_ptz_presets",
            [
                sa.Column("pan", sa.Float, nullable=False),
                sa.Column("tilt", sa.Float, nullable=False),
                sa.Column("zoom", sa.Float, nullable=False),
            ],
        ),
        ("ingest_ptz_tours", [sa.Column("steps_json", sa.Text, nullable=False)]),
    ):
        op.create_table(
            table,
            sa.Column("camera_id", sa.String(64), sa.ForeignKey("ingest_cameras.id"), primary_key=True),
            sa.Column("name", sa.String(64), primary_key=True),
            *columns,
            sa.Column("updated_us", sa.BigInteger, nullable=False),
            sa.Column("updated_by", sa.String(200), nullable=False),
        )


def downgrade() -> None:
    op.drop_table("ingest_ptz_tours")
    op.drop_table("ingest_ptz_presets")
    op.drop_index("ix_ingest_cameras_authorisation", "ingest_cameras")
    op.drop_table("ingest_cameras")
    op.drop_table("ingest_authorisations")
