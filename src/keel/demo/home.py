"""Where the demo keeps its store, and how it keeps off everyone else's.

The demo's data directory holds a keel store of its own (``keel.db``, the trace journal,
the audit witness, the console's secret), its admin key and a marker file that says the
directory is a demo's and whether its month was loaded in full. A directory is only ever
used when it is new, empty, or already marked; a directory holding anything else (a real
keel store above all) is refused, and so is the data directory this environment's
``keel serve`` would use. ``--reset`` empties only a marked directory.

The demo reads no ``KEEL_*`` setting: its config, store, admin key, Redis (none) and OTLP
export (none) are its own, so an environment set up for a real keel never points it at
real data.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from keel.config import Settings
from keel.locations import locate, user_data_dir

MARKER = "keel-demo.json"
ADMIN_KEY = "admin-key"
CONFIG_FILE = Path(__file__).with_name("config.yaml")
PROMPTS_FILE = Path(__file__).with_name("prompts.yaml")
FORMAT = 1  # of the marker; a directory loaded by another format is loaded again


class DemoDirRefused(Exception):
    """A directory the demo may not use; the message says why and what to do."""


class DemoSettings(Settings):
    """``Settings`` from what the demo passes only, never from the environment."""

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def default_dir(env: dict[str, str] | None = None) -> Path:
    """``keel-demo`` beside the user's keel data directory (``~/.local/share/keel-demo``)."""
    return user_data_dir(env).parent / "keel-demo"


@dataclass(frozen=True)
class DemoHome:
    path: Path

    @property
    def marker_file(self) -> Path:
        return self.path / MARKER

    def marker(self) -> dict[str, Any] | None:
        """The marker's content; None when the directory is not a demo's."""
        try:
            data = orjson.loads(self.marker_file.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return None
        return data if isinstance(data, dict) and data.get("keel_demo") is True else None

    def loaded(self) -> dict[str, Any] | None:
        """The marker of a month loaded in full by this format, else None."""
        m = self.marker()
        return m if m is not None and m.get("complete") and m.get("format") == FORMAT else None

    def check(self, configured: Path | None = None) -> None:
        """Refuse (``DemoDirRefused``) a directory the demo must not write to. ``configured``:
        the data directory ``keel serve`` uses here (default: as keel.locations finds it)."""
        p = self.path
        if p.exists() and not p.is_dir():
            raise DemoDirRefused(f"{p} is a file, not a directory; give --data-dir a "
                                 "directory for the demo's store")
        if self.marker() is not None:
            return
        configured = configured if configured is not None else locate().data_dir
        if _same(p, configured):
            raise DemoDirRefused(
                f"{p} is the data directory keel serve uses here; the demo never loads into "
                "it: give --data-dir another directory (the default is "
                f"{default_dir()})")
        if p.is_dir() and any(p.iterdir()):
            what = ("holds a keel store that is not a demo's" if (p / "keel.db").exists()
                    else "is not empty and is not a keel demo directory")
            raise DemoDirRefused(f"{p} {what}; the demo only uses a new or empty directory, "
                                 "or one it made: give --data-dir another directory")

    def claim(self, **facts: Any) -> None:
        """Mark the directory as the demo's (not loaded yet), creating it if needed."""
        self.path.mkdir(parents=True, exist_ok=True)
        self._write({"keel_demo": True, "format": FORMAT, "complete": False, **facts})

    def complete(self, **facts: Any) -> None:
        m = self.marker() or {}
        self._write({**m, **facts, "complete": True})

    def _write(self, data: dict[str, Any]) -> None:
        tmp = self.marker_file.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
        tmp.replace(self.marker_file)

    def reset(self) -> None:
        """Empty a demo directory (everything in it is the demo's); refused for any other."""
        if self.marker() is None:
            if not self.path.exists() or not any(self.path.iterdir()):
                return
            raise DemoDirRefused(f"{self.path} is not a keel demo directory; --reset only "
                                 "empties a directory the demo made")
        for entry in self.path.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()

    # --- the admin key -----------------------------------------------------------------------

    def admin_key(self) -> str | None:
        try:
            return (self.path / ADMIN_KEY).read_text(encoding="ascii").strip() or None
        except OSError:
            return None

    def keep_admin_key(self, key: str) -> None:
        """Kept in the directory (owner-only), so every run can print it: the demo's data
        is made up, and its key opens nothing else."""
        path = self.path / ADMIN_KEY
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(key + "\n")

    def settings(self, port: int = 8080) -> Settings:
        """The demo's settings: its own config file and store, on 127.0.0.1:``port``."""
        return DemoSettings(config=str(CONFIG_FILE), data_dir=str(self.path),
                            host="127.0.0.1", port=port)


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False
