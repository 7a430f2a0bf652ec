"""Routes, weighted variants, deployments and load balancing, circuit breakers."""

from keel.routing.breaker import Breaker, BreakerBoard
from keel.routing.deployments import Balancer, Deployment
from keel.routing.router import Plan, Router

__all__ = ["Balancer", "Breaker", "BreakerBoard", "Deployment", "Plan", "Router"]
