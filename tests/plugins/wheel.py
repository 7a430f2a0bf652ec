"""Plugin distributions for tests: a wheel written by hand (PEP 427: the modules,
METADATA, WHEEL, entry_points.txt and a RECORD with hashes), installed by pip into a
directory of its own, offline. Nothing is installed into keel's environment: a process sees
the plugin only with that directory on its path (``PYTHONPATH``, ``sys.path``)."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

ACME = Path(__file__).with_name("keel_acme.py")
ACME_ENTRY_POINTS = {
    "keel.providers": {"acme-echo": "keel_acme:EchoProvider"},
    "keel.scanners": {"shout": "keel_acme:ShoutScanner"},
    "keel.scorers": {"greeted": "keel_acme:GreetedScorer"},
}


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def build_wheel(out_dir: Path, name: str, version: str, modules: dict[str, str],
                entry_points: dict[str, dict[str, str]]) -> Path:
    """A pure-Python wheel of ``modules`` (path in the wheel -> source) declaring
    ``entry_points`` (group -> {name: "module:attr"})."""
    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    files: dict[str, bytes] = {path: text.encode() for path, text in modules.items()}
    files[f"{info}/METADATA"] = (f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                                 "Summary: a keel plugin built by keel's tests\n").encode()
    files[f"{info}/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: keel-tests\n"
                              b"Root-Is-Purelib: true\nTag: py3-none-any\n")
    files[f"{info}/entry_points.txt"] = "".join(
        f"[{group}]\n" + "".join(f"{n} = {v}\n" for n, v in names.items()) + "\n"
        for group, names in entry_points.items()).encode()
    record = [_record_line(path, data) for path, data in files.items()]
    files[f"{info}/RECORD"] = ("\n".join([*record, f"{info}/RECORD,,"]) + "\n").encode()
    wheel = out_dir / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in files.items():
            zf.writestr(path, data)
    return wheel


def pip_install(wheel: Path, target: Path) -> Path:
    """Install ``wheel`` into ``target`` with pip, offline and without dependencies."""
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index",
                    "--no-deps", "--disable-pip-version-check", "--target", str(target),
                    str(wheel)], check=True, capture_output=True, timeout=120)
    return target


def install_plugin(base: Path, name: str, modules: dict[str, str],
                   entry_points: dict[str, dict[str, str]], version: str = "0.1.0") -> Path:
    """Build and install one plugin distribution; the directory to put on the path."""
    out = base / f"{name}-wheel"
    out.mkdir(parents=True)
    return pip_install(build_wheel(out, name, version, modules, entry_points),
                       base / f"{name}-site")


def install_acme(base: Path) -> Path:
    """keel-acme 0.1.0 (tests/plugins/keel_acme.py) installed under ``base``."""
    return install_plugin(base, "keel-acme", {"keel_acme.py": ACME.read_text()},
                          ACME_ENTRY_POINTS)
