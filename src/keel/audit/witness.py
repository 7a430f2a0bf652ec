"""The audit log's witness: every checkpoint published where the database cannot rewrite it.

A checkpoint in the database proves nothing to someone who can rewrite the database: they
can delete it with the entries, or recompute the whole chain and checkpoint that. So each
checkpoint, once committed, is also published to the sinks of ``KEEL_AUDIT_WITNESS``:

- a file (default ``<data_dir>/audit-witness.jsonl``), opened with ``O_APPEND`` and written
  one JSON line per checkpoint, fsynced; point it at storage the database's owner cannot
  rewrite (an append-only file, a log shipper's spool, another machine's mount);
- an ``http(s)://`` URL, sent the same JSON by POST from a background thread: a sink that
  fails or is slow is logged and never delays or fails the append.

A witness line::

    {"format": "keel-audit-witness", "version": 1, "id": 4, "size": 400, "root": hex,
     "head": hex, "at": 1767225600.5, "key_id": hex | null, "signature": hex | null,
     "peaks": [hex, ...]}

``root`` is the Merkle tree head of entries 1..size, ``head`` the hash of entry ``size``,
``signature`` the checkpoint's HMAC (``chain.sign``), ``peaks`` the tree's peaks (they let a
verifier name the first rewritten entry). ``read_known`` reads a witness file, or the
checkpoints of an exported bundle, as checkpoints known from outside the database;
``AuditLog.verify`` checks the log against them.
"""

from __future__ import annotations

import asyncio
import http.client
import logging
import os
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from keel.audit.bundle import is_hex as _is_hex
from keel.errors import ConfigError

log = logging.getLogger("keel.audit")

WITNESS_FORMAT = "keel-audit-witness"
WITNESS_FILE = "audit-witness.jsonl"  # in the data directory, when KEEL_AUDIT_WITNESS is unset
LINE_FIELDS = ("id", "size", "root", "head", "at", "key_id", "signature", "peaks")
SAME_FIELDS = ("size", "root", "head", "at", "key_id", "signature")  # a stored twin's
_OFF = {"none", "off"}


class WitnessError(ValueError):
    """A witness file (or a given checkpoint) that cannot be read as checkpoints; the
    message names the file, the line and what is wrong."""


def witness_line(cp: Mapping[str, Any]) -> bytes:
    """The JSON line published for a checkpoint (``cp`` as ``AuditLog`` returns it)."""
    peaks = cp.get("peaks")
    if isinstance(peaks, str):  # as stored: JSON text
        peaks = orjson.loads(peaks)
    return orjson.dumps({"format": WITNESS_FORMAT, "version": 1,
                         **{k: cp.get(k) for k in LINE_FIELDS}, "peaks": peaks}) + b"\n"


