"""The README's examples as data, and a session that runs them in order against one keel.

A fenced block is an example when its info string is ``sh``, ``bash``, ``shell``,
``console``, ``python`` or ``py``. An HTML comment on the last non-blank line before a
fence changes what is done with the block, and nothing else does:

    <!-- example: not run (REASON) -->   the block is shown, not run; REASON says why
    <!-- example: file PATH -->          the block (any language) is written to PATH first

Shell blocks run in bash with ``set -euo pipefail``, ``curl`` wrapped to add
``--fail-with-body`` (an HTTP error fails the block), and the shell variables a block sets
kept for the blocks after it, as in one terminal. Python blocks run in one namespace, in
order, so a fragment may use what an earlier block defined (``client``). The one rewrite
made to any example: keel's documented address ``127.0.0.1:4000`` (or ``localhost:4000``)
becomes the test keel's port, and in Python the key placeholder ``sk-keel-...`` becomes
``$KEY``.
"""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SHELL_LANGS = frozenset({"sh", "bash", "shell", "console"})
PYTHON_LANGS = frozenset({"python", "py"})
RUN_LANGS = SHELL_LANGS | PYTHON_LANGS
_FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([\w+-]*)")
_MARKER = re.compile(r"^<!--\s*example:\s*(.*?)\s*-->$")
_NOT_RUN = re.compile(r"^not run \((.+)\)$")
_FILE = re.compile(r"^file (\S+)$")
_ADDRESS = re.compile(r"\b(?:127\.0\.0\.1|localhost):4000\b")


@dataclass(frozen=True)
class Block:
    line: int               # 1-based line of the opening fence in README.md
    lang: str
    code: str
    skip_reason: str | None = None
    file: str | None = None

    @property
    def where(self) -> str:
        return f"README.md:{self.line}"

    @property
    def runs(self) -> bool:
        return self.lang in RUN_LANGS and self.skip_reason is None and self.file is None


class MarkerError(ValueError):
    pass


def parse_blocks(text: str) -> list[Block]:
    """Every fenced block of ``text`` with its marker; a malformed marker is an error."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = m.group(1), m.group(2), m.group(3).lower()
        start = i
        i += 1
        body: list[str] = []
        while i < len(lines) and not lines[i].strip().startswith(fence):
            line = lines[i]
            body.append(line[len(indent):] if line.startswith(indent) else line.lstrip())
            i += 1
        i += 1  # the closing fence
        skip, file = _marker(lines, start)
        blocks.append(Block(start + 1, lang, "\n".join(body) + "\n", skip, file))
    return blocks


def _marker(lines: list[str], fence: int) -> tuple[str | None, str | None]:
    j = fence - 1
    while j >= 0 and not lines[j].strip():
        j -= 1
    if j < 0:
        return None, None
    m = _MARKER.match(lines[j].strip())
    if not m:
        return None, None
    what = m.group(1)
    if nr := _NOT_RUN.match(what):
        return nr.group(1), None
    if f := _FILE.match(what):
        return None, f.group(1)
    raise MarkerError(f"README.md:{j + 1}: unknown example marker {lines[j].strip()!r}; use "
                      "'<!-- example: not run (REASON) -->' or '<!-- example: file PATH -->'")


def console_commands(code: str) -> str:
    """The commands of a ``console`` block: its ``$ `` lines (with their ``\\``
    continuations); the rest is output."""
    out: list[str] = []
    cont = False
    for line in code.splitlines():
        if cont or line.startswith("$ "):
            out.append(line[2:] if not cont else line)
            cont = line.endswith("\\")
    return "\n".join(out) + "\n"


class ExampleFailed(AssertionError):
    pass


_PREAMBLE = r"""set -euo pipefail
curl() { command curl --fail-with-body "$@"; }
__keel_base=" $(compgen -v | tr '\n' ' ') "
__keel_state="$1"
source "$__keel_state"
__keel_dump() {
  local n
  for n in $(compgen -v); do
    case "$n" in __keel*|BASH*|_|PIPESTATUS|FUNCNAME|LINENO|RANDOM|SECONDS|SRANDOM) continue;; esac
    case "$__keel_base" in *" $n "*) continue;; esac
    declare -p "$n"
  done > "$__keel_state"
}
"""


class Session:
    """The README read top to bottom in one working directory against one keel."""

    def __init__(self, workdir: Path, env: dict[str, str], port: int, key: str) -> None:
        self.workdir = workdir
        self.env = env
        self.port = port
        self.key = key
        self.state = workdir.parent / "shell-state.sh"
        self.state.write_text("")
        self.namespace: dict[str, Any] = {"__name__": "__readme__"}

    def address(self, code: str) -> str:
        return _ADDRESS.sub(f"127.0.0.1:{self.port}", code)

    def write_file(self, block: Block) -> None:
        assert block.file is not None
        path = self.workdir / block.file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(block.code)

    def run(self, block: Block) -> str:
        if block.lang in PYTHON_LANGS:
            return self.run_python(block)
        code = console_commands(block.code) if block.lang == "console" else block.code
        return self.run_shell(block, code)

    def run_shell(self, block: Block, code: str) -> str:
        script = self.workdir.parent / "example.sh"
        # The block's own status counts too: errexit spares a failing `a && b` list.
        script.write_text(_PREAMBLE + self.address(code)
                          + "\n__keel_rc=$?\n__keel_dump\nexit $__keel_rc\n")
        try:
            proc = subprocess.run(
                ["bash", str(script), str(self.state)], cwd=self.workdir, env=self.env,
                capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise ExampleFailed(f"{block.where}: the {block.lang} example did not finish "
                                f"within {exc.timeout} s\n{_show(block.code)}") from None
        if proc.returncode != 0:
            raise ExampleFailed(
                f"{block.where}: the {block.lang} example exited {proc.returncode}\n"
                f"{_show(block.code)}--- stdout ---\n{proc.stdout}--- stderr ---\n"
                f"{proc.stderr}")
        return proc.stdout

    def run_python(self, block: Block) -> str:
        code = self.address(block.code).replace("sk-keel-...", self.key)
        # Padded so that tracebacks give README line numbers.
        compiled = compile("\n" * block.line + code, "README.md", "exec")
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                exec(compiled, self.namespace)
        except Exception:
            raise ExampleFailed(
                f"{block.where}: the python example raised\n{_show(block.code)}"
                f"--- stdout ---\n{out.getvalue()}--- traceback ---\n"
                f"{traceback.format_exc()}") from None
        return out.getvalue()


def _show(code: str) -> str:
    return "--- example ---\n" + code
