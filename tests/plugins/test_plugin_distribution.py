"""A plugin distribution (keel-acme: a provider, a scanner and a scorer) installed by pip and
found through its entry points: configured in a real config file, checked by `keel config
check`, served by `keel serve` to the official openai SDK, and scoring a `keel eval run`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import openai
import pytest

from tests.plugins.wheel import install_acme
from tests.support.process import KeelProcess

ADMIN = "sk-test-plugins-admin"
CONFIG = """
providers:
  - {name: acme, kind: acme-echo, options: {greeting: Ahoy}}
models:
  - {name: echo, provider: acme, price: {input_per_mtok: 1, output_per_mtok: 2}}
policies:
  - name: calm
    features: ['*']
    input:
      - {scanner: shout, action: block, min_letters: 3}
"""


@pytest.fixture(scope="module")
def acme_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_acme(tmp_path_factory.mktemp("acme"))


def keel_env(tmp_path: Path, site: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("KEEL_") or k.startswith("KEEL_TEST_")}
    env.pop("PYTHONPATH", None)
    if site is not None:
        env["PYTHONPATH"] = str(site)
    env.update(KEEL_DATA_DIR=str(tmp_path / "data"), HOME=str(tmp_path), PYTHONUNBUFFERED="1")
    return env


def keel(tmp_path: Path, site: Path | None, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "keel", *args], cwd=tmp_path,
                          env=keel_env(tmp_path, site), capture_output=True, text=True,
                          timeout=120)


def config_check(tmp_path: Path, site: Path | None, text: str
                 ) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "keel.yaml"
    cfg.write_text(text)
    return keel(tmp_path, site, "config", "check", "--config", str(cfg))


def errors(done: subprocess.CompletedProcess[str], cfg: Path) -> list[str]:
    """The config error lines on stderr, without the 'config error: FILE: ' prefix."""
    prefix = f"config error: {cfg}: "
    return [line.removeprefix(prefix) for line in done.stderr.splitlines()
            if line.startswith("config error: ")]


def test_the_plugin_module_is_not_importable_without_the_installed_distribution() -> None:
    # what the other tests find, they find in the installed distribution, not on keel's path
    done = subprocess.run([sys.executable, "-c", "import keel_acme"], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": ""}, timeout=60)
    assert done.returncode == 1 and "No module named 'keel_acme'" in done.stderr


def test_config_check_accepts_plugin_kinds_and_says_where_they_come_from(
        tmp_path: Path, acme_site: Path) -> None:
    done = config_check(tmp_path, acme_site, CONFIG)
    assert done.returncode == 0, done.stderr
    out = done.stdout.splitlines()
    assert "providers: 1 (acme (acme-echo from keel-acme 0.1.0))" in out
    assert ("plugins: 3 (provider acme-echo from keel-acme 0.1.0, scanner shout from keel-acme "
            "0.1.0, scorer greeted from keel-acme 0.1.0)") in out
    assert out[-1] == "config is valid"


def test_without_the_distribution_the_plugin_names_are_unknown(tmp_path: Path) -> None:
    done = config_check(tmp_path, None, CONFIG)
    assert done.returncode == 2
    assert errors(done, tmp_path / "keel.yaml") == [
        "providers[0].kind: unknown provider kind 'acme-echo'; known kinds: anthropic, gemini, "
        "mock, openai (a plugin adds one through the entry point group keel.providers)",
        "policies[0].input[0].scanner: unknown scanner type 'shout'; known types: banned, "
        "canary, injection, json_schema, max_tokens, pii, secrets, tools, unicode, urls "
        "(a plugin adds one through the entry point group keel.scanners)",
    ]


def test_kinds_and_options_are_reported_with_the_loaders_problems_at_once(
        tmp_path: Path, acme_site: Path) -> None:
    done = config_check(tmp_path, acme_site, """
providers:
  - {name: a, kind: acme-ecko}
  - {name: b, kind: opnai, timeout_s: -1}
  - {name: c, kind: acme-echo, options: {greting: Ahoy}}
  - {name: d, kind: mock, options: {greeting: Ahoy}}
models:
  - {name: m, provider: a, prise: {input_per_mtok: 1}}
