"""Tables (SQLAlchemy Core). One schema for SQLite and PostgreSQL; alembic owns changes.

Traces keep numbers and labels in ``traces``; large texts (request and response
bodies) live in ``trace_payloads`` so aggregates never scan them. Times are stored as
UTC epoch seconds (float): sortable, dialect-neutral and cheap to bucket.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

traces = sa.Table(
    "traces",
    metadata,
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
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("error_type", sa.String(64)),
    sa.Column("error_message", sa.Text),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("ttft_ms", sa.Float),
    sa.Column("stream", sa.Boolean, nullable=False, default=False),
    sa.Column("input_tokens", sa.Integer, nullable=False, default=0),
    sa.Column("output_tokens", sa.Integer, nullable=False, default=0),
    sa.Column("cached_tokens", sa.Integer, nullable=False, default=0),
    sa.Column("cache_write_tokens", sa.Integer, nullable=False, default=0),
    sa.Column("reasoning_tokens", sa.Integer, nullable=False, default=0),
    sa.Column("cost_usd", sa.Float, nullable=False, default=0.0),
    # 0002: routing and cache
    sa.Column("route", sa.String(128)),
    sa.Column("variant", sa.String(256)),
    sa.Column("attempt_log", sa.JSON),
    sa.Column("cache_hit", sa.Boolean, nullable=False, default=False),
    sa.Column("cost_saved_usd", sa.Float, nullable=False, default=0.0),
    # 0003: prompts
    sa.Column("prompt_name", sa.String(128)),
    sa.Column("prompt_version", sa.Integer),
    sa.Index("ix_traces_start_time", "start_time"),
    sa.Index("ix_traces_feature_time", "feature", "start_time"),
)

trace_payloads = sa.Table(
    "trace_payloads",
    metadata,
    sa.Column("trace_id", sa.String(32), primary_key=True),
    sa.Column("request", sa.Text),
    sa.Column("response", sa.Text),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(16), primary_key=True),
    sa.Column("name", sa.String(128)),
    sa.Column("team", sa.String(128), nullable=False),
    sa.Column("feature", sa.String(128)),
    sa.Column("feature_override", sa.Boolean, nullable=False, default=False),
    sa.Column("models", sa.JSON),
    sa.Column("salt", sa.String(64), nullable=False),
    sa.Column("secret_hash", sa.String(128), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("revoked_at", sa.Float),
    sa.Column("last_used_at", sa.Float),
)

prompt_versions = sa.Table(
    "prompt_versions",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("spec", sa.Text, nullable=False),  # JSON: messages, model, params, tools...
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("message", sa.Text),
    sa.Column("author", sa.String(128)),
    sa.Column("created_at", sa.Float, nullable=False),
)

prompt_labels = sa.Table(
    "prompt_labels",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("label", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("updated_by", sa.String(128)),
)

prompt_events = sa.Table(
    "prompt_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),  # push | label | rollback
    sa.Column("label", sa.String(64)),
    sa.Column("from_version", sa.Integer),
    sa.Column("to_version", sa.Integer),
    sa.Column("actor", sa.String(128)),
    sa.Column("reason", sa.Text),
    sa.Column("at", sa.Float, nullable=False),
    sa.Index("ix_prompt_events_name", "name", "id"),
)

dataset_versions = sa.Table(
    "dataset_versions",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("cases", sa.Integer, nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("source", sa.Text),
    sa.Column("message", sa.Text),
    sa.Column("created_at", sa.Float, nullable=False),
)

dataset_cases = sa.Table(
    "dataset_cases",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("idx", sa.Integer, primary_key=True),
    sa.Column("data", sa.Text, nullable=False),  # JSON: vars, messages, expected, context...
)

eval_runs = sa.Table(
    "eval_runs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("suite", sa.String(256), nullable=False),
    sa.Column("group_id", sa.String(32), nullable=False),  # runs started together (a gate)
    sa.Column("role", sa.String(16)),  # candidate | baseline | None
    sa.Column("target", sa.String(512), nullable=False),
    sa.Column("prompt_name", sa.String(128)),
    sa.Column("prompt_version", sa.Integer),
    sa.Column("model", sa.String(256)),
    sa.Column("dataset_name", sa.String(128), nullable=False),
    sa.Column("dataset_version", sa.Integer, nullable=False),
    sa.Column("config", sa.Text, nullable=False),  # JSON: scorers, repeats, thresholds...
    sa.Column("git_commit", sa.String(64)),
    sa.Column("status", sa.String(16), nullable=False),  # running | done | failed
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
    sa.Column("summary", sa.Text),  # JSON: per-scorer results, flakiness, threshold verdict
    sa.Column("error", sa.Text),
    sa.Index("ix_eval_runs_suite", "suite", "started_at"),
)

eval_results = sa.Table(
    "eval_results",
    metadata,
    sa.Column("run_id", sa.String(32), primary_key=True),
    sa.Column("case_idx", sa.Integer, primary_key=True),
    sa.Column("repeat", sa.Integer, primary_key=True),
    sa.Column("case_id", sa.String(256), nullable=False),
    sa.Column("status", sa.String(12), nullable=False),  # passed | failed | errored
    sa.Column("output", sa.Text),
    sa.Column("scores", sa.Text, nullable=False),  # JSON list of {name, value, passed, ...}
    sa.Column("error", sa.Text),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("cost_usd", sa.Float, nullable=False),
    sa.Column("input_tokens", sa.Integer, nullable=False),
    sa.Column("output_tokens", sa.Integer, nullable=False),
    sa.Column("cached", sa.Boolean, nullable=False),
    sa.Column("trace_id", sa.String(32)),
)

eval_cache = sa.Table(
    "eval_cache",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),  # sha256 of model, input, params
    sa.Column("reply", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

eval_events = sa.Table(
    "eval_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),  # regression | error
    sa.Column("suite", sa.String(256), nullable=False),
    sa.Column("run_id", sa.String(32)),
    sa.Column("detail", sa.Text),
    sa.Index("ix_eval_events_at", "at"),
)

eval_schedule_claims = sa.Table(
    "eval_schedule_claims",
    metadata,
    sa.Column("suite", sa.String(256), primary_key=True),
    sa.Column("slot", sa.String(32), primary_key=True),  # e.g. the UTC date of a daily run
    sa.Column("claimed_at", sa.Float, nullable=False),
    sa.Column("claimed_by", sa.String(128)),
)

meta = sa.Table(
    "keel_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
