"""Operational measures: rollups of traces, feedback and outcomes; derived metrics."""
