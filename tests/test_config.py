"""The YAML config: valid files load; every mistake names the file, key and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.config import Settings, default_config, load_config, parse_config
from keel.errors import ConfigError

GOOD = """
providers:
  - name: local
    kind: openai
    base_url: http://127.0.0.1:9001/v1
    api_key: env:LOCAL_API_KEY
models:
  - name: gpt-4o-mini
    provider: local
    upstream: gpt-4o-mini-2024-07-18
    price: {input_per_mtok: 0.15, output_per_mtok: 0.60, cached_input_per_mtok: 0.075}
"""


def test_valid_file_loads_with_env_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCAL_API_KEY", "sk-upstream")
    path = tmp_path / "keel.yaml"
    path.write_text(GOOD)
    cfg = load_config(path)
    assert cfg.providers[0].api_key == "sk-upstream"
    assert cfg.models[0].upstream_name == "gpt-4o-mini-2024-07-18"
    assert cfg.models[0].price.to_price().cached_input_per_mtok == 0.075


def test_missing_default_file_falls_back_to_mock(tmp_path: Path) -> None:
    cfg = load_config(tmp_path / "keel.yaml")
    assert [m.name for m in cfg.models] == [m.name for m in default_config().models]
    assert cfg.providers[0].kind == "mock"


def test_explicit_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: config file not found"):
        load_config(tmp_path / "nope.yaml", required=True)


@pytest.mark.parametrize(("text", "expected"), [
    ("providers: [", r"not valid YAML at line"),
    ("- just a list", r"must be a mapping"),
    ("providers:\n  - {name: a, kind: openai}\n", r"providers\[0\]\.base_url: an openai provider needs base_url"),
    ("providers:\n  - {name: a, kind: mock}\nmodels:\n  - {name: m, provider: b}\n",
     r"models\[0\]\.provider: unknown provider 'b'; use one of the names under providers: \(a\)"),
    ("providers:\n  - {name: a, kind: mock}\nmodels:\n  - {name: m, provider: a, price: {inptu_per_mtok: 1}}\n",
     r"models\[0\]\.price\.inptu_per_mtok: unknown key"),
    ("providers:\n  - {name: a, kind: mock}\n  - {name: a, kind: mock}\n",
     r"providers\[1\]\.name: provider 'a' is declared twice"),
    ("providers:\n  - {name: a, kind: mock}\nmodels:\n  - {name: m, provider: a}\n  - {name: m, provider: a}\n",
     r"models\[1\]\.name: model 'm' is declared twice"),
    ("providers:\n  - {name: a, kind: openai, base_url: 'http://x', api_key: 'env:KEEL_TEST_UNSET_VAR'}\n",
     r"providers\[0\]\.api_key: environment variable KEEL_TEST_UNSET_VAR is not set; export"),
    ("models:\n  - {provider: a}\n", r"models\[0\]\.name: required key is missing"),
    ("providers:\n  - {name: a, kind: mock, timeout_s: -1}\n", r"providers\[0\]\.timeout_s: "),
])
def test_config_errors_name_file_key_and_fix(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "keel.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in info.value.message
    import re

    assert re.search(expected, info.value.message), info.value.message


def test_settings_read_keel_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_PORT", "4555")
    monkeypatch.setenv("KEEL_DATABASE_URL", "postgresql://u@h/db")
    s = Settings()
    assert s.port == 4555
    assert s.resolved_database_url() == "postgresql://u@h/db"


def test_default_database_is_sqlite_in_data_dir() -> None:
    assert Settings(data_dir="/tmp/x").resolved_database_url() == "sqlite:////tmp/x/keel.db"


def test_parse_config_accepts_empty_document() -> None:
    cfg = parse_config(None, "keel.yaml")
    assert cfg.models == [] and cfg.providers == []


def _problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "keel.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    lines = info.value.message.splitlines()
    assert all(line.startswith(f"{path}: ") for line in lines), lines
    return [line.removeprefix(f"{path}: ") for line in lines]


def test_every_problem_is_reported_at_once_with_its_key(tmp_path: Path) -> None:
    # a provider's kind is checked where keel is composed, with the installed plugins known
    # (tests/plugins/test_config_check.py); the loader takes any name
    problems = _problems(tmp_path, """
