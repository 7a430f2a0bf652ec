"""parse_time: the one grammar of times the CLI and the API take."""

from __future__ import annotations

import pytest

from keel.timeparse import parse_time

NOW = 1_793_577_600.0  # 2026-11-02T00:00:00Z
DAY = 86400.0


@pytest.mark.parametrize(("text", "expected"), [
    ("1793577600", NOW), ("1793577600.5", NOW + 0.5), ("0", 0.0),
    ("30m", NOW - 1800), ("2h", NOW - 7200), ("7d", NOW - 7 * DAY), ("1w", NOW - 7 * DAY),
    ("90s", NOW - 90), ("1.5h", NOW - 5400), ("30 m", NOW - 1800), (" 7d ", NOW - 7 * DAY),
    ("2026-11-02", NOW), ("2026-11-02T01:00:00Z", NOW + 3600),
    ("2026-11-02T02:00:00+01:00", NOW + 3600), ("2026-11-02 01:00", NOW + 3600),
    ("2026-11-02T00:00:00.250Z", NOW + 0.25),
])
def test_every_form_people_write(text: str, expected: float) -> None:
    assert parse_time(text, now=NOW) == pytest.approx(expected)


@pytest.mark.parametrize("text", [
    "", "  ", "yesterday", "7D", "7 days", "-5m", "+5", "-5", "1_000", "1e9", "0x10", "nan",
    "inf", "²", "٣", "٣d", "٢٠٢٦-11-02", "3\u2003h", "2026-13-01",
])
def test_anything_else_is_not_a_time(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not a time|empty time") as exc:
        parse_time(text, now=NOW)
    assert "UNIX seconds" in str(exc.value) and "1w" in str(exc.value)


@pytest.mark.parametrize("text", ["99999999999999999999", "1" * 400, "1" * 400 + "d",
                                  "0001-01-01", "9999-12-31T23:59-23:59", "100000w"])
def test_times_outside_1970_to_9999_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="1970 to the year 9999"):
        parse_time(text, now=NOW)
