"""Prompt registry: immutable versions, movable labels, an event log; prompt on traces.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "prompt_versions",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("message", sa.Text),
        sa.Column("author", sa.String(128)),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "prompt_labels",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("label", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("updated_by", sa.String(128)),
    )
    op.create_table(
        "prompt_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("label", sa.String(64)),
        sa.Column("from_version", sa.Integer),
        sa.Column("to_version", sa.Integer),
        sa.Column("actor", sa.String(128)),
        sa.Column("reason", sa.Text),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_index("ix_prompt_events_name", "prompt_events", ["name", "id"])
    with op.batch_alter_table("traces") as batch:
        batch.add_column(sa.Column("prompt_name", sa.String(128)))
        batch.add_column(sa.Column("prompt_version", sa.Integer))


def downgrade() -> None:
    with op.batch_alter_table("traces") as batch:
        batch.drop_column("prompt_version")
        batch.drop_column("prompt_name")
    op.drop_index("ix_prompt_events_name", "prompt_events")
    op.drop_table("prompt_events")
    op.drop_table("prompt_labels")
    op.drop_table("prompt_versions")