providers:
  - {name: a, kind: mock, timeout_s: -1}
  - {name: b, kind: opnai}
models:
  - {name: m, provider: a, prise: {input_per_mtok: 1}}
budget:
  - {scope: team, name: x, usd: 1}
""")
    assert len(problems) == 3, problems
    assert problems[0].startswith("providers[0].timeout_s: ")
    assert problems[1] == "models[0].prise: unknown key 'prise'; did you mean 'price'?"
    assert problems[2] == "budget: unknown key 'budget'; did you mean 'budgets'?"


def test_a_misspelt_key_deep_down_is_matched_against_its_own_level(tmp_path: Path) -> None:
    problems = _problems(tmp_path, """
providers:
  - {name: a, kind: mock}
models:
  - {name: m, provider: a, price: {tiers: [{above_input_tokens: 10, input_per_mtk: 1}]}}
routes:
  - {name: r, targets: [{model: m, wieght: 2}], retries: {attemps: 2}}
""")
    assert problems == [
        "models[0].price.tiers[0].input_per_mtk: unknown key 'input_per_mtk'; "
        "did you mean 'input_per_mtok'?",
        "routes[0].targets[0].wieght: unknown key 'wieght'; did you mean 'weight'?",
        "routes[0].retries.attemps: unknown key 'attemps'; did you mean 'attempts'?",
    ]


def test_an_unknown_key_with_no_close_match_lists_the_keys_allowed_there(
        tmp_path: Path) -> None:
    (problem,) = _problems(tmp_path, "providers:\n  - {name: a, kind: mock}\n"
                                     "evals: {zzz: 1}\n")
    assert problem == "evals.zzz: unknown key 'zzz'; the keys here are: schedule, " \
                      "check_interval_s"


def test_every_broken_reference_is_reported_at_once(tmp_path: Path) -> None:
    problems = _problems(tmp_path, """
providers:
  - {name: a, kind: mock}
models:
  - {name: m, provider: x}
  - {name: n, provider: y}
routes:
  - {name: r, targets: [{model: nope}]}
""")
    assert problems == [
        "models[0].provider: unknown provider 'x'; use one of the names under providers: (a)",
        "models[1].provider: unknown provider 'y'; use one of the names under providers: (a)",
        "routes[0].targets[0].model: unknown chat model 'nope'; use one of the chat models "
        "under models: (m, n)",
    ]


def test_unset_environment_variables_are_reported_with_the_other_problems(
        tmp_path: Path) -> None:
    problems = _problems(tmp_path, """
providers:
  - {name: a, kind: openai, base_url: http://x, api_key: env:KEEL_TEST_UNSET_ONE}
  - {name: b, kind: openai, base_url: http://x, api_key: env:KEEL_TEST_UNSET_TWO}
models:
  - {name: m, provider: a, upstrem: x}
""")
    assert [p.split(":", 1)[0] for p in problems] == [
        "providers[0].api_key", "providers[1].api_key", "models[0].upstrem"]
    assert "KEEL_TEST_UNSET_TWO is not set" in problems[1]
    assert "did you mean 'upstream'?" in problems[2]


def test_broken_references_are_reported_with_misspelt_keys(tmp_path: Path) -> None:
    problems = _problems(tmp_path, """
providers:
  - {name: a, kind: mock}
models:
  - {name: m, provider: x, prise: {input_per_mtok: 1}}
""")
    assert problems == [
        "models[0].prise: unknown key 'prise'; did you mean 'price'?",
        "models[0].provider: unknown provider 'x'; use one of the names under providers: (a)",
    ]


@pytest.mark.parametrize("at", ["²:00", "٠٣:00", "3:7", "24:00", "03:60", "003:00", "03:00:00",
                                "", "03"])
def test_a_schedule_time_is_hh_mm_in_ascii_digits(at: str) -> None:
    from keel.config import ScheduledSuite

    with pytest.raises(ValueError, match="is not a time of day; use HH:MM"):
        ScheduledSuite(suite="evals/s.yaml", at=at)


def test_a_schedule_time_is_normalised() -> None:
    from keel.config import ScheduledSuite

    assert ScheduledSuite(suite="evals/s.yaml", at="3:05").at == "03:05"
