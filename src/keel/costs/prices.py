"""Prices: a model's configured price, else keel's built-in list price, else none.

The built-in table is a convenience default, taken from the providers' public pricing
pages as of ``PRICES_AS_OF``: standard (pay-as-you-go, non-batch) list prices in USD per
million tokens, for text. Providers change prices, and negotiated, batch, priority,
regional or audio/image rates differ: a ``price:`` in the config always overrides the
table, and a model the table does not know costs 0 until it is given one.

Notes on what the table models:

- OpenAI: cached input at the published cached-input rate; reasoning tokens are billed
  as output (they are counted in the output tokens).
- Anthropic: cache writes at the 5-minute-TTL rate (1.25x input; writes with a 1-hour
  TTL cost 2x and are under-counted), cache reads at 0.1x input. Sonnet 4 and 4.5
  charge long-context rates for the whole request above 200K input tokens.
- Gemini: no cached-input rate is listed (cached tokens are costed at the input rate,
  an upper bound); 1.5 models change rate above 128K input tokens, 2.5 Pro above 200K.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from keel.config import KeelConfig, ModelConfig
from keel.types import Price, PriceTier

PRICES_AS_OF = "2025-10-31"


def _p(inp: float, out: float, cached: float | None = None, write: float | None = None,
       tiers: tuple[PriceTier, ...] = ()) -> Price:
    return Price(input_per_mtok=inp, output_per_mtok=out, cached_input_per_mtok=cached,
                 cache_write_per_mtok=write, tiers=tiers)


_SONNET_4 = _p(3.00, 15.00, 0.30, 3.75, tiers=(PriceTier(
    200_000, input_per_mtok=6.00, output_per_mtok=22.50, cached_input_per_mtok=0.60,
    cache_write_per_mtok=7.50),))
_OPUS = _p(15.00, 75.00, 1.50, 18.75)

BUILTIN: Mapping[str, Price] = {
    # --- OpenAI ----------------------------------------------------------------------------
    "gpt-5": _p(1.25, 10.00, 0.125),
    "gpt-5-mini": _p(0.25, 2.00, 0.025),
    "gpt-5-nano": _p(0.05, 0.40, 0.005),
    "gpt-4.1": _p(2.00, 8.00, 0.50),
    "gpt-4.1-mini": _p(0.40, 1.60, 0.10),
    "gpt-4.1-nano": _p(0.10, 0.40, 0.025),
    "gpt-4o": _p(2.50, 10.00, 1.25),
    "gpt-4o-2024-05-13": _p(5.00, 15.00),  # the first gpt-4o snapshot kept its launch price
    "gpt-4o-mini": _p(0.15, 0.60, 0.075),
    "gpt-4-turbo": _p(10.00, 30.00),
    "o1": _p(15.00, 60.00, 7.50),
    "o1-mini": _p(1.10, 4.40, 0.55),
    "o3": _p(2.00, 8.00, 0.50),
    "o3-mini": _p(1.10, 4.40, 0.55),
    "o4-mini": _p(1.10, 4.40, 0.275),
    "text-embedding-3-small": _p(0.02, 0.0),
    "text-embedding-3-large": _p(0.13, 0.0),
    "text-embedding-ada-002": _p(0.10, 0.0),
    # --- Anthropic -------------------------------------------------------------------------
    "claude-3-haiku": _p(0.25, 1.25, 0.03, 0.30),
    "claude-3-opus": _OPUS,
    "claude-3-5-haiku": _p(0.80, 4.00, 0.08, 1.00),
    "claude-3-5-sonnet": _p(3.00, 15.00, 0.30, 3.75),
    "claude-3-7-sonnet": _p(3.00, 15.00, 0.30, 3.75),
    "claude-sonnet-4": _SONNET_4,
    "claude-sonnet-4-0": _SONNET_4,
    "claude-sonnet-4-5": _SONNET_4,
    "claude-opus-4": _OPUS,
    "claude-opus-4-0": _OPUS,
    "claude-opus-4-1": _OPUS,
    "claude-haiku-4-5": _p(1.00, 5.00, 0.10, 1.25),
    # --- Google Gemini (Gemini API, paid tier, text) ---------------------------------------
    "gemini-1.5-flash": _p(0.075, 0.30, tiers=(
        PriceTier(128_000, input_per_mtok=0.15, output_per_mtok=0.60),)),
    "gemini-1.5-flash-8b": _p(0.0375, 0.15, tiers=(
        PriceTier(128_000, input_per_mtok=0.075, output_per_mtok=0.30),)),
    "gemini-1.5-pro": _p(1.25, 5.00, tiers=(
        PriceTier(128_000, input_per_mtok=2.50, output_per_mtok=10.00),)),
    "gemini-2.0-flash": _p(0.10, 0.40),
    "gemini-2.0-flash-lite": _p(0.075, 0.30),
    "gemini-2.5-pro": _p(1.25, 10.00, tiers=(
        PriceTier(200_000, input_per_mtok=2.50, output_per_mtok=15.00),)),
    "gemini-2.5-flash": _p(0.30, 2.50),
    "gemini-2.5-flash-lite": _p(0.10, 0.40),
    "gemini-embedding-001": _p(0.15, 0.0),
}

# A snapshot's suffix: -2024-08-06 (OpenAI), -20241022 (Anthropic), -001 (Gemini), -latest.
_SNAPSHOT = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8}|\d{3}|latest)$")


def snapshot_base(name: str) -> str | None:
    """The model a dated snapshot name belongs to (gpt-4o-2024-08-06 -> gpt-4o), or None."""
    base = _SNAPSHOT.sub("", name)
    return base if base != name else None


def builtin(name: str) -> tuple[str, Price] | None:
    """The built-in entry for a model name: the exact name, else its snapshot's model."""
    price = BUILTIN.get(name)
    if price is not None:
        return name, price
    base = snapshot_base(name)
    if base is not None and base in BUILTIN:
        return base, BUILTIN[base]
    return None


