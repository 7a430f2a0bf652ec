"""Small synthetic windows for the tests: Zipf-like words, optionally a new topic."""

from __future__ import annotations

import random

VOCAB = [f"w{i}" for i in range(2000)]
TOPIC = ["refund", "chargeback", "invoice", "dispute"]


def texts(seed: int, n: int, *, topic_share: float = 0.0, prefix: str = "t",
          words: int = 20) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        ws = [VOCAB[min(len(VOCAB) - 1, int(rng.paretovariate(1.1)) - 1)]
              for _ in range(rng.randint(words // 2, words * 2))]
        if topic_share and rng.random() < topic_share:
            ws[::3] = [rng.choice(TOPIC) for _ in ws[::3]]
        out.append((f"{prefix}{i}", " ".join(ws)))
    return out
