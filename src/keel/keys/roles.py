"""What each role on the admin API and the console grants: one table, read by both.

Six roles. ``admin`` may do everything (the master key is an admin). ``operator`` runs the
system (prompts, budgets, evals, costs, kill switches). ``reviewer`` decides held answers.
``auditor`` reads everything including the audit log, and changes nothing. ``viewer`` reads
traces and metrics. Every one of these but ``admin`` also holds ``viewer``. ``metrics`` is
narrower than them all: it may only read ``GET /metrics`` (the key a Prometheus scraper
holds).
"""

from __future__ import annotations

from keel.types import ROLES, Principal

__all__ = ["GRANTS", "NARROW_ROLES", "held_role", "holds"]

GRANTS: dict[str, frozenset[str]] = {
    "admin": frozenset(ROLES),
    "operator": frozenset({"operator", "viewer"}),
    "reviewer": frozenset({"reviewer", "viewer"}),
    "auditor": frozenset({"auditor", "viewer"}),
    "viewer": frozenset({"viewer"}),
    "metrics": frozenset({"metrics"}),
}
# Roles for one purpose only: refused on routes any key may call, and by the console.
NARROW_ROLES = frozenset({"metrics"})


def held_role(principal: Principal) -> str | None:
    """The role ``principal`` acts with: ``admin`` for the master key; None for a gateway
    key."""
    return "admin" if principal.is_admin else principal.role


def holds(principal: Principal, role: str) -> bool:
    """Whether ``principal``'s role grants ``role``."""
    held = held_role(principal)
    return held is not None and role in GRANTS.get(held, frozenset())
