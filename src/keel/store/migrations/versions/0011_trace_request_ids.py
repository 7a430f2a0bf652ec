"""Traces keep the request id they were answered under (``x-request-id``), indexed.

Revision ID: 0011
Revises: 0010
Create Date: 2027-01-15
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ADD COLUMN (nullable, no default): no table rewrite on either dialect
    op.add_column("traces", sa.Column("request_id", sa.String(128)))
    op.create_index("ix_traces_request_id", "traces", ["request_id"])


def downgrade() -> None:
    op.drop_index("ix_traces_request_id", "traces")
    with op.batch_alter_table("traces") as batch:
        batch.drop_column("request_id")
