"""Routing and cache facts on traces: route, variant, attempt log, cache hit, cost saved.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("traces") as batch:
        batch.add_column(sa.Column("route", sa.String(128)))
        batch.add_column(sa.Column("variant", sa.String(256)))
        batch.add_column(sa.Column("attempt_log", sa.JSON))
        batch.add_column(sa.Column("cache_hit", sa.Boolean, nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column("cost_saved_usd", sa.Float, nullable=False,
                                   server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("traces") as batch:
        for name in ("cost_saved_usd", "cache_hit", "attempt_log", "variant", "route"):
            batch.drop_column(name)
