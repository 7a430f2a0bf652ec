"""Trace capture (background writer) and metrics."""
