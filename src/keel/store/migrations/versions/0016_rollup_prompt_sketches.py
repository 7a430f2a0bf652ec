"""A coarser sketch level: the latency and time-to-first-token sketches per (granularity,
bucket, feature, prompt) of the hour and day buckets, added up over teams and models, for
the views that filter and group by feature and prompt only (keel.store.rollups). Filled
from ``rollup_sketches``, so a store keeps its history; from here on the trace writer and
``rebuild`` keep both.

Revision ID: 0016
Revises: 0015
Create Date: 2027-03-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rollup_prompt_sketches",
        # the key leads with (granularity, metric, bucket): one metric's window is one range
        sa.Column("granularity", sa.String(1), primary_key=True),
        sa.Column("metric", sa.String(8), primary_key=True),
        sa.Column("bucket", sa.Float, primary_key=True),
        sa.Column("feature", sa.String(128), primary_key=True),
        sa.Column("prompt", sa.String(160), primary_key=True),
        sa.Column("idx", sa.Integer, primary_key=True),
        sa.Column("count", sa.Integer, nullable=False, server_default="0"),
        sqlite_with_rowid=False,  # SQLite: rows in key order, a window one range
    )
    op.execute(
        "INSERT INTO rollup_prompt_sketches "
        "(granularity, bucket, feature, prompt, metric, idx, count) "
        "SELECT granularity, bucket, feature, prompt, metric, idx, SUM(count) "
        "FROM rollup_sketches WHERE granularity IN ('h', 'd') "
        "GROUP BY granularity, bucket, feature, prompt, metric, idx")


def downgrade() -> None:
    op.drop_table("rollup_prompt_sketches")
