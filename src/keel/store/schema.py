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
    # 0006: where the trace came from: None (the gateway) | otlp
    sa.Column("source", sa.String(16)),
    # 0009: the guardrail policy that governed the request (name and content-hash version),
    # the time spent in its scanners, and what they found (spans and actions, never text)
    sa.Column("policy", sa.String(128)),
    sa.Column("policy_version", sa.String(16)),
    sa.Column("guard_ms", sa.Float),
    sa.Column("guard", sa.JSON),
    # 0011: the request id the answer carried (x-request-id: the client's, or keel's own),
    # indexed so a trace is found by the id a client logged
    sa.Column("request_id", sa.String(128)),
    sa.Index("ix_traces_start_time", "start_time"),
    sa.Index("ix_traces_feature_time", "feature", "start_time"),
    sa.Index("ix_traces_request_id", "request_id"),
    # 0013: the most expensive traces are read down this index (store.traces.costliest)
    sa.Index("ix_traces_cost", "cost_usd"),
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
    # 0006: None (the gateway) | feedback (may only write feedback; browser-safe)
    sa.Column("scope", sa.String(16)),
    sa.Column("origins", sa.JSON),  # browser origins allowed to use a feedback key
    # 0009: the key's role on the admin API (None: a gateway key, no /api access)
    sa.Column("role", sa.String(16)),
    # 0012: a role key's reach: true, every team's data; false, its own team's (None: a
    # gateway key). Role keys stored before 0012 are true: they keep what they could see
    sa.Column("org_wide", sa.Boolean),
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


def _rollup_key() -> list[sa.Column[object]]:
    return [
        sa.Column("granularity", sa.String(1), primary_key=True),  # m | h | d
        sa.Column("bucket", sa.Float, primary_key=True),  # bucket start, epoch seconds
        sa.Column("feature", sa.String(128), primary_key=True),
        sa.Column("team", sa.String(128), primary_key=True),
        sa.Column("model", sa.String(256), primary_key=True),
        sa.Column("prompt", sa.String(160), primary_key=True),  # name@version or ''
    ]


