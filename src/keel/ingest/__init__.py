"""Inbound trace APIs: LLM calls recorded elsewhere become keel traces (``otlp``: OTLP/HTTP
spans with GenAI attributes)."""
