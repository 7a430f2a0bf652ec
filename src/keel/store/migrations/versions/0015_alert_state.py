"""Alert and drift state: each rule's series with its track and latest evaluation, the
transitions, silences, notification groups, one claim per job and tick (so that of N
replicas one runs each tick), and the reports of scheduled drift checks.

Revision ID: 0015
Revises: 0014
Create Date: 2027-02-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_tracks",
        sa.Column("key", sa.String(512), primary_key=True),
        sa.Column("rule", sa.String(128), nullable=False),
        sa.Column("series", sa.JSON, nullable=False),
        sa.Column("phase", sa.String(16), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("track", sa.JSON, nullable=False),
        sa.Column("evaluation", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_alert_tracks_rule", "alert_tracks", ["rule"])
    op.create_table(
        "alert_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(512), nullable=False),
        sa.Column("rule", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("evaluation", sa.JSON, nullable=False),
    )
    op.create_index("ix_alert_events_at", "alert_events", ["at"])
    op.create_index("ix_alert_events_key_at", "alert_events", ["key", "at"])
    op.create_table(
        "alert_silences",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("matchers", sa.JSON, nullable=False),
        sa.Column("creator", sa.String(256), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("starts_at", sa.Float, nullable=False),
        sa.Column("ends_at", sa.Float, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("lifted_at", sa.Float),
        sa.Column("lifted_by", sa.String(256)),
    )
    op.create_index("ix_alert_silences_ends", "alert_silences", ["ends_at"])
    op.create_table(
        "alert_groups",
        sa.Column("group_key", sa.String(512), primary_key=True),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("alerts", sa.JSON, nullable=False),
        sa.Column("first_at", sa.Float, nullable=False),
        sa.Column("notified_at", sa.Float, nullable=False),
        sa.Column("resolved_at", sa.Float),
    )
    op.create_table(
        "schedule_ticks",
        sa.Column("job", sa.String(32), primary_key=True),
        sa.Column("tick", sa.Float, primary_key=True),
        sa.Column("claimed_by", sa.String(128), nullable=False),
        sa.Column("claimed_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float),
        sa.Column("series", sa.Integer),
        sa.Column("error", sa.Text),
    )
    op.create_table(
        "drift_reports",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("feature", sa.String(128), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("reference_since", sa.Float, nullable=False),
        sa.Column("reference_until", sa.Float, nullable=False),
        sa.Column("current_since", sa.Float, nullable=False),
        sa.Column("current_until", sa.Float, nullable=False),
        sa.Column("n_reference", sa.Integer, nullable=False),
        sa.Column("n_current", sa.Integer, nullable=False),
        sa.Column("drifted", sa.Boolean),
        sa.Column("auc", sa.Float),
        sa.Column("report", sa.JSON, nullable=False),
    )
    op.create_index("ix_drift_reports_feature_at", "drift_reports", ["feature", "at"])
    op.create_index("ix_drift_reports_at", "drift_reports", ["at"])


def downgrade() -> None:
    for name in ("drift_reports", "schedule_ticks", "alert_groups", "alert_silences",
                 "alert_events", "alert_tracks"):
        op.drop_table(name)
