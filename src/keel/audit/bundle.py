"""Offline verification of an exported audit bundle (``keel audit export``).

A bundle is JSON::

    {"format": "keel-audit-bundle", "version": 1, "exported_at": ..., "since": ...,
     "start": {"size": m, "peaks": [hex, ...], "head": hex},   # the log before the entries
     "end": {"size": n, "root": hex},                          # the tree head after them
     "entries": [{seq, at, actor, action, target, before_hash, after_hash, detail,
                  prev_hash, hash}, ...],                     # seq m+1 .. n
     "checkpoints": [{id, size, root, head, at, key_id, signature, peaks}, ...],
     "seal": hex}        # HMAC of exported_at, since, start.size, end (None without a key)

The entries are checked as a chain from ``start.head``, their Merkle tree is grown from the
peaks of the first ``m`` leaves, and every checkpoint in the bundle must match the tree
head at its size; the last entry must be entry ``end.size``, covered by a checkpoint with
``end.root``, and with a key both the checkpoints and the seal must be signed with it. So
nothing in the bundle can be changed, removed, added, reordered or cut short without the
check failing -- short of forging a signature, which needs the key.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

from keel.audit.chain import GENESIS, Verifier, VerifyReport, seal

BUNDLE_FORMAT = "keel-audit-bundle"


def _bad(problem: str) -> VerifyReport:
    return VerifyReport(ok=False, problem=f"not a valid keel audit bundle: {problem}")


def is_hex(value: Any, n: int = 64) -> bool:
    """``value`` is a hex string of ``n`` characters (a SHA-256 digest by default)."""
    if not isinstance(value, str) or len(value) != n:
        return False
    try:
        bytes.fromhex(value)
    except ValueError:
        return False
    return True


def verify_bundle(bundle: Any, *, key: str | None) -> VerifyReport:
    key = key or None
    if not isinstance(bundle, Mapping) or bundle.get("format") != BUNDLE_FORMAT:
        return _bad(f"'format' is not '{BUNDLE_FORMAT}'")
    if bundle.get("version") != 1:
        return _bad(f"unsupported version {bundle.get('version')!r} (this keel reads 1)")
    start, entries, checkpoints = (bundle.get("start"), bundle.get("entries"),
                                   bundle.get("checkpoints"))
    if not (isinstance(start, Mapping) and isinstance(entries, list)
            and isinstance(checkpoints, list)):
        return _bad("'start', 'entries' and 'checkpoints' are required")
    size, peaks, head = start.get("size"), start.get("peaks"), start.get("head")
    if (not isinstance(size, int) or isinstance(size, bool) or size < 0
            or not isinstance(peaks, list) or not all(is_hex(p) for p in peaks)
            or not isinstance(head, str) or not is_hex(head)
            or (size == 0 and head != GENESIS)):
        return _bad("'start' must have size, peaks (hex hashes) and head")
    if not all(isinstance(e, Mapping) for e in entries):
        return _bad("every entry must be an object")
    if not all(isinstance(c, Mapping) and isinstance(c.get("size"), int) for c in checkpoints):
        return _bad("every checkpoint must be an object with a size")
    try:
        verifier = Verifier(checkpoints, key=key, start_size=size,
                            start_peaks=[bytes.fromhex(p) for p in peaks], start_head=head)
    except ValueError as exc:
        return _bad(f"'start': {exc}")
    for entry in entries:
        if not verifier.feed(entry):
            break
    report = verifier.finish()
    end = bundle.get("end")
    end_size = end.get("size") if isinstance(end, Mapping) else None
    ends_right = end_size == verifier.size and isinstance(end, Mapping) and (
        end_size == 0 or any(c.get("size") == end_size and c.get("root") == end.get("root")
                             for c in checkpoints))
    if report.ok and not ends_right:
        report.ok = False
        if isinstance(end_size, int) and end_size > verifier.size:
            report.broken_seq = verifier.size + 1
        report.problem = (f"the bundle ends at entry {verifier.size}, but says it holds "
                          f"entries up to {end_size!r} under the root of a checkpoint: it was "
                          "cut short or altered")
    if report.ok and key is not None:
        stated = bundle.get("seal")
        try:
            good = isinstance(stated, str) and hmac.compare_digest(seal(key, bundle), stated)
        except (KeyError, TypeError):
            good = False
        if not good:
            report.ok = False
            report.problem = ("the bundle's seal does not match KEEL_AUDIT_KEY: its range or "
                              "time was altered, or it was exported without the key")
    if report.ok and (size or entries) and report.uncovered:
        report.ok = False
        report.broken_seq = verifier.size - report.uncovered + 1
        what = "signed checkpoint" if key else "checkpoint"
        report.problem = (f"entries {report.broken_seq}..{verifier.size} are not covered by a "
                          f"{what} in the bundle, so they cannot be trusted")
    if report.ok and report.covered is None and (size or entries):
        report.ok = False
        report.problem = "the bundle has no checkpoint"
    if report.ok and key is not None and report.covered is not None and not report.signed:
        report.ok = False
        report.broken_checkpoint = report.covered.get("id")
        report.problem = ("the checkpoint covering the bundle is unsigned, so it proves "
                          "nothing about who wrote it: export with KEEL_AUDIT_KEY set")
    return report
