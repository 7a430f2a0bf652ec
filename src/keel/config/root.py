"""The whole YAML config (``KeelConfig``): its sections, the names that must match across
them (checked at once, every mismatch reported), and the default with no file."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, PrivateAttr, model_validator

from keel.config.alerts import AlertsConfig, DriftSchedule
from keel.config.base import _KeyProblem, _KeyProblems, _Strict
from keel.config.evals import EvalsConfig
from keel.config.features import FeatureConfig
from keel.config.limits import BudgetConfig, LimitConfig
from keel.config.notify import ReceiverConfig, check_receivers
from keel.config.policies import PolicyConfig
from keel.config.providers import LatencySpec, ModelConfig, PriceSpec, ProviderConfig
from keel.config.routes import RouteConfig


class KeelConfig(_Strict):
    providers: list[ProviderConfig] = Field(default_factory=list)
    models: list[ModelConfig] = Field(default_factory=list)
    routes: list[RouteConfig] = Field(default_factory=list)
    limits: list[LimitConfig] = Field(default_factory=list)
    budgets: list[BudgetConfig] = Field(default_factory=list)
    evals: EvalsConfig = Field(default_factory=EvalsConfig)
    features: list[FeatureConfig] = Field(default_factory=list)
    policies: list[PolicyConfig] = Field(default_factory=list)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    drift: DriftSchedule = Field(default_factory=DriftSchedule)
    receivers: list[ReceiverConfig] = Field(default_factory=list)
    # where relative paths in the config (a policy's schema file) are found: the config
    # file's directory, else the working directory
    _base_dir: Path | None = PrivateAttr(default=None)

    @property
    def base_dir(self) -> Path:
        return self._base_dir or Path.cwd()

    def feature(self, name: str) -> FeatureConfig | None:
        return next((f for f in self.features if f.name == name), None)

    @model_validator(mode="after")
    def _receiver_names(self) -> KeelConfig:
        check_receivers(self.receivers)
        names = {r.name for r in self.receivers}
        problems = [
            _KeyProblem(f"alerts.receivers[{i}]", f"no receiver named '{name}'",
                        f"declare it under receivers: (declared: {', '.join(sorted(names))})"
                        if names else "declare it under receivers:")
            for i, name in enumerate(self.alerts.receivers or []) if name not in names]
        declared = {f.name for f in self.features}
        problems += [
            _KeyProblem(f"drift.features[{i}]", f"no feature named '{name}'",
                        "declare it under features: (drift is checked per declared feature)")
            for i, name in enumerate(self.drift.features or []) if name not in declared]
        if problems:
            raise _KeyProblems(problems)
        return self

    @model_validator(mode="after")
    def _references(self) -> KeelConfig:
        """Names that must match across sections; every mismatch is reported at once."""
        problems: list[_KeyProblem] = []
        seen: set[str] = set()
        for i, p in enumerate(self.providers):
            if p.name in seen:
                problems.append(_KeyProblem(
                    f"providers[{i}].name", f"provider '{p.name}' is declared twice",
                    "give each provider a unique name"))
            seen.add(p.name)
            if p.kind == "openai" and not p.base_url:
                problems.append(_KeyProblem(
                    f"providers[{i}].base_url", "an openai provider needs base_url",
                    "set it, e.g. https://api.openai.com/v1"))
        known = ", ".join(sorted(seen)) or "none declared"
        names: set[str] = set()
        for i, m in enumerate(self.models):
            if m.provider is None and not m.deployments:
                problems.append(_KeyProblem(f"models[{i}].provider", "required key is missing",
                                            "name the provider (or list deployments:)"))
            if m.provider is not None and m.deployments:
                problems.append(_KeyProblem(
                    f"models[{i}].deployments", "both provider and deployments",
                    "use provider: for one deployment or deployments: for several"))
            if m.provider is not None and m.provider not in seen:
                problems.append(_KeyProblem(
                    f"models[{i}].provider", f"unknown provider '{m.provider}'",
                    f"use one of the names under providers: ({known})"))
            for j, d in enumerate(m.deployments):
                if d.provider not in seen:
                    problems.append(_KeyProblem(f"models[{i}].deployments[{j}].provider",
                                                f"unknown provider '{d.provider}'",
                                                f"use one of the names under providers: ({known})"))
            if m.name in names:
                problems.append(_KeyProblem(
                    f"models[{i}].name", f"model '{m.name}' is declared twice",
                    "give each model a unique name"))
            names.add(m.name)
        self._check_routes(names, problems)
        if problems:
            raise _KeyProblems(problems)
        return self

    def _check_routes(self, models: set[str], problems: list[_KeyProblem]) -> None:
        known = ", ".join(sorted(models)) or "none declared"
        route_names: set[str] = set()
        chat = {m.name for m in self.models if m.kind == "chat"}
        embed = {m.name for m in self.models if m.kind == "embedding"}
        for i, r in enumerate(self.routes):
            where = f"routes[{i}]"
            if r.name in route_names:
                problems.append(_KeyProblem(f"{where}.name", f"route '{r.name}' is declared twice",
                                            "give each route a unique name"))
            if r.name in models:
                problems.append(_KeyProblem(
                    f"{where}.name", f"route '{r.name}' has a model's name",
                    "rename the route or the model: clients send either as 'model'"))
            route_names.add(r.name)
            if not r.targets:
                problems.append(_KeyProblem(f"{where}.targets", "a route needs at least one target",
                                            "list targets: [{model: NAME, weight: N}]"))
            for j, t in enumerate(r.targets):
                if t.model not in chat:
                    problems.append(_KeyProblem(
                        f"{where}.targets[{j}].model", f"unknown chat model '{t.model}'",
                        f"use one of the chat models under models: ({known})"))
            for j, f in enumerate(r.fallbacks):
                if f not in chat:
                    problems.append(_KeyProblem(
                        f"{where}.fallbacks[{j}]", f"unknown chat model '{f}'",
                        f"use one of the chat models under models: ({known})"))
            if r.cache and r.cache.mode == "semantic" and r.cache.embedding_model not in embed:
                problems.append(_KeyProblem(f"{where}.cache.embedding_model",
                                            "semantic caching needs an embedding model",
                                            "name one of the embedding models under models:"))
        for i, lim in enumerate(self.limits):
            if lim.rpm is None and lim.tpm is None:
                problems.append(_KeyProblem(f"limits[{i}]", "a limit needs rpm, tpm or both",
                                            "add rpm: N and/or tpm: N"))
        self._check_policies(route_names, problems)

    def _check_policies(self, routes: set[str], problems: list[_KeyProblem]) -> None:
        names: set[str] = set()
        owner: dict[str, str] = {}
        for i, p in enumerate(self.policies):
            where = f"policies[{i}]"
            if p.name in names:
                problems.append(_KeyProblem(f"{where}.name", f"policy '{p.name}' is declared twice",
                                            "give each policy a unique name"))
            names.add(p.name)
            if not p.features and not p.routes:
                problems.append(_KeyProblem(f"{where}.features", "the policy governs nothing",
                                            "list features: [NAME, ...] (or ['*']) and/or routes:"))
            for f in p.features:
                if f in owner:
                    problems.append(_KeyProblem(
                        f"{where}.features",
                        f"feature '{f}' is already governed by policy '{owner[f]}'",
                        "a feature has one policy; merge them"))
                owner[f] = p.name
            for j, r in enumerate(p.routes):
                if r not in routes:
                    problems.append(_KeyProblem(f"{where}.routes[{j}]", f"unknown route '{r}'",
                                                "use one of the names under routes:"))
                if f"route:{r}" in owner:
                    problems.append(_KeyProblem(
                        f"{where}.routes[{j}]",
                        f"route '{r}' is already governed by policy '{owner['route:' + r]}'",
                        "a route has one policy"))
                owner[f"route:{r}"] = p.name

    def route(self, name: str) -> RouteConfig | None:
        return next((r for r in self.routes if r.name == name), None)

    def provider(self, name: str) -> ProviderConfig:
        for p in self.providers:
            if p.name == name:
                return p
        raise KeyError(name)


def default_config() -> KeelConfig:
    """What runs with no config file: the offline mock provider and two models."""
    return KeelConfig(
        providers=[ProviderConfig(name="mock", kind="mock", latency=LatencySpec(p50_ms=0.0))],
        models=[
            ModelConfig(name="mock", provider="mock",
                        price=PriceSpec(input_per_mtok=0.15, output_per_mtok=0.60,
                                        cached_input_per_mtok=0.075)),
            ModelConfig(name="mock-embedding", provider="mock", kind="embedding",
                        price=PriceSpec(input_per_mtok=0.02)),
        ],
    )
