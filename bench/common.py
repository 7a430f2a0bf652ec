"""What the bench scripts share: machine facts for the report, and rewriting one marked
section of bench/RESULTS.md (``<!-- name:start -->`` .. ``<!-- name:end -->``)."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import re
import time
from pathlib import Path


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def machine() -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    version = "?"
    with contextlib.suppress(Exception):
        from importlib.metadata import version as pkg_version
        version = pkg_version("keel")
    return {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), "cpu": cpu,
            "cores": str(os.cpu_count()), "kernel": platform.release(),
            "python": platform.python_version(), "keel": version, "load": loadavg()}


def write_section(path: Path, text: str, start: str, end: str) -> None:
    """Replace the section between the ``start`` and ``end`` markers with ``text`` (which
    carries the markers), or append it."""
    old = path.read_text() if path.exists() else ""
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end) + r"\n?", re.S)
    if pattern.search(old):
        new = pattern.sub(lambda _: text, old, count=1)
    else:
        new = old.rstrip("\n") + "\n\n" + text if old.strip() else text
    path.write_text(new)
