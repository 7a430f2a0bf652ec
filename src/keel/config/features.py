"""The features: section: each feature's value unit, content capture and retention."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from keel.config.base import _Strict


class RetentionSpec(_Strict):
    content_days: float | None = Field(
        None, gt=0, description="Days request/response content is kept (None: forever).")
    rows_days: float | None = Field(
        None, gt=0, description="Days trace rows are kept (None: forever); rollups stay.")


class FeatureConfig(_Strict):
    name: str
    value_unit: str | None = Field(
        None, description="The business outcome (by name) that measures this feature's "
                          "value, e.g. ticket_resolved; cost per value unit divides by it.")
    retention: RetentionSpec = Field(default_factory=RetentionSpec)
    capture: Literal["full", "redacted", "none"] = Field(
        "full", description="What of request/response content is stored.")
