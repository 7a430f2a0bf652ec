"""Eval runs, their per-case results, the result cache, regression events, schedule claims.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "eval_runs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("suite", sa.String(256), nullable=False),
        sa.Column("group_id", sa.String(32), nullable=False),
        sa.Column("role", sa.String(16)),
        sa.Column("target", sa.String(512), nullable=False),
        sa.Column("prompt_name", sa.String(128)),
        sa.Column("prompt_version", sa.Integer),
        sa.Column("model", sa.String(256)),
        sa.Column("dataset_name", sa.String(128), nullable=False),
        sa.Column("dataset_version", sa.Integer, nullable=False),
        sa.Column("config", sa.Text, nullable=False),
        sa.Column("git_commit", sa.String(64)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float),
        sa.Column("cases", sa.Integer, nullable=False, server_default="0"),
        sa.Column("executions", sa.Integer, nullable=False, server_default="0"),
        sa.Column("passed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("failed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("errored", sa.Integer, nullable=False, server_default="0"),
        sa.Column("cached", sa.Integer, nullable=False, server_default="0"),
        sa.Column("cost_usd", sa.Float, nullable=False, server_default="0"),
        sa.Column("input_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("output_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("latency_p50_ms", sa.Float),
        sa.Column("latency_p95_ms", sa.Float),
        sa.Column("latency_p99_ms", sa.Float),
        sa.Column("summary", sa.Text),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_eval_runs_suite", "eval_runs", ["suite", "started_at"])
    op.create_table(
        "eval_results",
        sa.Column("run_id", sa.String(32), primary_key=True),
        sa.Column("case_idx", sa.Integer, primary_key=True),
        sa.Column("repeat", sa.Integer, primary_key=True),
        sa.Column("case_id", sa.String(256), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("output", sa.Text),
        sa.Column("scores", sa.Text, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("cost_usd", sa.Float, nullable=False),
        sa.Column("input_tokens", sa.Integer, nullable=False),
        sa.Column("output_tokens", sa.Integer, nullable=False),
        sa.Column("cached", sa.Boolean, nullable=False),
        sa.Column("trace_id", sa.String(32)),
    )
    op.create_table(
        "eval_cache",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("reply", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "eval_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("suite", sa.String(256), nullable=False),
        sa.Column("run_id", sa.String(32)),
        sa.Column("detail", sa.Text),
    )
    op.create_index("ix_eval_events_at", "eval_events", ["at"])
    op.create_table(
        "eval_schedule_claims",
        sa.Column("suite", sa.String(256), primary_key=True),
        sa.Column("slot", sa.String(32), primary_key=True),
        sa.Column("claimed_at", sa.Float, nullable=False),
        sa.Column("claimed_by", sa.String(128)),
    )


def downgrade() -> None:
    op.drop_table("eval_schedule_claims")
    op.drop_index("ix_eval_events_at", "eval_events")
    op.drop_table("eval_events")
    op.drop_table("eval_cache")
    op.drop_table("eval_results")
    op.drop_index("ix_eval_runs_suite", "eval_runs")
    op.drop_table("eval_runs")
