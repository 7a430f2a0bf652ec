"""Guardrails: scanners and redaction applied in the request path and to stored content."""
