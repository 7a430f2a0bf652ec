"""Initial schema: traces, trace payloads, API keys, meta.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "traces",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("start_time", sa.Float, nullable=False),
        sa.Column("end_time", sa.Float, nullable=False),
        sa.Column("endpoint", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(32)),
        sa.Column("team", sa.String(128)),
        sa.Column("feature", sa.String(128)),
        sa.Column("user", sa.String(256)),
        sa.Column("session", sa.String(256)),
        sa.Column("tags", sa.JSON),
        sa.Column("model_requested", sa.String(256)),
        sa.Column("model_served", sa.String(256)),
        sa.Column("provider", sa.String(128)),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("error_type", sa.String(64)),
        sa.Column("error_message", sa.Text),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("ttft_ms", sa.Float),
        sa.Column("stream", sa.Boolean, nullable=False),
        sa.Column("input_tokens", sa.Integer, nullable=False),
        sa.Column("output_tokens", sa.Integer, nullable=False),
        sa.Column("cached_tokens", sa.Integer, nullable=False),
        sa.Column("cache_write_tokens", sa.Integer, nullable=False),
        sa.Column("reasoning_tokens", sa.Integer, nullable=False),
        sa.Column("cost_usd", sa.Float, nullable=False),
    )
    op.create_index("ix_traces_start_time", "traces", ["start_time"])
    op.create_index("ix_traces_feature_time", "traces", ["feature", "start_time"])
    op.create_table(
        "trace_payloads",
        sa.Column("trace_id", sa.String(32), primary_key=True),
        sa.Column("request", sa.Text),
        sa.Column("response", sa.Text),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("name", sa.String(128)),
        sa.Column("team", sa.String(128), nullable=False),
        sa.Column("feature", sa.String(128)),
        sa.Column("feature_override", sa.Boolean, nullable=False),
        sa.Column("models", sa.JSON),
        sa.Column("salt", sa.String(64), nullable=False),
        sa.Column("secret_hash", sa.String(128), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("revoked_at", sa.Float),
        sa.Column("last_used_at", sa.Float),
    )
    op.create_table(
        "keel_meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("keel_meta")
    op.drop_table("api_keys")
    op.drop_table("trace_payloads")
    op.drop_index("ix_traces_feature_time", "traces")
    op.drop_index("ix_traces_start_time", "traces")
    op.drop_table("traces")
