"""Every shell and Python example in README.md runs, as written, against a live keel.

One `keel serve` (on the mock provider, a fresh data directory, a known admin key) is
started in a scratch directory whose `.venv/bin` links to this venv's programs, so
`.venv/bin/keel` and `keel` mean what the README says. The blocks then run top to bottom in that directory,
sharing shell variables, files and the keel, with the variables the README's prose defines:
`KEEL` (keel's URL), `ADMIN` (the admin key) and `KEY` (a virtual key of team support-eng,
bound to feature support). The only rewrite of an example is keel's address:
`127.0.0.1:4000` becomes the test keel's free port (and `sk-keel-...` in Python the key).
The README's `keel.yaml` example, if any, is written before keel starts, since keel reads
its config then; the other file examples are written when the reading reaches them.
A block that cannot run here says so next to it in the README
(`<!-- example: not run (REASON) -->`); see tests/docs/examples.py.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.docs.examples import (
    Block,
    ExampleFailed,
    MarkerError,
    Session,
    console_commands,
    parse_blocks,
)
from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
ADMIN = "sk-keel-docs-admin-0123456789abcdef"

# Examples that fail because keel is wrong, not the README: a substring of the block, and
# the reason. Strict: once keel is fixed the entry must go.
KNOWN_BROKEN: dict[str, str] = {}


def _blocks() -> list[Block]:
    return [b for b in parse_blocks(README.read_text()) if b.runs or b.file
            or b.skip_reason is not None]


def _params() -> list[Any]:
    params: list[Any] = []
    for b in _blocks():
        marks = [pytest.mark.xfail(strict=True, reason=reason)
                 for needle, reason in KNOWN_BROKEN.items() if needle in b.code]
        params.append(pytest.param(b, id=f"line{b.line}-{b.lang}", marks=marks))
    return params


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"keel serve exited {proc.returncode}: {log.read_text()}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"keel serve did not answer within 60 s: {log.read_text()}")


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    base = tmp_path_factory.mktemp("readme")
    work = base / "work"
    (work / ".venv").mkdir(parents=True)
    missing = [tool for tool in ("bash", "curl", "jq") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"the README's examples need {', '.join(missing)}: install "
                    f"{'them' if len(missing) > 1 else 'it'} (apt-get install {' '.join(missing)})")
    venv_bin = Path(sys.prefix) / "bin"
    if not (venv_bin / "keel").exists():
        pytest.fail(f"no keel in {venv_bin}: run the tests from the venv keel is installed in")
    # One link per program, not a link to the directory: an example that writes into
    # .venv/bin (python -m venv) must not reach the real one.
    (work / ".venv" / "bin").mkdir()
    for program in venv_bin.iterdir():
        (work / ".venv" / "bin" / program.name).symlink_to(program)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # A reader's shell, less anything that would point keel elsewhere: no KEEL_* settings,
    # and a home of its own (keel's user-wide config and store live there).
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("KEEL_", "XDG_"))}
    (base / "home").mkdir()
    env["HOME"] = str(base / "home")
    env["PATH"] = f"{work / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("USER", "docs")
    blocks = parse_blocks(README.read_text())
    configs = [b for b in blocks if b.file == "keel.yaml"]
    assert len(configs) <= 1, f"one keel.yaml example at most: {[b.where for b in configs]}"
    for b in configs:  # keel reads its config when it starts
        (work / "keel.yaml").write_text(b.code)
    log = base / "keel.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(work / ".venv" / "bin" / "keel"), "serve", "--port", str(port)], cwd=work,
            env={**env, "KEEL_MASTER_KEY": ADMIN}, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_ready(url, proc, log)
        r = httpx.post(url + "/api/keys", headers={"authorization": f"Bearer {ADMIN}"},
                       json={"team": "support-eng", "feature": "support", "name": "docs"})
        r.raise_for_status()
        key = r.json()["key"]
        yield Session(work, {**env, "KEEL": url, "ADMIN": ADMIN, "KEY": key}, port, key)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_every_marker_is_well_formed_and_every_known_breakage_names_one_block() -> None:
    blocks = parse_blocks(README.read_text())  # raises on an unknown marker
    assert sum(b.runs for b in blocks) >= 20, "the README's examples were not found"
    untagged = [b.where for b in blocks if not b.lang]
    assert not untagged, f"name the language of every fenced block (sh, yaml, ...): {untagged}"
    for b in blocks:
        if b.skip_reason is not None:
            assert b.skip_reason.strip(), f"{b.where}: a 'not run' marker needs a reason"
    for needle in KNOWN_BROKEN:
        hits = [b.where for b in blocks if b.runs and needle in b.code]
        assert len(hits) == 1, f"KNOWN_BROKEN entry {needle!r} matches {hits or 'no block'}"


@pytest.mark.slow
@pytest.mark.parametrize("block", _params())
def test_readme_example_runs(session: Session, block: Block) -> None:
    if block.file is not None:
        session.write_file(block)
        return
    if block.skip_reason is not None:
        pytest.skip(f"{block.where}: not run ({block.skip_reason})")
    try:
        session.run(block)
    except ExampleFailed as exc:
        failure = str(exc)
    else:
        return
    pytest.fail(failure, pytrace=False)


@pytest.mark.slow
def test_an_http_error_a_failed_list_an_unset_variable_or_an_exception_fails_an_example(
        session: Session) -> None:
    with pytest.raises(ExampleFailed, match=r"(?s)README.md:7: .*exited 22.*no API key"):
        session.run(Block(7, "sh", "curl -s $KEEL/api/traces\n"))
    with pytest.raises(ExampleFailed, match="exited 1"):  # errexit alone would let it pass
        session.run(Block(7, "sh", "false && true\n"))
    with pytest.raises(ExampleFailed, match="unbound variable"):
        session.run(Block(7, "sh", "echo $NOT_SET_BY_ANYONE\n"))
    with pytest.raises(ExampleFailed, match="Error code: 401"):
        session.run(Block(7, "python", "from openai import OpenAI\n"
                          "OpenAI(base_url='http://127.0.0.1:4000/v1', api_key='nope')"
                          ".models.list()\n"))


def test_markers_and_console_blocks_are_read_as_documented() -> None:
    text = "\n".join([
        "<!-- example: not run (needs a browser) -->",
        "```sh", "open http://127.0.0.1:4000", "```",
        "<!-- example: file evals/x.yaml -->", "",
        "```yaml", "name: x", "```",
        "```console", "$ keel keys list \\", "    --json", "[]", "$ keel traces", "no traces",
        "```",
        "```js", "fetch()", "```",
        "1. in a list:", "", "   ```sh", "   keel traces", "   ```",
    ])
    skipped, written, console, js, listed = parse_blocks(text)
    assert (skipped.line, skipped.skip_reason, skipped.runs) == (2, "needs a browser", False)
    assert (written.file, written.code, written.runs) == ("evals/x.yaml", "name: x\n", False)
    assert console.runs and console_commands(console.code) == (
        "keel keys list \\\n    --json\nkeel traces\n")
    assert not js.runs
    assert (listed.line, listed.code, listed.runs) == (22, "keel traces\n", True)
    with pytest.raises(MarkerError, match=r"README\.md:1: unknown example marker"):
        parse_blocks("<!-- example: skip -->\n```sh\nls\n```\n")
