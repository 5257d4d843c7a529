"""docs/openapi.yaml describes every route the gateway serves, and no other."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import yaml

from tests.gateway.conftest import Stack

OPENAPI = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"


def test_openapi_lists_every_route(start_gateway: Callable[..., Stack]) -> None:
    app = start_gateway().app
    served = {
        (re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule), method.lower())
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS")
    }
    spec = yaml.safe_load(OPENAPI.read_text())

    documented = {
        (path, method) for path, item in spec["paths"].items() for method in item
    }

    assert documented == served
