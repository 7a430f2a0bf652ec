"""A configured model as the gateway holds it: its config, its price and the balancer over
its deployments. Built by :class:`keel.gateway.service.Gateway`, walked by
:func:`keel.gateway.executor.execute`."""

from __future__ import annotations

from dataclasses import dataclass

from keel.config import ModelConfig
from keel.gateway.providers.base import Provider
from keel.routing import Balancer, Deployment
from keel.types import Price, Usage

ProviderDeployment = Deployment[Provider]


@dataclass(slots=True)
class ModelEntry:
    config: ModelConfig
    price: Price
    balancer: Balancer[Provider]

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def deployments(self) -> list[ProviderDeployment]:
        return self.balancer.deployments

    def worst_case_usd(self, input_tokens: int, max_tokens: int | None, n: int) -> float:
        out = (max_tokens or self.config.max_output_tokens) * max(n, 1)
        return self.price.cost(Usage(input_tokens=input_tokens, output_tokens=out))