""")
    assert done.returncode == 2
    problems = errors(done, tmp_path / "keel.yaml")
    assert len(problems) == 6, problems
    assert problems[0].startswith("providers[1].timeout_s: ")
    assert problems[1] == "models[0].prise: unknown key 'prise'; did you mean 'price'?"
    assert problems[2].startswith(
        "providers[0].kind: unknown provider kind 'acme-ecko'; did you mean 'acme-echo'? "
        "known kinds: acme-echo, anthropic, gemini, mock, openai")
    assert problems[3].startswith(
        "providers[1].kind: unknown provider kind 'opnai'; did you mean 'openai'?")
    assert problems[4] == ("providers[2].options.greting: unknown option 'greting'; did you "
                           "mean 'greeting'? the options of 'acme-echo' are: greeting")
    assert problems[5] == ("providers[3].options: provider kind 'mock' takes no options "
                           "(options: is for plugin providers); remove it")


def test_provider_problems_and_policy_problems_of_a_loaded_config_come_together(
        tmp_path: Path, acme_site: Path) -> None:
    done = config_check(tmp_path, acme_site, """
providers:
  - {name: a, kind: acme-echo, options: {greeting: 7}}
  - {name: b, kind: mocc}
models:
  - {name: m, provider: a}
policies:
  - name: p
    features: ['*']
    input:
      - {scanner: shout, action: block, min_letters: 1}
""")
    assert done.returncode == 2
    assert errors(done, tmp_path / "keel.yaml") == [
        "providers[0].options.greeting: must be a string, e.g. greeting: Ahoy",
        "providers[1].kind: unknown provider kind 'mocc'; did you mean 'mock'? known kinds: "
        "acme-echo, anthropic, gemini, mock, openai",
        "policies[0].input[0].min_letters: must be a whole number of at least 2, e.g. "
        "min_letters: 4",
    ]


@pytest.mark.slow
def test_keel_serve_answers_with_the_plugin_provider_behind_the_plugin_scanner(
        tmp_path: Path, acme_site: Path) -> None:
    k = KeelProcess(tmp_path, CONFIG, f"sqlite:///{tmp_path / 'keel.db'}", ADMIN,
                    PYTHONPATH=str(acme_site))
    try:
        client = openai.OpenAI(base_url=k.url + "/v1", api_key=ADMIN, max_retries=0)
        reply = client.chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "hi there"}])
        assert reply.choices[0].message.content == "Ahoy! You said: hi there"
        assert reply.usage is not None and reply.usage.completion_tokens == 5

        stream = client.chat.completions.create(
            model="echo", stream=True, messages=[{"role": "user", "content": "calm words"}])
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text == "Ahoy! You said: calm words"

        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(
                model="echo", messages=[{"role": "user", "content": "STOP that NOW"}])
        body = info.value.body
        assert isinstance(body, dict) and body["code"] == "policy_blocked"
        assert "input scanner 'shout': 2 words in capitals" in body["message"]
    finally:
        assert k.stop() == 0, k.log()


def test_keel_serve_refuses_a_config_naming_a_plugin_that_is_not_installed(
        tmp_path: Path) -> None:
    cfg = tmp_path / "keel.yaml"
    cfg.write_text(CONFIG)
    done = keel(tmp_path, None, "serve", "--config", str(cfg), "--port", "0")
    assert done.returncode == 2
    assert f"config error: {cfg}: providers[0].kind: unknown provider kind 'acme-echo'" \
        in done.stderr
    assert done.stderr.rstrip().endswith("keel did not start.")


@pytest.mark.slow
def test_a_plugin_scorer_scores_an_eval_run_against_the_plugin_provider(
        tmp_path: Path, acme_site: Path) -> None:
    cfg = tmp_path / "keel.yaml"
    cfg.write_text(CONFIG)
    (tmp_path / "cases.jsonl").write_text("".join(
        json.dumps({"id": i, "messages": [{"role": "user", "content": q}]}) + "\n"
        for i, q in (("a", "hi"), ("b", "how are you"))))
    (tmp_path / "suite.yaml").write_text("""
name: acme-greeting
dataset: cases.jsonl
targets: [{model: echo}]
scorers:
  - {type: greeted, greeting: Ahoy}
  - {type: greeted, name: greeted-hello, greeting: Hello}
""")
    done = keel(tmp_path, acme_site, "eval", "run", "suite.yaml", "--config", str(cfg), "-q")
    assert done.returncode == 0, done.stderr
    runs = keel(tmp_path, acme_site, "eval", "runs", "--suite", "acme-greeting", "--json")
    (run,) = [json.loads(line) for line in runs.stdout.splitlines()]
    scorers = json.loads(run["summary"])["scorers"]
    assert scorers["greeted"]["passed"] == 2 and scorers["greeted"]["failed"] == 0
    assert scorers["greeted-hello"]["passed"] == 0 and scorers["greeted-hello"]["failed"] == 2
