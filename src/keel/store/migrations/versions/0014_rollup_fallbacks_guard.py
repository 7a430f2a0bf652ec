"""The rollups count the answers served after a failed or skipped attempt (``fallbacks``:
a retry, a fallback, a deployment whose circuit was open) and the
traces a guardrail policy flagged or blocked (``guard_flagged``, ``guard_blocked``), so the
console and the measures read them without scanning traces. Rows rolled up before this
count zero for them; ``keel rollups rebuild --since ...`` recomputes a range from the traces.

Revision ID: 0014
Revises: 0013
Create Date: 2027-02-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

COLUMNS = ("fallbacks", "guard_flagged", "guard_blocked")


def upgrade() -> None:
    with op.batch_alter_table("rollups") as batch:
        for name in COLUMNS:
            batch.add_column(sa.Column(name, sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("rollups") as batch:
        for name in COLUMNS:
            batch.drop_column(name)
