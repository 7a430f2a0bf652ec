"""Process settings, read once from ``KEEL_*`` environment variables (``Settings``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from keel.locations import locate

DEFAULT_CONFIG_FILE = "keel.yaml"


class Settings(BaseSettings):
    """Process settings, read from ``KEEL_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="KEEL_", extra="ignore")

    config: str = Field(DEFAULT_CONFIG_FILE, description="Path of the YAML config file; unset: "
                        "found as keel.locations describes.")
    data_dir: str = Field(".keel", description="Directory for the SQLite file and spill files; "
                          "unset: found as keel.locations describes.")
    database_url: str | None = Field(None, description="sqlite:///path or postgresql://...")
    redis_url: str | None = Field(None, description="redis://host:port/db (optional)")
    redis_prefix: str = Field("keel:", description="Prefix of every Redis key keel writes.")
    master_key: str | None = Field(None, description="Admin key; generated if unset.")
    host: str = "127.0.0.1"
    port: int = 4000
    max_body_bytes: int = Field(4 * 1024 * 1024, description="Largest accepted request body.")
    max_header_bytes: int = Field(
        32 * 1024, ge=1024, description="Largest request head (request line and header "
                                        "fields); a larger one gets a 431 and the connection "
                                        "is closed.")
    max_headers: int = Field(100, ge=1, description="Most header fields in one request (431).")
    header_timeout_s: float = Field(
        10.0, gt=0, description="Time for a request's head to arrive, from the connection (or "
                                "the request's first byte); then 408 and the connection closes.")
    body_timeout_s: float = Field(
        30.0, gt=0, description="Time for a whole request body to arrive once it is read; "
                                "then 408 request_timeout.")
    keepalive_timeout_s: int = Field(
        5, gt=0, description="An idle keep-alive connection is closed after this many seconds.")
    metrics_public: bool = Field(
        False, description="Serve GET /metrics without a key (for a scraper on a private "
                           "network). Default: the master key or a key with role 'metrics'.")
    console: bool = Field(True, description="Serve the web console at / (log in with a role "
                          "key or the admin key).")
    console_secret: str | None = Field(
        None, description="Signs the console's session cookies. Unset: a random secret kept "
                          "in KEEL_DATA_DIR/console-secret; replicas that do not share a data "
                          "directory need the same value here.")
    public_url: str | None = Field(
        None, description="The address people reach keel at (https://keel.example.com); "
                          "alert notifications link to its console pages. Unset: no links.")
    console_session_hours: float = Field(
        12.0, gt=0, description="How long a console login lasts (a revoked key ends it at "
                                "once).")
    capture_content: bool = Field(True, description="Store request messages and outputs.")
    trace_queue_size: int = 20_000
    trace_batch_size: int = 500
    trace_flush_interval_s: float = 0.25
    trace_hold_max: int = Field(
        20_000, ge=1, description="Traces kept in memory when neither the store nor the "
                                  "journal (KEEL_DATA_DIR/spill) can take them; past this "
                                  "the gateway refuses requests (503) rather than answer "
                                  "untraced.")
    trace_journal: bool = Field(
        True, description="Append every finished trace to a journal under "
                          "KEEL_DATA_DIR/spill before its answer is sent, so a killed process "
                          "loses no trace. Off: a crash loses the traces not yet stored.")
    trace_journal_fsync_s: float | None = Field(
        None, gt=0, description="fsync the trace journal at most this often (seconds). "
                                "Unset: no fsync; the journal survives a killed process "
                                "but not a machine crash.")
    refresh_interval_s: float = Field(2.0, description="How often keys are re-read from the store.")
    feedback_wait_s: float = Field(
        3.0, ge=0, le=60, description="How long POST /api/feedback and /api/outcomes wait for "
        "a trace they name to be stored (answered a moment ago, here or on another replica) "
        "before a 404; keep it above KEEL_TRACE_FLUSH_INTERVAL_S.")
    otlp_endpoint: str | None = Field(
        None, description="Export every stored trace as an OpenTelemetry span (OTLP/HTTP "
                          "protobuf) to this collector, e.g. http://otel-collector:4318; spans "
                          "are POSTed to {endpoint}/v1/traces. Unset: no export.")
    otlp_headers: str | None = Field(
        None, description="Extra headers on every OTLP export request, 'k=v,k2=v2' (values "
                          "may be URL-encoded), e.g. 'authorization=Bearer%20TOKEN'.")
    otlp_capture_content: bool = Field(
        False, description="Also export message content (gen_ai.input.messages / "
                           "gen_ai.output.messages); off by default.")
    audit_key: str | None = Field(
        None, description="Secret that signs audit checkpoints (HMAC-SHA256); also needed "
                          "to check their signatures. Unset: checkpoints are unsigned hashes "
                          "and `keel audit verify` says so.")
    audit_checkpoint_every: int = Field(
        100, ge=1, description="Audit entries between automatic checkpoints.")
    audit_witness: str | None = Field(
        None, description="Where each audit checkpoint is also published, outside the "
                          "database: file paths (appended, one JSON line each) and "
                          "http(s):// URLs (POSTed), comma-separated; `keel audit verify` "
                          "checks the log against the files. Unset: "
                          "<data_dir>/audit-witness.jsonl; 'none': nowhere.")
    log_level: str = Field(
        "warning", description="debug, info, warning or error. At debug on SQLite the "
                               "database driver logs every statement with its values: trace "
                               "content (prompts and answers) as the feature's capture policy "
                               "stores it, so all of it unless capture is redacted or none. "
                               "Configured secrets are redacted from every log line.")

    @model_validator(mode="before")
    @classmethod
    def _locate(cls, data: Any) -> Any:
        """The config file and data directory not given are found by keel.locations."""
        if not isinstance(data, dict) or (data.get("config") and data.get("data_dir")):
            return data
        found = locate(data.get("config") or None, data.get("data_dir") or None,
                       read_settings=False)  # the environment is in data already
        return {**data, "config": str(found.config or DEFAULT_CONFIG_FILE),
                "data_dir": str(found.data_dir)}

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{Path(self.data_dir) / 'keel.db'}"

    def describe_store(self) -> str:
        """The database for people: its file, or its host and name (never a password)."""
        url = self.resolved_database_url()
        if url.startswith("sqlite"):
            path = url.split(":///", 1)[-1]
            return f"SQLite {path if path == ':memory:' else os.path.abspath(path)}"
        return "PostgreSQL " + url.rsplit("@", 1)[-1].split("://", 1)[-1]
