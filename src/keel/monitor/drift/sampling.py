"""A bounded, seeded reservoir: keep a uniform sample of at most ``capacity`` items out of
a stream of any length, in O(capacity) memory.

Li's Algorithm L: after the reservoir fills, it draws how many items to skip before the
next replacement, so a long stream costs a few random numbers per kept item rather than
one per item seen. The same seed and the same stream give the same sample.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from typing import Generic, TypeVar

T = TypeVar("T")


class Reservoir(Generic[T]):
    """``add`` or ``extend`` items; ``items`` is a uniform sample of those seen."""

    def __init__(self, capacity: int, seed: int | None = 0) -> None:
        if capacity < 1:
            raise ValueError("a reservoir holds at least one item")
        self.capacity = capacity
        self.seen = 0
        self._items: list[T] = []
        self._rng = random.Random(seed)
        self._w = 1.0
        self._next = 0  # the index (0-based, in the stream) of the next item kept

    @property
    def items(self) -> list[T]:
        return list(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def _advance(self) -> None:
        rng = self._rng
        self._w *= math.exp(math.log(1.0 - rng.random()) / self.capacity)
        # 1 - random() lies in (0, 1], so neither log below is of zero
        skip = math.floor(math.log(1.0 - rng.random()) / math.log1p(-self._w))
        self._next = self.seen + skip

    def add(self, item: T) -> None:
        index = self.seen
        self.seen += 1
        if len(self._items) < self.capacity:
            self._items.append(item)
            if len(self._items) == self.capacity:
                self._advance()
            return
        if index == self._next:
            self._items[self._rng.randrange(self.capacity)] = item
            self._advance()

    def extend(self, items: Iterable[T]) -> None:
        for item in items:
            self.add(item)
