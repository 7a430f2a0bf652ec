"""Per-feature kill switches: a stopped feature's requests are refused until started.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-15
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feature_switches",
        sa.Column("feature", sa.String(128), primary_key=True),
        sa.Column("stopped", sa.Boolean, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("actor", sa.String(128)),
        sa.Column("at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("feature_switches")
