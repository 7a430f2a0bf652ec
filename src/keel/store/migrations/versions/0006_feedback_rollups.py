"""Feedback, business outcomes, rollups (with mergeable latency sketches), cost events,
trace source, scoped keys.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _key_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("granularity", sa.String(1), primary_key=True),  # m | h | d
        sa.Column("bucket", sa.Float, primary_key=True),  # bucket start, epoch seconds
        sa.Column("feature", sa.String(128), primary_key=True),
        sa.Column("team", sa.String(128), primary_key=True),
        sa.Column("model", sa.String(256), primary_key=True),
        sa.Column("prompt", sa.String(160), primary_key=True),  # name@version or ''
    ]


def upgrade() -> None:
    op.add_column("traces", sa.Column("source", sa.String(16)))
    op.add_column("api_keys", sa.Column("scope", sa.String(16)))
    op.add_column("api_keys", sa.Column("origins", sa.JSON))
    op.create_table(
        "feedback",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("trace_id", sa.String(32), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("trace_time", sa.Float, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("thumbs", sa.Integer),
        sa.Column("outcome", sa.String(16)),
        sa.Column("edit_distance", sa.Integer),
        sa.Column("rework", sa.Float),
        sa.Column("corrected_text", sa.Text),
        sa.Column("score_name", sa.String(64)),
        sa.Column("score", sa.Float),
        sa.Column("critical_error", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("critical_category", sa.String(64)),
        sa.Column("comment", sa.Text),
        sa.Column("key_id", sa.String(32)),
        sa.Column("feature", sa.String(128)),
        sa.Column("team", sa.String(128)),
        sa.Column("model", sa.String(256)),
        sa.Column("prompt", sa.String(160)),
    )
    op.create_index("ix_feedback_trace", "feedback", ["trace_id"])
    op.create_index("ix_feedback_time", "feedback", ["trace_time"])
    op.create_table(
        "outcomes",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("feature", sa.String(128), nullable=False),
        sa.Column("team", sa.String(128)),
        sa.Column("trace_ids", sa.JSON),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("key_id", sa.String(32)),
    )
    op.create_index("ix_outcomes_feature_time", "outcomes", ["feature", "at"])
    op.create_table(
        "rollups",
        *_key_columns(),
        sa.Column("requests", sa.Integer, nullable=False, server_default="0"),
        sa.Column("errors", sa.Integer, nullable=False, server_default="0"),
        sa.Column("input_tokens", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("output_tokens", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("cached_tokens", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("reasoning_tokens", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("cost_usd", sa.Float, nullable=False, server_default="0"),
        sa.Column("cache_hits", sa.Integer, nullable=False, server_default="0"),
        sa.Column("cost_saved_usd", sa.Float, nullable=False, server_default="0"),
        sa.Column("latency_ms_sum", sa.Float, nullable=False, server_default="0"),
        sa.Column("feedback", sa.Integer, nullable=False, server_default="0"),
        sa.Column("thumbs_up", sa.Integer, nullable=False, server_default="0"),
        sa.Column("thumbs_down", sa.Integer, nullable=False, server_default="0"),
        sa.Column("accepted", sa.Integer, nullable=False, server_default="0"),
        sa.Column("edited", sa.Integer, nullable=False, server_default="0"),
        sa.Column("rejected", sa.Integer, nullable=False, server_default="0"),
        sa.Column("escalated", sa.Integer, nullable=False, server_default="0"),
        sa.Column("rework_sum", sa.Float, nullable=False, server_default="0"),
        sa.Column("rework_n", sa.Integer, nullable=False, server_default="0"),
        sa.Column("critical_errors", sa.Integer, nullable=False, server_default="0"),
        )
    op.create_index("ix_rollups_window", "rollups", ["granularity", "bucket"])
    op.create_table(
        "rollup_errors",
        *_key_columns(),
        sa.Column("error_type", sa.String(64), primary_key=True),
        sa.Column("count", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_table(
        "rollup_sketches",
        *_key_columns(),
        sa.Column("metric", sa.String(8), primary_key=True),  # latency | ttft
        sa.Column("idx", sa.Integer, primary_key=True),  # log-bucket index (keel/sketch.py)
        sa.Column("count", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index("ix_rollup_sketches_window", "rollup_sketches", ["granularity", "bucket"])
    op.create_table(
        "rollup_outcomes",
        sa.Column("granularity", sa.String(1), primary_key=True),
        sa.Column("bucket", sa.Float, primary_key=True),
        sa.Column("feature", sa.String(128), primary_key=True),
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("events", sa.Integer, nullable=False, server_default="0"),
        sa.Column("value", sa.Float, nullable=False, server_default="0"),
    )
    op.create_table(
        "cost_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("action", sa.String(32), nullable=False),  # reprice
        sa.Column("model", sa.String(256)),
        sa.Column("since", sa.Float),
        sa.Column("until", sa.Float),
        sa.Column("traces", sa.Integer),
        sa.Column("cost_before_usd", sa.Float),
        sa.Column("cost_after_usd", sa.Float),
        sa.Column("actor", sa.String(128)),
        sa.Column("detail", sa.Text),
    )


def downgrade() -> None:
    op.drop_table("cost_events")
    op.drop_table("rollup_outcomes")
    op.drop_index("ix_rollup_sketches_window", "rollup_sketches")
    op.drop_table("rollup_sketches")
    op.drop_table("rollup_errors")
    op.drop_index("ix_rollups_window", "rollups")
    op.drop_table("rollups")
    op.drop_index("ix_outcomes_feature_time", "outcomes")
    op.drop_table("outcomes")
    op.drop_index("ix_feedback_time", "feedback")
    op.drop_index("ix_feedback_trace", "feedback")
    op.drop_table("feedback")
    op.drop_column("api_keys", "origins")
    op.drop_column("api_keys", "scope")
    op.drop_column("traces", "source")
