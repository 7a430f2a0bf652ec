"""Role keys are team-scoped or org-wide: ``api_keys.org_wide``, true for the role keys
stored before (they read every team's data, and keep doing so).

Revision ID: 0012
Revises: 0011
Create Date: 2027-01-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ADD COLUMN (nullable, no default): no table rewrite on either dialect; gateway
    # keys (no role) keep NULL
    op.add_column("api_keys", sa.Column("org_wide", sa.Boolean))
    keys = sa.table("api_keys", sa.column("role", sa.String), sa.column("org_wide", sa.Boolean))
    op.execute(keys.update().where(keys.c.role.is_not(None)).values(org_wide=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("org_wide")
