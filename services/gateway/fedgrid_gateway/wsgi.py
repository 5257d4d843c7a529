"""The WSGI app for `gunicorn fedgrid_gateway.wsgi:app`, built from FEDGRID_* env."""

from __future__ import annotations

from fedgrid.config import Settings
from fedgrid.logs import setup_logging
from fedgrid_gateway.app import build_app

_settings = Settings.from_env()
setup_logging(_settings.log_level, _settings.log_format)
app = build_app(_settings)