def default_price(m: ModelConfig) -> tuple[str, Price] | None:
    """The built-in price of a configured model without ``price:``: by its upstream name(s),
    then by its own name (an Azure deployment is often named after its model)."""
    names = [m.upstream_name, *(d.upstream for d in m.all_deployments() if d.upstream), m.name]
    for name in dict.fromkeys(names):
        found = builtin(name)
        if found is not None:
            return found
    return None


def model_price(m: ModelConfig) -> tuple[str, Price] | None:
    """What requests to a configured model cost, and where that price comes from
    ("config" or "built-in:NAME"); None when neither the config nor the table has one."""
    if m.price is not None:
        return "config", m.price.to_price()
    found = default_price(m)
    return None if found is None else (f"built-in:{found[0]}", found[1])


def resolve(model: str, config: KeelConfig) -> tuple[str, Price] | None:
    """The price of ``model`` and its source. A configured model (by keel name, then by
    upstream name; the first declared wins) beats the built-in table; a dated snapshot
    name is also looked up as its model."""
    base = snapshot_base(model)
    candidates = [model] if base is None else [model, base]
    for name in candidates:
        for m in config.models:
            if m.name == name:
                found = model_price(m)
                if found is not None:
                    return found
        for m in config.models:
            if m.price is not None and name in _upstreams(m):
                return "config", m.price.to_price()
    found_builtin = builtin(model)
    return None if found_builtin is None else (f"built-in:{found_builtin[0]}", found_builtin[1])


def lookup(model: str, config: KeelConfig) -> Price | None:
    """The price of ``model`` (keel or upstream name): config first, then the built-in
    table, else None."""
    found = resolve(model, config)
    return None if found is None else found[1]


def _upstreams(m: ModelConfig) -> set[str]:
    return {m.upstream_name, *(d.upstream for d in m.all_deployments() if d.upstream)}
