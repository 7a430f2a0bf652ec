"""Guardrails: PII patterns shared by stored-content redaction (``redact``) and reversible,
request-scoped redaction (``pii``), and the scanners (``scanners``) that the policy engine
runs in the request path."""