class FileSink:
    """Appends each line to a file (created with its directory if missing)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __str__(self) -> str:
        return str(self.path)

    def publish(self, line: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)  # one write: concurrent appenders never interleave a line
            os.fsync(fd)
        finally:
            os.close(fd)


class HttpSink:
    """POSTs each line (``application/json``) from a thread of its own; a failure is
    logged. The threads are not daemons, so a short-lived CLI process still delivers."""

    def __init__(self, url: str, *, timeout_s: float = 5.0) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()

    def __str__(self) -> str:  # without credentials or query (either may hold a token)
        u = urllib.parse.urlsplit(self.url)
        host = u.hostname or ""
        return f"{u.scheme}://{host}{f':{u.port}' if u.port else ''}{u.path}"

    def publish(self, line: bytes) -> None:
        t = threading.Thread(target=self._post, args=(line,), name="keel-audit-witness")
        with self._lock:
            self._threads.add(t)
        t.start()

    def _post(self, line: bytes) -> None:
        try:
            req = urllib.request.Request(self.url, data=line, method="POST",
                                         headers={"content-type": "application/json"})
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                resp.read()
        except (OSError, ValueError, http.client.HTTPException) as exc:  # refused, timed
            # out, an HTTP 4xx/5xx, a bad URL or a garbled answer
            log.error("could not publish an audit checkpoint to the witness %s: %s", self,
                      exc)
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    def drain(self, timeout_s: float | None = None) -> None:
        """Wait for the checkpoints being sent (at most ``timeout_s`` for each)."""
        with self._lock:
            pending = list(self._threads)
        for t in pending:
            t.join(timeout_s)


Sink = FileSink | HttpSink


class Witness:
    """Where checkpoints are published (``sinks``); ``files`` are read back by verify."""

    def __init__(self, sinks: Sequence[Sink] = ()) -> None:
        self.sinks = list(sinks)

    @classmethod
    def from_setting(cls, value: str | None, data_dir: str) -> Witness:
        """``KEEL_AUDIT_WITNESS``: unset, the file ``<data_dir>/audit-witness.jsonl``;
        ``none``, no witness; otherwise file paths and http(s) URLs, comma-separated."""
        if value is None:
            return cls([FileSink(Path(data_dir) / WITNESS_FILE)])
        if value.strip().lower() in _OFF:
            return cls()
        sinks: list[Sink] = []
        for item in (v.strip() for v in value.split(",")):
            if not item:
                continue
            scheme = item.split("://", 1)[0].lower() if "://" in item else None
            if scheme in ("http", "https"):
                sinks.append(HttpSink(item))
            elif scheme is not None:
                raise ConfigError(f"KEEL_AUDIT_WITNESS: '{scheme}://' is not a witness keel "
                                  "can write; use a file path or an http(s):// URL")
            else:
                sinks.append(FileSink(Path(item).expanduser()))
        if not sinks:
            raise ConfigError("KEEL_AUDIT_WITNESS is empty; name a file or an http(s):// "
                              "URL, or set it to 'none' to publish checkpoints nowhere")
        return cls(sinks)

    @property
    def files(self) -> list[Path]:
        return [s.path for s in self.sinks if isinstance(s, FileSink)]

    async def publish(self, cp: Mapping[str, Any]) -> None:
        """Publish a committed checkpoint to every sink; failures are logged, not raised."""
        line = witness_line(cp)
        for sink in self.sinks:
            if isinstance(sink, HttpSink):
                sink.publish(line)
                continue
            try:
                await asyncio.to_thread(sink.publish, line)
            except OSError as exc:
                log.error("could not append audit checkpoint #%s to the witness file %s: "
                          "%s", cp.get("id"), sink, exc)

    def drain(self, timeout_s: float | None = None) -> None:
        for sink in self.sinks:
            if isinstance(sink, HttpSink):
                sink.drain(timeout_s)


# --- reading checkpoints known from outside the database -------------------------------------


def _checked(raw: Any, where: str) -> dict[str, Any]:
    """A checkpoint read from ``where``, its fields checked; raises WitnessError."""
    if not isinstance(raw, Mapping):
        raise WitnessError(f"{where}: not a JSON object")
    size, cid, at = raw.get("size"), raw.get("id"), raw.get("at")
    problems = []
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        problems.append("'size' must be a positive integer")
    if cid is not None and (not isinstance(cid, int) or isinstance(cid, bool)):
        problems.append("'id' must be an integer")
    for name in ("root", "head"):
        if not _is_hex(raw.get(name)):
            problems.append(f"'{name}' must be a 64-digit hex hash")
    if not isinstance(at, int | float) or isinstance(at, bool):
        problems.append("'at' must be a time in epoch seconds")
    if raw.get("signature") is not None and not _is_hex(raw.get("signature")):
        problems.append("'signature' must be a 64-digit hex HMAC or null")
    if raw.get("key_id") is not None and not isinstance(raw.get("key_id"), str):
        problems.append("'key_id' must be a string or null")
    peaks = raw.get("peaks")
    if peaks is not None and not (isinstance(peaks, list) and all(_is_hex(p) for p in peaks)):
        problems.append("'peaks' must be a list of hex hashes")
    if problems:
        raise WitnessError(f"{where}: not a checkpoint ({'; '.join(problems)})")
    return {**{k: raw.get(k) for k in LINE_FIELDS}, "source": where}


def read_known(path: Path) -> list[dict[str, Any]]:
    """The checkpoints in a witness file (JSON lines) or an exported bundle (one JSON
    document), each with ``source`` saying where it was read."""
    data = path.read_bytes()
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        doc = None
    if isinstance(doc, Mapping) and doc.get("format") == "keel-audit-bundle":
        cps = doc.get("checkpoints")
        if not isinstance(cps, list):
            raise WitnessError(f"bundle {path}: 'checkpoints' is not a list")
        return [_checked(c, f"from the bundle {path}") for c in cps]
    out = []
    for n, raw_line in enumerate(data.splitlines(), 1):
        if not raw_line.strip():
            continue
        where = f"witnessed in {path} line {n}"
        try:
            line = orjson.loads(raw_line)
        except orjson.JSONDecodeError as exc:
            raise WitnessError(f"{path} line {n} is not JSON ({exc}): the witness file is "
                               "damaged") from None
        if not isinstance(line, Mapping) or line.get("format") != WITNESS_FORMAT:
            raise WitnessError(f"{path} line {n} is not a keel audit witness line "
                               f"('format' is not '{WITNESS_FORMAT}')")
        out.append(_checked(line, where))
    return out


def parse_known(text: str) -> dict[str, Any]:
    """``SIZE:TREEHEAD`` (as ``keel audit checkpoint`` prints them) as a known checkpoint."""
    size, _, root = text.partition(":")
    root = root.strip().lower()
    if not size.strip().isascii() or not size.strip().isdigit() or int(size) < 1 \
            or not _is_hex(root):
        raise WitnessError(f"'{text[:80]}' is not SIZE:TREEHEAD (a positive entry count, a "
                           "colon and the 64-digit hex tree head, e.g. 400:3f5a...)")
    return {"size": int(size), "root": root, "id": None, "source": "given with --checkpoint"}
