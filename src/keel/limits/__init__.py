"""Rate limits (rpm/tpm per key, team, feature or model) and budgets (USD per key, team or
feature and period) that hold under concurrency and across replicas.

In one process the counters are plain dicts (no await between check and update); with
Redis they are Lua scripts, one round trip per admit and per settle.
"""

from keel.limits.periods import period_bounds, period_key
from keel.limits.redis_backend import connect_redis
from keel.limits.service import Admission, LimitRequest, Limits

__all__ = ["Admission", "LimitRequest", "Limits", "connect_redis", "period_bounds",
           "period_key"]
