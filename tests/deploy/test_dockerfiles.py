"""The service Dockerfiles: base, user, health check, entry module, settings by env."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from fedgrid.config import Settings
from tests.deploy.conftest import ROOT, SERVICES, Dockerfile

# Variables an image may set besides FEDGRID_* settings: none of them configure fedgrid.
RUNTIME_ENV = {
    "PATH",
    "HOME",
    "PYTHONUNBUFFERED",
    "PYTHONDONTWRITEBYTECODE",
    "MPLCONFIGDIR",
    "TMPDIR",
    "PIP_NO_CACHE_DIR",
    "PIP_DISABLE_PIP_VERSION_CHECK",
}
DEFAULTS = Settings()
PORTS = {
    "gateway": DEFAULTS.gateway_port,
    "model-store": DEFAULTS.model_store_port,
    "cycle-manager": DEFAULTS.cycle_manager_port,
    "aggregator": DEFAULTS.aggregator_metrics_port,
    "signaling": DEFAULTS.signaling_port,
}


def _base_image(dockerfile: Dockerfile) -> str:
    """The final stage's image with ARG defaults filled in."""
    args = dict(item.partition("=")[::2] for item in dockerfile.all("ARG"))
    image = dockerfile.final_stage()[0][1].split()[0]
    for name, value in args.items():
        image = image.replace(f"${{{name}}}", value)
    return image


def test_every_service_has_a_dockerfile() -> None:
    found = sorted(p.parent.name for p in (ROOT / "services").glob("*/Dockerfile"))

    assert found == sorted(SERVICES)


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_image_is_slim_python_311(
    service: str, dockerfiles: dict[str, Dockerfile]
) -> None:
    assert _base_image(dockerfiles[service]) == "python:3.11-slim"


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_image_runs_as_a_numeric_non_root_user(
    service: str, dockerfiles: dict[str, Dockerfile]
) -> None:
    users = [rest for key, rest in dockerfiles[service].final_stage() if key == "USER"]

    assert users, "the final stage sets no USER"
    user, _, group = users[-1].partition(":")
    # Numeric, so Kubernetes' runAsNonRoot can verify it without /etc/passwd.
    assert user.isdigit() and int(user) != 0
    assert group.isdigit() and int(group) != 0


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_entry_module_exists_in_the_package(
    service: str, dockerfiles: dict[str, Dockerfile]
) -> None:
    command = dockerfiles[service].exec_form("CMD")

    assert dockerfiles[service].exec_form("ENTRYPOINT") == []
    assert command == ["python", "-m", SERVICES[service]]
    assert importlib.util.find_spec(SERVICES[service]) is not None
    assert importlib.util.find_spec(f"{SERVICES[service]}.__main__") is not None


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_healthcheck_checks_this_service(
    service: str, dockerfiles: dict[str, Dockerfile]
) -> None:
    options, command = dockerfiles[service].healthcheck()
    copies = [rest.split() for rest in dockerfiles[service].all("COPY")]
    shipped = {dest: source for *flags, source, dest in copies if not flags}
    scripts = [part for part in command if part.endswith(".py")]

    assert "--interval=" in options and "--timeout=" in options
    assert command[0] == "python"
    # Either the shipped health check script, told which service to check, or an
    # inline check of this service's own port.
    if scripts:
        assert scripts[0] in shipped, "the health check script is not copied in"
        assert (ROOT / shipped[scripts[0]]).is_file()
        assert command[-1] == service
    else:
        assert f"127.0.0.1:{PORTS[service]}" in " ".join(command)


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_exposes_the_default_port(
    service: str, dockerfiles: dict[str, Dockerfile]
) -> None:
    exposed = {
        int(port)
        for rest in dockerfiles[service].all("EXPOSE")
        for port in rest.split()
    }

    assert PORTS[service] in exposed


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_configuration_only_through_fedgrid_variables(
    service: str, dockerfiles: dict[str, Dockerfile]
) -> None:
    names = dockerfiles[service].env_names()
    fields = {f"FEDGRID_{name.upper()}" for name in Settings.__dataclass_fields__}

    others = {n for n in names if not n.startswith("FEDGRID_")} - RUNTIME_ENV
    assert others == set()
    assert {n for n in names if n.startswith("FEDGRID_")} <= fields
    assert "FEDGRID_HOST" in names  # pods must listen beyond loopback


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_torch_is_the_cpu_build(
    service: str, dockerfiles: dict[str, Dockerfile]
) -> None:
    torch_installs = [r for r in dockerfiles[service].all("RUN") if "torch==" in r]

    assert len(torch_installs) == 1
    assert "--index-url https://download.pytorch.org/whl/cpu" in torch_installs[0]


def test_build_stages_are_identical_so_layers_are_shared(
    dockerfiles: dict[str, Dockerfile],
) -> None:
    def build_stage(dockerfile: Dockerfile) -> list[tuple[str, str]]:
        return dockerfile.instructions[: -len(dockerfile.final_stage())]

    stages = {name: build_stage(d) for name, d in dockerfiles.items()}

    assert all(stage == stages["gateway"] for stage in stages.values())


def test_dockerignore_sends_only_what_the_images_copy() -> None:
    rules = [
        line
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]

    assert rules[0] == "*"
    kept = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    assert kept == {
        "pyproject.toml",
        "README.md",
        "src",
        "services",
        "deploy/docker/healthcheck.py",
    }
    assert all((ROOT / path).exists() for path in kept)


def test_dockerfile_parser_joins_continuations(tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text('FROM x\n# note\nENV A=1 \\\n    B=2\nCMD ["a", "b"]\n')

    parsed = Dockerfile.read(path)

    assert parsed.env_names() == ["A", "B"]
    assert parsed.exec_form("CMD") == ["a", "b"]