feedback = sa.Table(
    "feedback",
    metadata,
    # 0010: ids are per team (the trace's): the client's id, or generated
    sa.Column("team", sa.String(128), primary_key=True),
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("trace_id", sa.String(32), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("trace_time", sa.Float, nullable=False),  # rolled up at the trace's time
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("thumbs", sa.Integer),  # 1 | -1
    sa.Column("outcome", sa.String(16)),  # accepted | edited | rejected | escalated
    sa.Column("edit_distance", sa.Integer),
    sa.Column("rework", sa.Float),  # 0..1: edit distance / length of the answer
    sa.Column("corrected_text", sa.Text),
    sa.Column("score_name", sa.String(64)),
    sa.Column("score", sa.Float),
    sa.Column("critical_error", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("critical_category", sa.String(64)),
    sa.Column("comment", sa.Text),
    sa.Column("key_id", sa.String(32)),
    sa.Column("feature", sa.String(128)),  # copied from the trace, like team
    sa.Column("model", sa.String(256)),
    sa.Column("prompt", sa.String(160)),
    sa.Index("ix_feedback_trace", "trace_id"),
    sa.Index("ix_feedback_time", "trace_time"),
)

outcomes = sa.Table(
    "outcomes",
    metadata,
    sa.Column("team", sa.String(128), primary_key=True),  # 0010: ids are per team; '': none
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("feature", sa.String(128), nullable=False),
    sa.Column("trace_ids", sa.JSON),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("key_id", sa.String(32)),
    sa.Index("ix_outcomes_feature_time", "feature", "at"),
)

rollups = sa.Table(
    "rollups",
    metadata,
    *_rollup_key(),
    sa.Column("requests", sa.Integer, nullable=False, server_default="0"),
    sa.Column("errors", sa.Integer, nullable=False, server_default="0"),
    sa.Column("input_tokens", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("output_tokens", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("cached_tokens", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("reasoning_tokens", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("cost_usd", sa.Float, nullable=False, server_default="0"),
    sa.Column("cache_hits", sa.Integer, nullable=False, server_default="0"),
    sa.Column("cost_saved_usd", sa.Float, nullable=False, server_default="0"),
    sa.Column("latency_ms_sum", sa.Float, nullable=False, server_default="0"),
    # 0014: answers served after a failed or skipped attempt; traces a guardrail flagged,
    # blocked
    sa.Column("fallbacks", sa.Integer, nullable=False, server_default="0"),
    sa.Column("guard_flagged", sa.Integer, nullable=False, server_default="0"),
    sa.Column("guard_blocked", sa.Integer, nullable=False, server_default="0"),
    sa.Column("feedback", sa.Integer, nullable=False, server_default="0"),
    sa.Column("thumbs_up", sa.Integer, nullable=False, server_default="0"),
    sa.Column("thumbs_down", sa.Integer, nullable=False, server_default="0"),
    sa.Column("accepted", sa.Integer, nullable=False, server_default="0"),
    sa.Column("edited", sa.Integer, nullable=False, server_default="0"),
    sa.Column("rejected", sa.Integer, nullable=False, server_default="0"),
    sa.Column("escalated", sa.Integer, nullable=False, server_default="0"),
    sa.Column("rework_sum", sa.Float, nullable=False, server_default="0"),
    sa.Column("rework_n", sa.Integer, nullable=False, server_default="0"),
    sa.Column("critical_errors", sa.Integer, nullable=False, server_default="0"),
    sa.Index("ix_rollups_window", "granularity", "bucket"),
)

rollup_errors = sa.Table(
    "rollup_errors",
    metadata,
    *_rollup_key(),
    sa.Column("error_type", sa.String(64), primary_key=True),
    sa.Column("count", sa.Integer, nullable=False, server_default="0"),
)

rollup_sketches = sa.Table(
    "rollup_sketches",
    metadata,
    *_rollup_key(),
    sa.Column("metric", sa.String(8), primary_key=True),  # latency | ttft
    sa.Column("idx", sa.Integer, primary_key=True),  # log-bucket index (keel/sketch.py)
    sa.Column("count", sa.Integer, nullable=False, server_default="0"),
    sa.Index("ix_rollup_sketches_window", "granularity", "bucket"),
)

# 0016: the same sketches added up over teams and models (hour and day buckets), for the
# views that filter and group by feature and prompt only (keel.store.rollups). The key
# leads with (granularity, metric, bucket): one metric's window is one range of it, and
# on SQLite the rows are stored in that order (WITHOUT ROWID).
rollup_prompt_sketches = sa.Table(
    "rollup_prompt_sketches",
    metadata,
    sa.Column("granularity", sa.String(1), primary_key=True),
    sa.Column("metric", sa.String(8), primary_key=True),  # latency | ttft
    sa.Column("bucket", sa.Float, primary_key=True),
    sa.Column("feature", sa.String(128), primary_key=True),
    sa.Column("prompt", sa.String(160), primary_key=True),
    sa.Column("idx", sa.Integer, primary_key=True),
    sa.Column("count", sa.Integer, nullable=False, server_default="0"),
    sqlite_with_rowid=False,
)

rollup_outcomes = sa.Table(  # business outcomes by name; a feature's value unit is one name
    "rollup_outcomes",
    metadata,
    sa.Column("granularity", sa.String(1), primary_key=True),
    sa.Column("bucket", sa.Float, primary_key=True),
    sa.Column("feature", sa.String(128), primary_key=True),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("events", sa.Integer, nullable=False, server_default="0"),
    sa.Column("value", sa.Float, nullable=False, server_default="0"),
)

cost_events = sa.Table(
    "cost_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("action", sa.String(32), nullable=False),  # reprice
    sa.Column("model", sa.String(256)),
    sa.Column("since", sa.Float),
    sa.Column("until", sa.Float),
    sa.Column("traces", sa.Integer),
    sa.Column("cost_before_usd", sa.Float),
    sa.Column("cost_after_usd", sa.Float),
    sa.Column("actor", sa.String(128)),
    sa.Column("detail", sa.Text),
)

# 0007: the audit trail. Entries are only ever inserted (keel has no code that updates or
# deletes them); each is a leaf of a hash chain and of an RFC 6962 Merkle tree (keel/audit).
audit_entries = sa.Table(
    "audit_entries",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),  # 1, 2, 3...
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("actor", sa.String(128)),
    sa.Column("action", sa.String(64), nullable=False),  # key.create, prompt.label...
    sa.Column("target", sa.String(512)),
    sa.Column("before_hash", sa.String(128)),
    sa.Column("after_hash", sa.String(128)),
    sa.Column("detail", sa.Text),  # canonical JSON text, hashed as stored
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Index("ix_audit_entries_action", "action", "seq"),
    sa.Index("ix_audit_entries_at", "at"),
)

audit_checkpoints = sa.Table(
    "audit_checkpoints",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("size", sa.BigInteger, nullable=False),  # entries 1..size
    sa.Column("root", sa.String(64), nullable=False),  # their Merkle tree head
    sa.Column("head", sa.String(64), nullable=False),  # hash of entry `size`
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("peaks", sa.Text, nullable=False),  # JSON: the tree's peaks, to extend it
    sa.Column("key_id", sa.String(16)),
    sa.Column("signature", sa.String(64)),  # HMAC-SHA256 with KEEL_AUDIT_KEY, or None
    sa.Index("ix_audit_checkpoints_size", "size"),
)

# 0008: per-feature kill switches (the last stop or start of each feature; the audit log
# keeps the history).
feature_switches = sa.Table(
    "feature_switches",
    metadata,
    sa.Column("feature", sa.String(128), primary_key=True),
    sa.Column("stopped", sa.Boolean, nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("actor", sa.String(128)),
    sa.Column("at", sa.Float, nullable=False),  # when it was last stopped or started
)

# 0009: every version of every guardrail policy seen in the config (a trace names one)
policy_versions = sa.Table(
    "policy_versions",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("version", sa.String(16), primary_key=True),  # content hash of the spec
    sa.Column("spec", sa.Text, nullable=False),  # canonical JSON of the policy
    sa.Column("first_seen", sa.Float, nullable=False),
)

# 0009: answers held for a human decision. ``content`` is the answer as the client would
# get it; ``approved`` is what the reviewer approved (the same, or their edit), and only
# content matching ``approved_hash`` is ever released.
reviews = sa.Table(
    "reviews",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("trace_id", sa.String(32), nullable=False),
    sa.Column("key_id", sa.String(32)),  # the key that made the request (may poll it)
    sa.Column("team", sa.String(128)),
    sa.Column("feature", sa.String(128)),
    sa.Column("policy", sa.String(128)),
    sa.Column("policy_version", sa.String(16)),
    sa.Column("reasons", sa.JSON),  # why it was held: scanner findings / the review rule
    sa.Column("mode", sa.String(8), nullable=False),  # wait | async
    sa.Column("status", sa.String(16), nullable=False),  # pending|approved|rejected|expired
    sa.Column("request", sa.Text),  # JSON: the request as the policy let it through
    sa.Column("content", sa.Text),  # JSON: the held chat.completion
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("approved", sa.Text),  # JSON: the chat.completion approved for release
    sa.Column("approved_hash", sa.String(64)),
    sa.Column("decided_by", sa.String(128)),
    sa.Column("decision_reason", sa.Text),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("decided_at", sa.Float),
    sa.Column("released_at", sa.Float),
    sa.Index("ix_reviews_status_created", "status", "created_at"),
    sa.Index("ix_reviews_trace", "trace_id"),
)

# 0015: alert and drift state. Per rule and series its track (phase and streaks) and its
# latest evaluation; every transition (pending, firing, escalated, deescalated, resolved);
# the silences; the notification groups (for re-notifying and resolving); one claim per job
# and tick, so that one replica runs each tick; and the drift reports of scheduled checks.
alert_tracks = sa.Table(
    "alert_tracks",
    metadata,
    sa.Column("key", sa.String(512), primary_key=True),  # keel.monitor.alerts.series_key
    sa.Column("rule", sa.String(128), nullable=False),
    sa.Column("series", sa.JSON, nullable=False),
    sa.Column("phase", sa.String(16), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("track", sa.JSON, nullable=False),
    sa.Column("evaluation", sa.JSON, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Index("ix_alert_tracks_rule", "rule"),
)

alert_events = sa.Table(
    "alert_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(512), nullable=False),
    sa.Column("rule", sa.String(128), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # pending | firing | ... | resolved
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("evaluation", sa.JSON, nullable=False),
    sa.Index("ix_alert_events_at", "at"),
    sa.Index("ix_alert_events_key_at", "key", "at"),
)

alert_silences = sa.Table(
    "alert_silences",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("matchers", sa.JSON, nullable=False),  # {"rule": ..., "feature": ...}: all must hold
    sa.Column("creator", sa.String(256), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("starts_at", sa.Float, nullable=False),
    sa.Column("ends_at", sa.Float, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("lifted_at", sa.Float),  # ended early, by hand
    sa.Column("lifted_by", sa.String(256)),
    sa.Index("ix_alert_silences_ends", "ends_at"),
)

alert_groups = sa.Table(
    "alert_groups",
    metadata,
    sa.Column("group_key", sa.String(512), primary_key=True),
    sa.Column("labels", sa.JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # firing | resolved
    sa.Column("alerts", sa.JSON, nullable=False),  # the series keys last notified
    sa.Column("first_at", sa.Float, nullable=False),
    sa.Column("notified_at", sa.Float, nullable=False),
    sa.Column("resolved_at", sa.Float),
)

schedule_ticks = sa.Table(  # one row per job and tick: the replica that claimed it
    "schedule_ticks",
    metadata,
    sa.Column("job", sa.String(32), primary_key=True),  # alerts | drift
    sa.Column("tick", sa.Float, primary_key=True),  # the tick's start, epoch seconds
    sa.Column("claimed_by", sa.String(128), nullable=False),
    sa.Column("claimed_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float),
    sa.Column("series", sa.Integer),
    sa.Column("error", sa.Text),
)


drift_reports = sa.Table(
    "drift_reports",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("feature", sa.String(128), nullable=False),
    sa.Column("at", sa.Float, nullable=False),  # when the check ran (its windows end here)
    sa.Column("reference_since", sa.Float, nullable=False),
    sa.Column("reference_until", sa.Float, nullable=False),
    sa.Column("current_since", sa.Float, nullable=False),
    sa.Column("current_until", sa.Float, nullable=False),
    sa.Column("n_reference", sa.Integer, nullable=False),
    sa.Column("n_current", sa.Integer, nullable=False),
    sa.Column("drifted", sa.Boolean),  # None: not enough data for a verdict
    sa.Column("auc", sa.Float),  # the domain classifier's ROC AUC, when it ran
    sa.Column("report", sa.JSON, nullable=False),
    sa.Index("ix_drift_reports_feature_at", "feature", "at"),
    sa.Index("ix_drift_reports_at", "at"),
)


meta = sa.Table(
    "keel_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
