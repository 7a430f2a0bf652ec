"""Traces are indexed by cost, so the most expensive requests of a window are found by
reading the index from the top (``keel.store.traces.costliest``) rather than every trace
of the window.

Revision ID: 0013
Revises: 0012
Create Date: 2027-02-05
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_traces_cost", "traces", ["cost_usd"])


def downgrade() -> None:
    op.drop_index("ix_traces_cost", "traces")
