"""Entries, checkpoints and their verification, independent of where they are stored.

An entry is one governance event. Its hash is an RFC 6962 leaf hash of its canonical bytes,
which include the previous entry's hash, so the entries form a hash chain as well as the
leaves of a Merkle tree::

    canonical = JSON, keys sorted, no whitespace, of
                {seq, at, actor, action, target, before_hash, after_hash, detail, prev_hash}
                (``detail`` is the stored JSON *text*, hashed as it is, not re-encoded)
    hash      = hex(SHA-256(0x00 || canonical))          prev_hash of entry 1: 64 zeros

A checkpoint states the tree head of the first ``size`` entries and the hash of entry
``size``; with a key it is signed: ``HMAC-SHA256(key, "keel-audit-checkpoint/1\\n" ||
JSON{at, head, key_id, root, size})``. ``key_id`` names the key without revealing it.

``Verifier`` checks entries fed in order (from the store, or from an exported bundle that
starts after a prefix it only knows by its Merkle peaks) and stops at the first problem.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from keel.audit.merkle import Frontier, leaf_hash

GENESIS = "0" * 64  # prev_hash of the first entry
ENTRY_FIELDS = ("seq", "at", "actor", "action", "target", "before_hash", "after_hash",
                "detail", "prev_hash", "hash")
CANONICAL_FIELDS = ENTRY_FIELDS[:-1]
CHECKPOINT_FIELDS = ("id", "size", "root", "head", "at", "key_id", "signature", "peaks")
_SIG_DOMAIN = b"keel-audit-checkpoint/1\n"


def canonical(entry: Mapping[str, Any]) -> bytes:
    return orjson.dumps({k: entry[k] for k in CANONICAL_FIELDS}, option=orjson.OPT_SORT_KEYS)


def entry_hash(entry: Mapping[str, Any]) -> str:
    return leaf_hash(canonical(entry)).hex()


def content_hash(value: Any) -> str:
    """SHA-256 of a JSON-able value in canonical form: the before/after hash of a change."""
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()


def key_id(key: str) -> str:
    """A short public name of a signing key (an HMAC of a constant: reveals nothing)."""
    return hmac.new(key.encode(), b"keel-audit-key-id", hashlib.sha256).hexdigest()[:16]


def sign(key: str, *, size: int, root: str, head: str, at: float) -> str:
    msg = _SIG_DOMAIN + orjson.dumps({"at": at, "head": head, "key_id": key_id(key),
                                      "root": root, "size": size},
                                     option=orjson.OPT_SORT_KEYS)
    return hmac.new(key.encode(), msg, hashlib.sha256).hexdigest()


def seal(key: str, bundle: Mapping[str, Any]) -> str:
    """The HMAC that binds an exported bundle's range (so it cannot be cut short to an
    earlier checkpoint): over its time, ``since``, ``start.size`` and ``end``."""
    msg = b"keel-audit-bundle/1\n" + orjson.dumps(
        {"exported_at": bundle["exported_at"], "since": bundle["since"],
         "start": bundle["start"]["size"], "end": bundle["end"], "key_id": key_id(key)},
        option=orjson.OPT_SORT_KEYS)
    return hmac.new(key.encode(), msg, hashlib.sha256).hexdigest()


def signature_ok(key: str, cp: Mapping[str, Any]) -> bool:
    sig = cp.get("signature")
    if not isinstance(sig, str):
        return False
    want = sign(key, size=cp["size"], root=cp["root"], head=cp["head"], at=cp["at"])
    return hmac.compare_digest(want, sig)


def _bits(n: int) -> list[int]:
    """The powers of two that sum to ``n``, largest first (the sizes of a tree's peaks)."""
    return [1 << i for i in range(n.bit_length() - 1, -1, -1) if n >> i & 1]


def _label(cp: Mapping[str, Any]) -> str:
    """How a message names a checkpoint: its id and size, and where it is known from when
    it comes from outside the database (a witness file, a bundle, the command line)."""
    where = f", {cp['source']}" if cp.get("source") is not None else ""
    name = f"checkpoint #{cp['id']}" if cp.get("id") is not None else "the checkpoint"
    return f"{name} (size {cp['size']}{where})"


def _short(h: Any) -> str:
    return f"{h[:12]}..." if isinstance(h, str) and len(h) > 12 else repr(h)


@dataclass
class VerifyReport:
    """The outcome of a verification. ``ok`` is False at the first problem: ``broken_seq``
    is the first entry that cannot be trusted (for a rewrite detected by a checkpoint, the
    first entry that checkpoint covers beyond the previous good one), ``broken_checkpoint``
    the checkpoint involved, ``problem`` what is wrong."""

    ok: bool = True
    entries: int = 0  # entries checked
    first_seq: int | None = None
    last_seq: int | None = None
    checkpoints: int = 0  # checked
    covered: dict[str, Any] | None = None  # the last good checkpoint (a signed one first)
    signed: bool = False  # `covered` is signed and its signature was checked
    uncovered: int = 0  # entries after `covered`
    witnessed: int = 0  # checkpoints known from outside the database that agree with it
    witnessed_size: int | None = None  # the largest of them
    broken_seq: int | None = None
    broken_checkpoint: int | None = None
    problem: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "entries": self.entries, "first_seq": self.first_seq,
                "last_seq": self.last_seq, "checkpoints": self.checkpoints,
                "covered_by": self.covered, "signed": self.signed, "uncovered": self.uncovered,
                "witnessed": self.witnessed, "witnessed_size": self.witnessed_size,
                "broken_seq": self.broken_seq, "broken_checkpoint": self.broken_checkpoint,
                "problem": self.problem, "notes": self.notes}


