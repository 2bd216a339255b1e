"""Each PTZ camera's calibration (its optics, fitted from reference points), and the calibration
each mask set was drawn under (none: a PTZ set is not projected, its frames are masked whole).

Revision ID: masking_0002
Revises: masking_0001
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "masking_0002"
down_revision = "masking_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "masking_ptz_calibrations",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("camera_id", sa.String(64), nullable=False, index=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("optics_json", sa.Text, nullable=False),
        sa.Column("points_json", sa.Text, nullable=False),
        sa.Column("rms_px", sa.Float, nullable=False),
        sa.Column("max_px", sa.Float, nullable=False),
        sa.Column("image_width", sa.Integer, nullable=False),
        sa.Column("image_height", sa.Integer, nullable=False),
        sa.Column("fitted", sa.String(200), nullable=False),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("camera_id", "version", name="uq_masking_ptz_calibrations_camera_version"),
    )
    # Existing sets were drawn under no calibration: PTZ ones among them now mask their camera whole.
    op.add_column("masking_mask_sets", sa.Column("calibration_version", sa.Integer, nullable=True))


def downgrade() -> None:
    op.drop_column("masking_mask_sets", "calibration_version")
    op.drop_table("masking_ptz_calibrations")
