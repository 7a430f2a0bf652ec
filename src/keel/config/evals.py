"""The evals: section: the suites run daily by ``keel serve``."""

from __future__ import annotations

from pydantic import Field, field_validator

from keel.config.base import _Strict


class ScheduledSuite(_Strict):
    suite: str = Field(description="Suite file; a relative path is relative to the config file.")
    at: str = Field("03:00", description="Time of day (UTC, HH:MM) of the daily run.")
    baseline: str | None = Field(
        None, description="Gate against this label (or prompt ref); without it the suite's "
                          "own thresholds (and gate.baseline, if set) decide.")

    @field_validator("at")
    @classmethod
    def _at(cls, v: str) -> str:
        hh, sep, mm = v.partition(":")
        # ASCII digits only: str.isdigit also takes '²' (which int() refuses) and '٠٣'.
        if not (sep and 1 <= len(hh) <= 2 and len(mm) == 2 and f"{hh}{mm}".isascii()
                and hh.isdigit() and mm.isdigit() and int(hh) < 24 and int(mm) < 60):
            raise ValueError(f"'{v}' is not a time of day; use HH:MM in UTC, e.g. '03:00'")
        return f"{int(hh):02d}:{mm}"


class EvalsConfig(_Strict):
    schedule: list[ScheduledSuite] = Field(default_factory=list)
    check_interval_s: float = Field(60.0, gt=0, description="How often the schedule is checked.")
