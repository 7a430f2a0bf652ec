"""Guardrail policies on traces, policy versions, human review, and roles on keys.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ADD COLUMN: no table rewrite on either dialect, however many traces there are
    op.add_column("traces", sa.Column("policy", sa.String(128)))
    op.add_column("traces", sa.Column("policy_version", sa.String(16)))
    op.add_column("traces", sa.Column("guard_ms", sa.Float))
    op.add_column("traces", sa.Column("guard", sa.JSON))
    op.add_column("api_keys", sa.Column("role", sa.String(16)))
    op.create_table(
        "policy_versions",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("version", sa.String(16), primary_key=True),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("first_seen", sa.Float, nullable=False),
    )
    op.create_table(
        "reviews",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("trace_id", sa.String(32), nullable=False),
        sa.Column("key_id", sa.String(32)),
        sa.Column("team", sa.String(128)),
        sa.Column("feature", sa.String(128)),
        sa.Column("policy", sa.String(128)),
        sa.Column("policy_version", sa.String(16)),
        sa.Column("reasons", sa.JSON),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("request", sa.Text),
        sa.Column("content", sa.Text),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("approved", sa.Text),
        sa.Column("approved_hash", sa.String(64)),
        sa.Column("decided_by", sa.String(128)),
        sa.Column("decision_reason", sa.Text),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("decided_at", sa.Float),
        sa.Column("released_at", sa.Float),
    )
    op.create_index("ix_reviews_status_created", "reviews", ["status", "created_at"])
    op.create_index("ix_reviews_trace", "reviews", ["trace_id"])


def downgrade() -> None:
    op.drop_index("ix_reviews_trace", "reviews")
    op.drop_index("ix_reviews_status_created", "reviews")
    op.drop_table("reviews")
    op.drop_table("policy_versions")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("role")
    with op.batch_alter_table("traces") as batch:
        batch.drop_column("guard")
        batch.drop_column("guard_ms")
        batch.drop_column("policy_version")
        batch.drop_column("policy")