class Verifier:
    """Feed entries in ``seq`` order; ``finish`` returns the report.

    ``key``: checkpoint signatures are checked with it (without it, signed checkpoints are
    still checked against the entries, and a note says their signatures were not).
    ``start``: a verifier of a bundle starts after entry ``size``, from the Merkle peaks and
    the hash of that entry."""

    def __init__(self, checkpoints: Iterable[Mapping[str, Any]], *, key: str | None,
                 start_size: int = 0, start_peaks: Iterable[bytes] = (),
                 start_head: str = GENESIS) -> None:
        self.key = key or None  # an empty KEEL_AUDIT_KEY is no key
        self.kid = key_id(key) if key else None
        self.frontier = Frontier(start_size, list(start_peaks))
        self.head = start_head
        self.report = VerifyReport()
        self._good_size = start_size  # entries up to here agree with a good checkpoint
        self._unchecked_sigs = 0
        self._unsigned = 0
        self._pending = sorted((dict(c) for c in checkpoints if c["size"] >= start_size),
                               key=lambda c: (c["size"], c.get("id") is None, c.get("id") or 0))
        self._check_checkpoints()

    @property
    def size(self) -> int:
        return self.frontier.size

    def _fail(self, problem: str, *, seq: int | None = None, cp: int | None = None) -> bool:
        r = self.report
        r.ok, r.problem, r.broken_seq, r.broken_checkpoint = False, problem, seq, cp
        return False

    def feed(self, entry: Mapping[str, Any]) -> bool:
        """Check the next entry; False once something is broken (stop feeding)."""
        if not self.report.ok:
            return False
        expect = self.size + 1
        seq = entry.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool):
            return self._fail(f"entry {expect}: its seq is {seq!r}, not a number", seq=expect)
        if seq != expect:
            what = (f"entry {expect} is missing (the next stored entry is {seq})" if seq > expect
                    else f"entry {seq} appears again, or out of order, after entry {expect - 1}")
            return self._fail(what, seq=expect)
        try:
            computed = entry_hash(entry)
        except (KeyError, TypeError) as exc:
            return self._fail(f"entry {seq}: malformed ({exc})", seq=seq)
        if entry.get("prev_hash") != self.head:
            return self._fail(
                f"entry {seq}: prev_hash {_short(entry.get('prev_hash'))} is not the hash of "
                f"entry {seq - 1} ({_short(self.head)}): an entry before it was deleted, "
                "inserted or moved", seq=seq)
        if entry.get("hash") != computed:
            return self._fail(f"entry {seq}: its content does not match its hash (stored "
                              f"{_short(entry.get('hash'))}, computed {_short(computed)}): "
                              "the entry was altered", seq=seq)
        self.frontier.append(bytes.fromhex(computed))
        self.head = computed
        r = self.report
        r.entries += 1
        r.first_seq = r.first_seq or seq
        r.last_seq = seq
        return self._check_checkpoints()

    def _check_checkpoints(self) -> bool:
        while self._pending and self._pending[0]["size"] == self.size:
            if not self._check(self._pending.pop(0)):
                return False
        return True

    def _signature(self, cp: Mapping[str, Any]) -> str | None:
        """None if acceptable; otherwise what is wrong with the signature."""
        if "signature" not in cp:  # a tree head given by hand: nothing to authenticate
            return None
        if cp.get("signature") is None:
            self._unsigned += 1
            return None
        if self.key is None:
            self._unchecked_sigs += 1
            return None
        if cp.get("key_id") != self.kid:
            return (f"signed with key id {cp.get('key_id')}, but KEEL_AUDIT_KEY is key id "
                    f"{self.kid}: set the key it was signed with")
        if not signature_ok(self.key, cp):
            return ("its signature does not match KEEL_AUDIT_KEY: the checkpoint was forged "
                    "or altered")
        return None

    def _check(self, cp: Mapping[str, Any]) -> bool:
        cid = cp.get("id")
        label = _label(cp)
        try:
            bad_sig = self._signature(cp)
        except (KeyError, TypeError, ValueError) as exc:
            return self._fail(f"{label}: malformed ({exc})", cp=cid)
        if bad_sig:
            return self._fail(f"{label}: {bad_sig}", cp=cid)
        if cp.get("root") != self.frontier.root().hex():
            first, last = self._good_size + 1, int(cp["size"])
            narrowed = self._narrow(cp)
            if narrowed is not None:
                first, last = max(first, narrowed[0]), narrowed[1]
            kind = "signed" if cp.get("signature") is not None else "unsigned"
            where = f"entry {first}" if first == last else f"entries {first}..{last}"
            return self._fail(
                f"{where} do{'es' if first == last else ''} not match the tree head of {label}, "
                f"{kind}: entries were rewritten after it was made (the first altered entry "
                f"is {'this one' if first == last else 'among them'}), or the checkpoint was "
                "altered", seq=first, cp=cid)
        if self.size and "head" in cp and cp["head"] != self.head:
            if not self.report.entries:  # a bundle's starting point
                return self._fail(f"the hash of entry {self.size} the entries start from is "
                                  f"not the one {label} states: the start was altered", cp=cid)
            return self._fail(f"{label}: its head hash is not the hash of entry {self.size}: "
                              "the checkpoint was altered", cp=cid)
        self._good_size = cp["size"]
        if cp.get("source") is not None:  # known from outside: checked, covers nothing
            return True
        self.report.checkpoints += 1
        signed = cp.get("signature") is not None and self.key is not None
        if signed or not self.report.signed:
            self.report.covered = {k: cp.get(k) for k in CHECKPOINT_FIELDS if k != "peaks"}
            self.report.signed = signed
        return True

    def _narrow(self, cp: Mapping[str, Any]) -> tuple[int, int] | None:
        """The entries of the first perfect subtree where the checkpoint's stored peaks
        differ from the entries' (when those peaks reproduce its root, they are as
        trustworthy as the root itself)."""
        try:
            theirs = [bytes.fromhex(p) for p in cp["peaks"]]
            if Frontier(int(cp["size"]), theirs).root().hex() != cp["root"]:
                return None
        except (KeyError, TypeError, ValueError):
            return None
        offset, size = 0, int(cp["size"])
        for bit, (a, b) in zip(_bits(size), zip(theirs, self.frontier.peaks, strict=True),
                               strict=True):
            if a != b:
                return offset + 1, offset + bit
            offset += bit
        return None

    def finish(self) -> VerifyReport:
        r = self.report
        if r.ok and self._pending:  # checkpoints beyond the last stored entry: the largest
            cp = self._pending[-1]  # says how much is missing
            label = _label(cp)
            bad_sig = self._signature(cp)
            if bad_sig:
                self._fail(f"{label}: {bad_sig}", cp=cp.get("id"))
            else:
                self._fail(f"the log was truncated: {label} covers {cp['size']} entries but "
                           f"only {self.size} are there; entries {self.size + 1}.."
                           f"{cp['size']} are missing", seq=self.size + 1, cp=cp.get("id"))
        covered_size = r.covered["size"] if r.covered else 0
        r.uncovered = max(self.size - covered_size, 0)
        if self._unchecked_sigs:
            r.notes.append(f"{self._unchecked_sigs} signed checkpoint(s) not authenticated: "
                           "set KEEL_AUDIT_KEY to check their signatures")
        if self.key is None and self.size:
            r.notes.append("KEEL_AUDIT_KEY is not set: checkpoints prove the entries agree "
                           "with each other, not who wrote them")
        elif self._unsigned:
            r.notes.append(f"{self._unsigned} checkpoint(s) are unsigned (made by a process "
                           "without KEEL_AUDIT_KEY)")
        return r
