"""ASGI assembly: the gateway routes, the admin API (/api), health and metrics."""

from keel.server.app import create_app

__all__ = ["create_app"]
