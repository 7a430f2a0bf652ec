"""The semantic index: normalised vectors in process memory, searched by brute force.

One bucket per (namespace, params_key); a lookup only scores the vectors of its own
bucket. Vectors are normalised on insert, so cosine similarity is a dot product. The
index is bounded (the oldest entry goes first) and entries expire. It lives in this
process only: each replica builds its own.

When numpy is importable the dot products run as one matrix-vector product per bucket
(the matrix is rebuilt lazily after the bucket changes); otherwise in pure Python, which
is fine up to a few thousand vectors per bucket. numpy is optional, never required.
"""

from __future__ import annotations

import importlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from operator import mul
from typing import Any


def _load_numpy() -> Any:
    try:
        return importlib.import_module("numpy")
    except ImportError:
        return None


_np: Any = _load_numpy()  # optional acceleration

Bucket = tuple[str, str]
_EPS = 1e-9  # a vector compared with itself may score 0.9999999999999998


def normalise(vector: Sequence[float]) -> tuple[float, ...] | None:
    """The unit vector in the direction of ``vector``; None for a zero or non-finite one."""
    norm = math.sqrt(math.fsum(v * v for v in vector))
    if not norm or not math.isfinite(norm):
        return None
    return tuple(v / norm for v in vector)


class _Entry:
    __slots__ = ("expires", "value", "vector")

    def __init__(self, vector: tuple[float, ...], value: bytes, expires: float) -> None:
        self.vector, self.value, self.expires = vector, value, expires


class _Bucket:
    __slots__ = ("entries", "matrix")

    def __init__(self) -> None:
        self.entries: dict[int, _Entry] = {}
        self.matrix: tuple[int, list[int], Any] | None = None  # (dims, ids, numpy matrix)

    def scored(self, query: tuple[float, ...], floor: float) -> list[tuple[float, int]]:
        """(similarity, id) of the same-dimension entries scoring at least ``floor``."""
        dims = len(query)
        if _np is not None:
            if self.matrix is None or self.matrix[0] != dims:
                ids = [i for i, e in self.entries.items() if len(e.vector) == dims]
                rows = [self.entries[i].vector for i in ids]
                mat = _np.array(rows, dtype=_np.float64).reshape(len(ids), dims)
                self.matrix = (dims, ids, mat)
            _, ids, mat = self.matrix
            scores = mat @ _np.asarray(query, dtype=_np.float64)
            hits = _np.nonzero(scores >= floor)[0]
            return [(float(scores[k]), ids[k]) for k in hits]
        out = []
        for i, e in self.entries.items():
            if len(e.vector) == dims:
                score = sum(map(mul, query, e.vector))
                if score >= floor:
                    out.append((score, i))
        return out


class SemanticIndex:
    def __init__(self, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self._clock = clock
        self._buckets: dict[Bucket, _Bucket] = {}
        self._order: OrderedDict[int, Bucket] = OrderedDict()  # insertion order, oldest first
        self._next_id = 0

    def __len__(self) -> int:
        return len(self._order)

    def add(self, bucket: Bucket, vector: Sequence[float], value: bytes, ttl_s: float) -> bool:
        unit = normalise(vector)
        if unit is None or ttl_s <= 0 or self.max_entries <= 0:
            return False
        b = self._buckets.setdefault(bucket, _Bucket())
        self._next_id += 1
        b.entries[self._next_id] = _Entry(unit, value, self._clock() + ttl_s)
        b.matrix = None
        self._order[self._next_id] = bucket
        while len(self._order) > self.max_entries:
            oldest, where = self._order.popitem(last=False)
            self._drop(where, oldest, unlink=False)
        return True

    def search(self, bucket: Bucket, vector: Sequence[float],
               threshold: float) -> tuple[bytes, float] | None:
        """The value and similarity of the most similar live entry scoring >= threshold."""
        b = self._buckets.get(bucket)
        unit = normalise(vector) if b is not None else None
        if b is None or unit is None:
            return None
        now = self._clock()
        for score, entry_id in sorted(b.scored(unit, threshold - _EPS), reverse=True):
            entry = b.entries[entry_id]
            if entry.expires > now:
                return entry.value, min(score, 1.0)
            self._drop(bucket, entry_id)
        return None

    def clear(self) -> None:
        self._buckets.clear()
        self._order.clear()

    def _drop(self, bucket: Bucket, entry_id: int, *, unlink: bool = True) -> None:
        if unlink:
            self._order.pop(entry_id, None)
        b = self._buckets.get(bucket)
        if b is None:
            return
        b.entries.pop(entry_id, None)
        b.matrix = None
        if not b.entries:
            del self._buckets[bucket]
