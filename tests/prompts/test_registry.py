"""The prompt registry on both dialects, over HTTP, at the gateway, and from the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from click.testing import CliRunner

from keel.errors import InvalidRequest, NotFound
from keel.prompts import PromptRegistry, PromptSpec, PromptSpecError
from keel.store import Store
from keel.store import prompts as q
from tests.support.keel import running_keel

BASE: dict[str, Any] = {
    "name": "support-reply", "model": "mock", "params": {"temperature": 0.2, "max_tokens": 300},
    "messages": [{"role": "system", "content": "You are a support agent for {{product}}."},
                 {"role": "user", "content": "{{question}}"}],
}


def spec(**kw: Any) -> PromptSpec:
    return PromptSpec.parse({**BASE, **kw})


async def test_versions_are_immutable_and_identical_pushes_are_not_new(store: Store) -> None:
    reg = PromptRegistry(store)
    v1, created1 = await reg.push(spec(), message="first", author="ana")
    again, created_again = await reg.push(spec(description="same content"))
    v2, created2 = await reg.push(spec(params={"temperature": 0.5}), message="warmer")
    assert (v1.version, created1, again.version, created_again) == (1, True, 1, False)
    assert (v2.version, created2) == (2, True)
    assert reg.resolve("support-reply@1").spec.params["temperature"] == 0.2
    assert reg.resolve("support-reply").version == 2  # latest is automatic
    assert reg.resolve("support-reply@latest").version == 2
    assert [e["action"] for e in await q.events(store, "support-reply")] == ["push", "push"]


async def test_labels_move_and_rollback_is_recorded(store: Store) -> None:
    reg = PromptRegistry(store)
    for t in (0.1, 0.2, 0.3):
        await reg.push(spec(params={"temperature": t}))
    assert await reg.set_label("support-reply@1", "production", actor="ana") == (None, 1)
    assert await reg.set_label("support-reply@3", "production", actor="bo") == (1, 3)
    assert reg.resolve("support-reply@production").version == 3
    assert await reg.rollback("support-reply", "production", actor="cy",
                              reason="regression") == (3, 1)
    assert reg.resolve("support-reply@production").version == 1
    last = (await q.events(store, "support-reply"))[-1]
    assert (last["action"], last["from_version"], last["to_version"], last["actor"],
            last["reason"]) == ("rollback", 3, 1, "cy", "regression")


async def test_other_replicas_see_changes_after_refresh(store: Store) -> None:
    a, b = PromptRegistry(store), PromptRegistry(store)
    await b.refresh(force=True)
    await a.push(spec())
    with pytest.raises(NotFound):
        b.resolve("support-reply")
    await b.refresh()  # the version counter changed
    assert b.resolve("support-reply").version == 1


async def test_unknown_names_versions_and_labels_say_what_exists(store: Store) -> None:
    reg = PromptRegistry(store)
    await reg.push(spec())
    with pytest.raises(NotFound, match="prompts: support-reply"):
        reg.resolve("nope@1")
    with pytest.raises(NotFound, match=r"no version 7; versions: 1\.\.1"):
        reg.resolve("support-reply@7")
    with pytest.raises(NotFound, match="no label 'staging'; labels: latest"):
        reg.resolve("support-reply@staging")
    with pytest.raises(InvalidRequest, match="'latest' is automatic"):
        await reg.set_label("support-reply@1", "latest")
    with pytest.raises(NotFound, match="no label 'production' to roll back"):
        await reg.rollback("support-reply", "production")
    await reg.set_label("support-reply@1", "production")
    with pytest.raises(InvalidRequest, match="nothing to roll back to"):
        await reg.rollback("support-reply", "production")


async def test_diff_shows_what_changed(store: Store) -> None:
    reg = PromptRegistry(store)
    await reg.push(spec())
    await reg.push(spec(messages=[{"role": "system", "content": "Be brief about {{product}}."},
                                  {"role": "user", "content": "{{question}}"}]))
    text = reg.diff("support-reply@1", "support-reply@2")
    assert "-  content: You are a support agent for {{product}}." in text
    assert "+  content: Be brief about {{product}}." in text
    assert reg.diff("support-reply@1", "support-reply@1") == ""


def test_render_fills_variables_and_names_missing_ones() -> None:
    s = spec()
    assert s.variables == ["product", "question"]
    out = s.render({"product": "Acme", "question": "Where is my order?"}, "support-reply")
    assert out[0]["content"] == "You are a support agent for Acme."
    assert out[1]["content"] == "Where is my order?"
    with pytest.raises(InvalidRequest, match=r"needs variable\(s\) question"):
        s.render({"product": "Acme"}, "support-reply@production")


@pytest.mark.parametrize(("data", "words"), [
    ({"messages": []}, "messages: a non-empty list"),
    ({"name": "a@b"}, "no '@'"),
    ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
    ({"params": {"stream": True}}, "params.stream"),
    ({"colour": "blue"}, "unknown key(s) colour"),
])
def test_bad_prompt_files_are_refused_with_the_key(data: dict[str, Any], words: str) -> None:
    with pytest.raises(PromptSpecError) as info:
        PromptSpec.parse({**BASE, **data}, "p.yaml")
    assert words in str(info.value)


def test_gateway_renders_prompt_at_label_and_traces_the_version(tmp_path: Path) -> None:
    with running_keel(tmp_path) as k:
        h = k.admin_headers()
        r = httpx.post(k.url + "/api/prompts", json={**BASE, "message": "v1"}, headers=h)
        assert r.status_code == 201 and r.json()["version"] == 1
        httpx.post(k.url + "/api/prompts", headers=h,
                   json={**BASE, "params": {"temperature": 0.9}})
        r = httpx.put(k.url + "/api/prompts/support-reply/labels/production",
                      json={"version": 1}, headers=h)
        assert r.json() == {"label": "production", "from_version": None, "to_version": 1}
        resp = httpx.post(k.base_url + "/chat/completions", headers=h, json={
            "model": "ignored-by-prompt", "prompt": "support-reply@production",
            "variables": {"product": "Acme", "question": "Where is my parcel?"}})
        assert resp.status_code == 200, resp.text
        k.flush()
        t = httpx.get(f"{k.url}/api/traces/{resp.headers['x-keel-trace-id']}",
                      headers=h).json()
        assert (t["prompt_name"], t["prompt_version"], t["model_requested"]) == \
            ("support-reply", 1, "mock")
        sent = t["request"]
        assert sent["messages"][0]["content"] == "You are a support agent for Acme."
        assert sent["temperature"] == 0.2 and "prompt" not in sent
        missing = httpx.post(k.base_url + "/chat/completions", headers=h, json={
            "model": "x", "prompt": "support-reply@production", "variables": {"product": "A"}})
        assert missing.status_code == 400
        assert missing.json()["error"]["param"] == "variables"
        assert "question" in missing.json()["error"]["message"]
        unknown = httpx.post(k.base_url + "/chat/completions", headers=h, json={
            "model": "x", "prompt": "support-reply@staging", "variables": {}})
        assert unknown.status_code == 400 and "no label 'staging'" in \
            unknown.json()["error"]["message"]
        back = httpx.post(k.url + "/api/prompts/support-reply/labels/production/rollback",
                          headers=h)
        assert back.status_code == 400  # never moved: nothing to roll back to
        diff = httpx.get(k.url + "/api/prompts/diff", headers=h,
                         params={"from": "support-reply@1", "to": "support-reply@2"}).json()
        assert "+  temperature: 0.9" in diff["diff"]
        listed = httpx.get(k.url + "/api/prompts", headers=h).json()["data"]
        assert listed == [{"name": "support-reply", "versions": 2,
                           "labels": {"production": 1, "latest": 2}}]


def test_cli_push_label_show_diff_rollback(tmp_path: Path, database_url: str) -> None:
    from keel.cli.main import main

    env = {"KEEL_DATA_DIR": str(tmp_path), "KEEL_DATABASE_URL": database_url}
    f1, f2 = tmp_path / "p1.yaml", tmp_path / "p2.yaml"
    import yaml

    f1.write_text(yaml.safe_dump(BASE))
    f2.write_text(yaml.safe_dump({**BASE, "params": {"temperature": 0.7}}))

    def run(*args: str) -> str:
        result = CliRunner().invoke(main, ["prompts", *args], env=env)
        assert result.exit_code == 0, result.output
        return result.output

    assert "pushed support-reply@1; labels: production" in run("push", str(f1), "--label",
                                                               "production")
    assert "unchanged, already support-reply@1" in run("push", str(f1))
    assert "pushed support-reply@2" in run("push", str(f2), "-m", "warmer")
    assert "support-reply@production: 1 -> 2" in run("label", "support-reply@2", "production")
    shown = orjson.loads(run("show", "support-reply@production", "--json"))
    assert shown["version"] == 2 and shown["params"]["temperature"] == 0.7
    assert "+  temperature: 0.7" in run("diff", "support-reply@1", "support-reply@2")
    assert "rolled back support-reply@production: 2 -> 1" in run("rollback", "support-reply",
                                                                 "production")
    listed = [orjson.loads(line) for line in run("list", "--json").splitlines()]
    assert listed[0]["labels"] == {"production": 1, "latest": 2}
    bad = CliRunner().invoke(main, ["prompts", "show", "nope"], env=env)
    assert bad.exit_code == 2 and "no prompt named 'nope'" in bad.output


def test_messages_endpoint_renders_prompt_at_label(tmp_path: Path) -> None:
    import anthropic

    with running_keel(tmp_path) as k:
        h = k.admin_headers()
        httpx.post(k.url + "/api/prompts", json=BASE, headers=h)
        httpx.put(k.url + "/api/prompts/support-reply/labels/production", json={"version": 1},
                  headers=h)
        client = anthropic.Anthropic(base_url=k.url, api_key=k.admin_key)
        # model and messages come from the prompt version
        raw = client.messages.with_raw_response.create(  # type: ignore[call-overload]
            extra_body={"prompt": "support-reply@production",
                        "variables": {"product": "Acme", "question": "Where is my parcel?"}},
            model=anthropic.NOT_GIVEN, messages=anthropic.NOT_GIVEN, max_tokens=100)
        msg = raw.parse()
        assert msg.type == "message" and msg.content[0].text
        k.flush()
        trace_id = raw.headers["x-keel-trace-id"]
        t = httpx.get(f"{k.url}/api/traces/{trace_id}", headers=h).json()
        assert (t["endpoint"], t["prompt_name"], t["prompt_version"], t["model_requested"]) \
            == ("messages", "support-reply", 1, "mock")
        sent = t["request"]["messages"]
        assert sent[0]["content"] == "You are a support agent for Acme."
        assert sent[1]["content"] == "Where is my parcel?"
        # the request's own messages follow the prompt's
        r = httpx.post(k.url + "/v1/messages", headers=h, json={
            "prompt": "support-reply@production", "max_tokens": 50,
            "variables": {"product": "Acme", "question": "Hi"},
            "messages": [{"role": "user", "content": "And one more thing"}]})
        assert r.status_code == 200, r.text
        missing = httpx.post(k.url + "/v1/messages", headers=h, json={
            "prompt": "support-reply@production", "variables": {"product": "A"}})
        assert missing.status_code == 400
        assert missing.json()["type"] == "error" and "question" in \
            missing.json()["error"]["message"]
        unknown = httpx.post(k.url + "/v1/messages", headers=h, json={
            "prompt": "support-reply@staging", "variables": {}})
        assert unknown.status_code == 400 and "no label 'staging'" in \
            unknown.json()["error"]["message"]
        no_prompt = httpx.post(k.url + "/v1/messages", headers=h, json={
            "messages": [{"role": "user", "content": "x"}], "max_tokens": 5})
        assert no_prompt.status_code == 400 and "model" in no_prompt.json()["error"]["message"]
