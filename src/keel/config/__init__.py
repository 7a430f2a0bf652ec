"""Settings (environment, ``KEEL_*``) and the YAML config file (providers, models, routes,
limits, budgets, evals, features, policies, receivers).

The YAML file is parsed once into typed models. Any problem raises ``ConfigError``
with a message naming the file, the key path, what is wrong and how to fix it; keel
refuses to start rather than run half-configured.

One module per section (providers, routes, limits, evals, features, policies, notify),
the whole file and its cross-checks in root, reading it in loader, error lines in
messages, the environment in settings. Import from ``keel.config``; the modules are its layout.
"""

from keel.config.alerts import (
    MEASURES,
    AlertCondition,
    AlertRule,
    AlertsConfig,
    AlertScope,
    DriftSchedule,
)
from keel.config.evals import EvalsConfig, ScheduledSuite
from keel.config.features import FeatureConfig, RetentionSpec
from keel.config.limits import BudgetConfig, LimitConfig, Scope
from keel.config.loader import config_warnings, load_config, parse_config
from keel.config.messages import validation_message, validation_messages
from keel.config.notify import ReceiverConfig
from keel.config.policies import PolicyConfig, PolicyReview
from keel.config.providers import (
    BUILTIN_PROVIDER_KINDS,
    PROVIDER_GROUP,
    BreakerSpec,
    DeploymentConfig,
    ErrorRates,
    LatencySpec,
    ModelConfig,
    PriceSpec,
    PriceTierSpec,
    ProviderConfig,
    checkable_providers,
)
from keel.config.root import KeelConfig, default_config
from keel.config.routes import (
    FAILURE_CLASSES,
    CacheSpec,
    FailureClass,
    RetrySpec,
    RouteConfig,
    TargetSpec,
)
from keel.config.settings import DEFAULT_CONFIG_FILE, Settings

__all__ = [
    "BUILTIN_PROVIDER_KINDS",
    "DEFAULT_CONFIG_FILE",
    "FAILURE_CLASSES",
    "MEASURES",
    "PROVIDER_GROUP",
    "AlertCondition",
    "AlertRule",
    "AlertScope",
    "AlertsConfig",
    "BreakerSpec",
    "BudgetConfig",
    "CacheSpec",
    "DeploymentConfig",
    "DriftSchedule",
    "ErrorRates",
    "EvalsConfig",
    "FailureClass",
    "FeatureConfig",
    "KeelConfig",
    "LatencySpec",
    "LimitConfig",
    "ModelConfig",
    "PolicyConfig",
    "PolicyReview",
    "PriceSpec",
    "PriceTierSpec",
    "ProviderConfig",
    "ReceiverConfig",
    "RetentionSpec",
    "RetrySpec",
    "RouteConfig",
    "ScheduledSuite",
    "Scope",
    "Settings",
    "TargetSpec",
    "checkable_providers",
    "config_warnings",
    "default_config",
    "load_config",
    "parse_config",
    "validation_message",
    "validation_messages",
]
