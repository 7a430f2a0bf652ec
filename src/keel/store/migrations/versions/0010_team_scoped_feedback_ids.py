"""Feedback and outcome ids are scoped per team: the primary key becomes (team, id).

A client's id is its own idempotency key: another team sending the same id gets a record of
its own instead of a conflict with (and a view of) the first team's. ``team`` becomes NOT
NULL; an outcome recorded without a team (by the admin key) is stored under ``''``.

Revision ID: 0010
Revises: 0009
Create Date: 2027-01-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TABLES = ("feedback", "outcomes")


def _shape(table: str) -> sa.Table:
    """The table as 0009 left it, with no primary key: what SQLite copies from."""
    md = sa.MetaData()
    if table == "feedback":
        return sa.Table(
            "feedback", md,
            sa.Column("id", sa.String(64), nullable=False),
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
            sa.Index("ix_feedback_trace", "trace_id"),
            sa.Index("ix_feedback_time", "trace_time"),
        )
    return sa.Table(
        "outcomes", md,
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("feature", sa.String(128), nullable=False),
        sa.Column("team", sa.String(128)),
        sa.Column("trace_ids", sa.JSON),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("key_id", sa.String(32)),
        sa.Index("ix_outcomes_feature_time", "feature", "at"),
    )


def _primary_key(table: str, columns: list[str]) -> None:
    team_nullable = "team" not in columns
    if op.get_bind().dialect.name == "postgresql":
        # in place: the rows stay, the index is rebuilt once
        op.drop_constraint(f"{table}_pkey", table, type_="primary")
        op.alter_column(table, "team", existing_type=sa.String(128), nullable=team_nullable)
        op.create_primary_key(f"{table}_pkey", table, columns)
        return
    # SQLite cannot alter a primary key: the rows are copied into a table of the new shape
    with op.batch_alter_table(table, copy_from=_shape(table), recreate="always") as batch:
        batch.alter_column("team", existing_type=sa.String(128), nullable=team_nullable)
        batch.create_primary_key(f"pk_{table}", columns)


def upgrade() -> None:
    for table in TABLES:
        op.execute(sa.text(f"UPDATE {table} SET team = '' WHERE team IS NULL"))
        _primary_key(table, ["team", "id"])


def downgrade() -> None:
    # fails when two teams used the same id since the upgrade (their rows would collide)
    for table in TABLES:
        _primary_key(table, ["id"])
        op.execute(sa.text(f"UPDATE {table} SET team = NULL WHERE team = ''"))
