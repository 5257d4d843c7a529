"""Fixtures of the deployment tests: Dockerfiles parsed, the chart rendered by helm."""

from __future__ import annotations

import importlib.util
import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "k8s" / "fedgrid"
SERVICES = {
    "gateway": "fedgrid_gateway",
    "model-store": "fedgrid_model_store",
    "cycle-manager": "fedgrid_cycle_manager",
    "aggregator": "fedgrid_aggregator",
    "signaling": "fedgrid_signaling",
}


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


helm_check = _load("helm_check", ROOT / "deploy" / "k8s" / "helm_check.py")
healthcheck = _load("healthcheck", ROOT / "deploy" / "docker" / "healthcheck.py")


@dataclass
class Dockerfile:
    """A Dockerfile as (INSTRUCTION, arguments) pairs, continuations joined."""

    path: Path
    instructions: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def read(cls, path: Path) -> Dockerfile:
        parsed = cls(path)
        pending = ""
        for raw in path.read_text().splitlines():
            line = raw.strip()
            if not pending and (not line or line.startswith("#")):
                continue
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            line = pending + line
            pending = ""
            keyword, _, rest = line.partition(" ")
            parsed.instructions.append((keyword.upper(), rest.strip()))
        return parsed

    def all(self, keyword: str) -> list[str]:
        return [rest for key, rest in self.instructions if key == keyword]

    def final_stage(self) -> list[tuple[str, str]]:
        starts = [i for i, (key, _) in enumerate(self.instructions) if key == "FROM"]
        return self.instructions[starts[-1] :]

    def exec_form(self, keyword: str) -> list[str]:
        """The JSON (exec) form of the last CMD or ENTRYPOINT, or []."""
        found = [rest for key, rest in self.final_stage() if key == keyword]
        if not found:
            return []
        return _json_list(found[-1])

    def healthcheck(self) -> tuple[str, list[str]]:
        """The last HEALTHCHECK's options and its exec-form command."""
        found = [rest for key, rest in self.final_stage() if key == "HEALTHCHECK"]
        assert found, f"{self.path} has no HEALTHCHECK"
        options, sep, command = found[-1].partition("CMD ")
        assert sep, f"{self.path}: HEALTHCHECK without CMD: {found[-1]}"
        return options.strip(), _json_list(command)

    def env_names(self) -> list[str]:
        names = []
        for rest in self.all("ENV"):
            for item in shlex.split(rest):
                names.append(item.partition("=")[0])
        return names


def _json_list(text: str) -> list[str]:
    value = json.loads(text)
    assert isinstance(value, list), f"not the exec (JSON) form: {text}"
    return [str(item) for item in value]


@pytest.fixture(scope="session")
def dockerfiles() -> dict[str, Dockerfile]:
    return {
        name: Dockerfile.read(ROOT / "services" / name / "Dockerfile")
        for name in SERVICES
    }


@dataclass
class Manifests:
    """The documents `helm template` printed, looked up by kind and name."""

    docs: list[dict[str, Any]]

    def kind(self, kind: str) -> list[dict[str, Any]]:
        return [doc for doc in self.docs if doc["kind"] == kind]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        found = [doc for doc in self.kind(kind) if doc["metadata"]["name"] == name]
        assert len(found) == 1, f"{kind}/{name}: {len(found)} documents"
        return found[0]


@pytest.fixture(scope="session")
def helm() -> Path:
    try:
        return Path(helm_check.ensure_helm())
    except helm_check.CheckFailed as exc:
        pytest.fail(f"cannot get helm: {exc}")


Render = Callable[..., Manifests]


@pytest.fixture(scope="session")
def render(helm: Path) -> Render:
    """Render the chart with ci/ scenarios by name plus --set items."""

    def run(*scenarios: str, sets: tuple[str, ...] = ()) -> Manifests:
        values = [CHART / "ci" / f"{name}-values.yaml" for name in scenarios]
        result = helm_check.render(helm, values, set_values=list(sets))
        assert result.returncode == 0, result.stderr
        docs = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
        return Manifests(docs)

    return run


@pytest.fixture(scope="session")
def render_error(helm: Path) -> Callable[..., str]:
    """Render the chart expecting it to refuse; returns helm's message."""

    def run(*sets: str) -> str:
        result = helm_check.render(helm, [], set_values=list(sets))
        assert result.returncode != 0, "rendering succeeded but should have failed"
        return str(result.stderr)

    return run
