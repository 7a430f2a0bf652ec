"""Merkle tree hashing in the style of RFC 6962 (Certificate Transparency), section 2.1.

Leaves and inner nodes are domain-separated, so a leaf can never be passed off as a node::

    leaf hash  = SHA-256(0x00 || leaf bytes)
    node hash  = SHA-256(0x01 || left hash || right hash)
    tree head  = MTH(D[0:n]): for n > 1, split at k, the largest power of two below n:
                 node(MTH(D[0:k]), MTH(D[k:n])); MTH of no leaves is SHA-256 of nothing.

A ``Frontier`` is the compact form of a tree of ``n`` leaves: the heads of its perfect
subtrees, one per set bit of ``n``, largest first ("peaks"). Appending a leaf merges equal
peaks like a binary counter, and the tree head is the peaks folded from the right, which is
exactly RFC 6962's split rule. So the head of a log of any size is computed in one pass, in
``O(log n)`` memory; and a verifier that is given the peaks of the first ``m`` leaves can
append leaves ``m..n`` and check the head of ``n`` without seeing the first ``m`` leaves.

This module is pure (hashlib only), so anyone can re-implement it to check a bundle.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


class Frontier:
    """An append-only Merkle tree kept as its peaks (see the module docstring)."""

    __slots__ = ("_peaks", "size")

    def __init__(self, size: int = 0, peaks: Sequence[bytes] = ()) -> None:
        if size < 0 or len(peaks) != bin(size).count("1"):
            raise ValueError(f"a tree of {size} leaves has {bin(max(size, 0)).count('1')} "
                             f"peaks, not {len(peaks)}")
        if any(len(p) != 32 for p in peaks):
            raise ValueError("every peak is a 32-byte SHA-256 hash")
        self.size = size
        self._peaks = list(peaks)

    @property
    def peaks(self) -> list[bytes]:
        return list(self._peaks)

    def append(self, leaf: bytes) -> None:
        """Add a leaf *hash* (see ``leaf_hash``)."""
        self._peaks.append(leaf)
        self.size += 1
        n = self.size
        while n & 1 == 0:  # the new leaf completed perfect subtrees: merge them
            right = self._peaks.pop()
            left = self._peaks.pop()
            self._peaks.append(node_hash(left, right))
            n >>= 1

    def extend(self, leaves: Iterable[bytes]) -> None:
        for leaf in leaves:
            self.append(leaf)

    def root(self) -> bytes:
        if not self._peaks:
            return EMPTY_ROOT
        acc = self._peaks[-1]
        for peak in reversed(self._peaks[:-1]):
            acc = node_hash(peak, acc)
        return acc

    def copy(self) -> Frontier:
        return Frontier(self.size, self._peaks)


def tree_head(leaves: Sequence[bytes]) -> bytes:
    """MTH over leaf hashes, by the recursive definition (a reference for tests and tools)."""
    n = len(leaves)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaves[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return node_hash(tree_head(leaves[:k]), tree_head(leaves[k:]))
