"""The in-process backend: plain dicts, updated with no await between check and update.

The event loop runs one callback at a time, so each ``admit``/``settle`` is atomic for the
process. Used when keel runs without Redis (one replica).
"""

from __future__ import annotations

from collections import OrderedDict, deque

from keel.limits.backend import WINDOW_S, Refusal, SoftCrossing
from keel.limits.rules import LimitTarget

_SWEEP_AT = 10_000  # windows/budgets held before idle ones are dropped


class Window:
    """A sliding 60 s window of 1-second buckets: ``[second, count]`` oldest first."""

    __slots__ = ("buckets", "total")

    def __init__(self) -> None:
        self.buckets: deque[list[int]] = deque()
        self.total = 0

    def purge(self, now_s: int) -> None:
        floor = now_s - WINDOW_S
        b = self.buckets
        while b and b[0][0] <= floor:
            self.total -= b.popleft()[1]

    def add(self, now_s: int, n: int) -> None:
        b = self.buckets
        if b and b[-1][0] >= now_s:
            b[-1][1] += n
        else:
            b.append([now_s, n])
        self.total += n

    def free_at(self, limit: int) -> float:
        """When the total drops under ``limit`` (the start of the second the bucket that
        has to go leaves the window)."""
        left = self.total
        for sec, n in self.buckets:
            left -= n
            if left < limit:
                return float(sec + WINDOW_S)
        return float(self.buckets[-1][0] + WINDOW_S) if self.buckets else 0.0


class Budget:
    """Spend and live reservations of one budget instance in one period (nano-USD)."""

    __slots__ = ("res", "reserved", "soft_warned", "spent")

    def __init__(self, spent: int = 0) -> None:
        self.spent = spent
        self.reserved = 0
        self.res: OrderedDict[str, tuple[int, float]] = OrderedDict()  # id -> (amount, expiry)
        self.soft_warned = False

    def purge(self, now: float) -> None:
        res = self.res
        while res:
            first = next(iter(res))
            amount, expiry = res[first]
            if expiry > now:
                break
            res.popitem(last=False)
            self.reserved -= amount
        if not res:
            self.reserved = 0


class MemoryBackend:
    name = "memory"

    def __init__(self, reservation_ttl_s: float) -> None:
        self.ttl = reservation_ttl_s
        self.windows: dict[str, Window] = {}
        self.budgets: dict[str, Budget] = {}
        self._windows_max = self._budgets_max = _SWEEP_AT

    def _window(self, key: str) -> Window:
        w = self.windows.get(key)
        if w is None:
            if len(self.windows) >= self._windows_max:
                self._sweep_windows()
            w = self.windows[key] = Window()
        return w

    def _budget(self, key: str) -> Budget:
        b = self.budgets.get(key)
        if b is None:
            if len(self.budgets) >= self._budgets_max:
                self._sweep_budgets()
            b = self.budgets[key] = Budget()
        return b

    def admit(self, limits: tuple[LimitTarget, ...], bkeys: list[tuple[str, str]], limits_nano:
              list[int], amount: int, rid: str, now: float) -> Refusal | None:
        """Check every limit and budget, then count in all of them or in none."""
        now_s = int(now)
        windows = []
        for i, t in enumerate(limits):
            w = self._window(t.key)
            w.purge(now_s)
            if w.total >= t.limit:
                return Refusal("limit", i, free_at=w.free_at(t.limit))
            windows.append(w)
        budgets = []
        for k, (bkey, _) in enumerate(bkeys):
            b = self._budget(bkey)
            b.purge(now)
            if b.spent + b.reserved + amount > limits_nano[k]:
                return Refusal("budget", k, spent=b.spent, reserved=b.reserved)
            budgets.append(b)
        for t, w in zip(limits, windows, strict=True):
            if t.kind == "rpm":
                w.add(now_s, 1)
        expiry = now + self.ttl
        for b in budgets:
            if rid not in b.res:
                b.res[rid] = (amount, expiry)
                b.reserved += amount
        return None

    def settle(self, tpm: tuple[LimitTarget, ...], bkeys: list[tuple[str, str]],
               softs: list[int], amount: int, rid: str, actual: int, tokens: int,
               now: float) -> list[SoftCrossing]:
        """Count tokens, drop the reservation (if it has not expired), add the spend."""
        if tokens > 0:
            now_s = int(now)
            for t in tpm:
                w = self._window(t.key)
                w.purge(now_s)
                w.add(now_s, tokens)
        crossed: list[SoftCrossing] = []
        for k, (bkey, _) in enumerate(bkeys):
            b = self._budget(bkey)
            held = b.res.pop(rid, None)
            if held is not None:
                b.reserved -= held[0]
                if not b.res:
                    b.reserved = 0
            if actual > 0:
                b.spent += actual
                soft = softs[k]
                if 0 <= soft <= b.spent and not b.soft_warned:
                    b.soft_warned = True
                    crossed.append((k, b.spent))
        return crossed

    def peek(self, bkeys: list[tuple[str, str]], now: float) -> list[tuple[int, int]]:
        out = []
        for bkey, _ in bkeys:
            b = self.budgets.get(bkey)
            if b is None:
                out.append((0, 0))
            else:
                b.purge(now)
                out.append((b.spent, b.reserved))
        return out

    def init(self, items: list[tuple[str, str, int, int]]) -> None:
        """Set the reconciled spend of budget instances: ``(key, res_key, spent, ttl)``."""
        for bkey, _, spent, _ in items:
            self._budget(bkey).spent = spent

    def instances(self, base: str) -> list[str]:
        """Budget keys starting with ``base`` (the instances of a ``*`` budget)."""
        return [k for k in self.budgets if k.startswith(base)]

    def _sweep_windows(self) -> None:
        newest = max((w.buckets[-1][0] for w in self.windows.values() if w.buckets), default=0)
        for key in [k for k, w in self.windows.items()
                    if not w.buckets or w.buckets[-1][0] <= newest - WINDOW_S]:
            del self.windows[key]
        self._windows_max = max(_SWEEP_AT, 2 * len(self.windows))

    def _sweep_budgets(self) -> None:
        for key in [k for k, b in self.budgets.items() if not b.res and not b.spent]:
            del self.budgets[key]
        self._budgets_max = max(_SWEEP_AT, 2 * len(self.budgets))
