"""Costs: prices (configured, else a built-in table), repricing stored traces, and spend
reports read from the rollups."""

from keel.costs.prices import PRICES_AS_OF, lookup, model_price, resolve

__all__ = ["PRICES_AS_OF", "lookup", "model_price", "resolve"]
