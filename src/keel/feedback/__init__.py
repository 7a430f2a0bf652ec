"""Feedback on traces and business outcomes (value units), rolled up as they land."""

from keel.feedback.service import (
    feedback_for_trace,
    list_outcomes,
    measure_rework,
    parse_feedback,
    parse_outcome,
    record_feedback,
    record_outcome,
    unknown_trace,
)

__all__ = [
    "feedback_for_trace",
    "list_outcomes",
    "measure_rework",
    "parse_feedback",
    "parse_outcome",
    "record_feedback",
    "record_outcome",
    "unknown_trace",
]
