"""Where keel finds its config file and its store: one answer for ``keel serve`` and every
command, whatever directory it runs from. The two searches are independent.

The config file, the first that applies:

1. ``--config FILE`` (the commands that take it), else ``KEEL_CONFIG``;
2. ``keel.yaml`` in the current directory or the nearest parent that has one;
3. the user's file, ``$XDG_CONFIG_HOME/keel/keel.yaml`` (``~/.config/keel/keel.yaml``);
4. none: the built-in mock models.

The data directory (the SQLite file ``keel.db``, the trace journal ``spill/``, the audit
witness), the first that applies:

1. ``KEEL_DATA_DIR``;
2. a ``.keel/`` directory in the current directory or the nearest parent that has one (a
   store of a project's own: ``mkdir .keel`` before the first ``keel serve``);
3. the user's, ``$XDG_DATA_HOME/keel`` (``~/.local/share/keel``).

The database is ``KEEL_DATABASE_URL`` when set, else ``keel.db`` in the data directory. So by
default every command, run from any directory, uses the store of the server the same user
started; only a ``.keel/`` directory, which anyone can see, or a setting makes another one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

CONFIG_FILE = "keel.yaml"
DATA_DIR = ".keel"


@dataclass(frozen=True)
class Locations:
    config: Path | None  # None: no file, the built-in mock models
    config_from: str  # why this file: "--config", "KEEL_CONFIG", "the nearest keel.yaml", ...
    data_dir: Path
    data_dir_from: str  # why: "KEEL_DATA_DIR", "the nearest .keel directory", ...

    def describe_config(self) -> str:
        if self.config is None:
            return "none found, serving the built-in mock models"
        return f"{self.config} ({self.config_from})"


def _home(env: Mapping[str, str]) -> Path:
    return Path(env.get("HOME") or Path.home())


def user_config_file(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME") or str(_home(env) / ".config")
    return Path(base) / "keel" / CONFIG_FILE


def user_data_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    base = env.get("XDG_DATA_HOME") or str(_home(env) / ".local" / "share")
    return Path(base) / "keel"


def nearest(name: str, cwd: Path, *, directory: bool) -> Path | None:
    """``cwd/name``, or the same in the nearest parent that has it."""
    for d in (cwd, *cwd.parents):
        p = d / name
        if p.is_dir() if directory else p.is_file():
            return p
    return None


def locate(config: str | os.PathLike[str] | None = None,
           data_dir: str | os.PathLike[str] | None = None, *,
           config_from: str = "--config", env: Mapping[str, str] | None = None,
           cwd: Path | None = None, read_settings: bool = True) -> Locations:
    """Apply the search orders above. ``config`` and ``data_dir`` are values given
    explicitly (an option, a setting); unset, ``KEEL_CONFIG`` and ``KEEL_DATA_DIR`` are read
    from ``env`` unless ``read_settings`` is false (the caller read them already)."""
    env = os.environ if env is None else env
    here = Path.cwd() if cwd is None else cwd
    if read_settings and config is None and env.get("KEEL_CONFIG"):
        config, config_from = env["KEEL_CONFIG"], "KEEL_CONFIG"
    path: Path | None
    if config is not None:
        path = Path(config)
    elif (found := nearest(CONFIG_FILE, here, directory=False)) is not None:
        path, config_from = found, "the nearest keel.yaml"
    elif user_config_file(env).is_file():
        path, config_from = user_config_file(env), "the user's config"
    else:
        path, config_from = None, "none found"

    if read_settings and data_dir is None and env.get("KEEL_DATA_DIR"):
        data_dir = env["KEEL_DATA_DIR"]
    if data_dir is not None:
        return Locations(path, config_from, Path(data_dir), "KEEL_DATA_DIR")
    if (found := nearest(DATA_DIR, here, directory=True)) is not None:
        return Locations(path, config_from, found, "the nearest .keel directory")
    return Locations(path, config_from, user_data_dir(env), "the user's data directory")
