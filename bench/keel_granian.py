"""ASGI factory so granian can serve keel: ``granian --factory keel_granian:app``.

Reads the same KEEL_* settings and YAML config as ``keel serve`` and builds the app with
``keel.server.app.create_app`` (migrations run in the app's lifespan).
"""

from __future__ import annotations

from keel.config import Settings, load_config
from keel.server.app import create_app


def app():  # noqa: ANN201
    settings = Settings()
    return create_app(settings, load_config(settings.config, required=True))
