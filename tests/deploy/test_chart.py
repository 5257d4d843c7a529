"""The Helm chart as rendered by helm: probes, secrets, hooks, scaling, routing."""

from __future__ import annotations

import base64
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from fedgrid.config import Settings
from tests.deploy.conftest import (
    CHART,
    SERVICES,
    Dockerfile,
    Manifests,
    Render,
    helm_check,
)

SECRET_VARIABLES = {
    "FEDGRID_ADMIN_TOKEN",
    "FEDGRID_SESSION_SECRET",
    "FEDGRID_DATABASE_URL",
    "FEDGRID_S3_ACCESS_KEY",
    "FEDGRID_S3_SECRET_KEY",
}
GRPC_PORTS = {"model-store": 50051, "cycle-manager": 50052}
HTTP_PORTS = {"gateway": "http", "signaling": "ws"}


def _container(doc: dict[str, Any]) -> dict[str, Any]:
    containers = doc["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container.get("env", [])}


@pytest.fixture(scope="module")
def bundled(render: Render) -> Manifests:
    return render("bundled")


@pytest.fixture(scope="module")
def external(render: Render) -> Manifests:
    return render("external")


def test_a_deployment_and_service_for_each_service(bundled: Manifests) -> None:
    for name in SERVICES:
        deployment = bundled.get("Deployment", f"fedgrid-{name}")
        service = bundled.get("Service", f"fedgrid-{name}")

        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/component"] == name
        assert service["spec"]["selector"].items() <= labels.items()


def test_containers_run_the_dockerfile_entry_module(
    bundled: Manifests, dockerfiles: dict[str, Dockerfile]
) -> None:
    for name in SERVICES:
        container = _container(bundled.get("Deployment", f"fedgrid-{name}"))

        assert container["command"] == dockerfiles[name].exec_form("CMD")
        assert container["image"] == f"fedgrid-{name}:0.1.0"


@pytest.mark.parametrize("name", sorted(GRPC_PORTS))
def test_grpc_services_use_grpc_probes_on_their_port(
    bundled: Manifests, name: str
) -> None:
    container = _container(bundled.get("Deployment", f"fedgrid-{name}"))

    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"] == {"port": GRPC_PORTS[name]}


@pytest.mark.parametrize("name", sorted(HTTP_PORTS))
def test_http_services_probe_healthz(bundled: Manifests, name: str) -> None:
    container = _container(bundled.get("Deployment", f"fedgrid-{name}"))

    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {
            "path": "/healthz",
            "port": HTTP_PORTS[name],
        }


def test_aggregator_probe_pings_its_own_celery_node(bundled: Manifests) -> None:
    container = _container(bundled.get("Deployment", "fedgrid-aggregator"))
    config = bundled.get("ConfigMap", "fedgrid")["data"]

    for probe in ("readinessProbe", "livenessProbe"):
        shell, flag, script = container[probe]["exec"]["command"]
        assert (shell, flag) == ("sh", "-c")
        assert 'celery --broker "$FEDGRID_BROKER_URL" inspect ping' in script
        assert '"$FEDGRID_AGGREGATOR_NAME@$HOSTNAME"' in script
        timeout = int(re.findall(r"--timeout (\d+)", script)[0])
        assert timeout < container[probe]["timeoutSeconds"]
    assert "FEDGRID_BROKER_URL" in _env(container)
    assert config["FEDGRID_AGGREGATOR_NAME"] == "fedgrid-aggregator"


def test_aggregator_scales_with_an_autoscaler(bundled: Manifests) -> None:
    deployment = bundled.get("Deployment", "fedgrid-aggregator")
    autoscaler = bundled.get("HorizontalPodAutoscaler", "fedgrid-aggregator")

    assert "replicas" not in deployment["spec"]  # the autoscaler owns the count
    assert autoscaler["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "fedgrid-aggregator",
    }
    assert (autoscaler["spec"]["minReplicas"], autoscaler["spec"]["maxReplicas"]) == (
        1,
        8,
    )


def test_every_service_has_a_pdb_and_resource_requests(bundled: Manifests) -> None:
    for name in SERVICES:
        pdb = bundled.get("PodDisruptionBudget", f"fedgrid-{name}")
        container = _container(bundled.get("Deployment", f"fedgrid-{name}"))

        assert (
            pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"]
            == name
        )
        assert {"cpu", "memory"} <= container["resources"]["requests"].keys()


def test_configmap_holds_settings_and_no_secret(bundled: Manifests) -> None:
    data = bundled.get("ConfigMap", "fedgrid")["data"]
    fields = {f"FEDGRID_{name.upper()}" for name in Settings.__dataclass_fields__}

    assert set(data) <= fields, set(data) - fields
    assert not set(data) & SECRET_VARIABLES
    assert data["FEDGRID_HOST"] == "0.0.0.0"
    assert data["FEDGRID_MODEL_STORE_ADDRESS"] == "fedgrid-model-store:50051"
    assert data["FEDGRID_CYCLE_MANAGER_ADDRESS"] == "fedgrid-cycle-manager:50052"
    assert data["FEDGRID_OBJECT_STORE"] == "s3"
    # Every value parses as the service would parse it.
    Settings.from_env({**data, "FEDGRID_S3_ENDPOINT": data["FEDGRID_S3_ENDPOINT"]})


def test_secret_variables_come_from_secrets(bundled: Manifests) -> None:
    for name in SERVICES:
        env = _env(_container(bundled.get("Deployment", f"fedgrid-{name}")))

        for variable in SECRET_VARIABLES & env.keys():
            assert "value" not in env[variable]
            assert env[variable]["valueFrom"]["secretKeyRef"]["name"].startswith(
                "fedgrid"
            )
    gateway = _env(_container(bundled.get("Deployment", "fedgrid-gateway")))
    assert {"FEDGRID_ADMIN_TOKEN", "FEDGRID_SESSION_SECRET"} <= gateway.keys()


def test_generated_secrets_are_strong_and_urls_use_them(bundled: Manifests) -> None:
    def decoded(name: str) -> dict[str, str]:
        data = bundled.get("Secret", name)["data"]
        return {key: base64.b64decode(value).decode() for key, value in data.items()}

    auth = decoded("fedgrid")
    postgres = decoded("fedgrid-postgresql")
    redis = decoded("fedgrid-redis")

    assert len(auth["admin-token"]) >= 32 and len(auth["session-secret"]) >= 32
    assert auth["admin-token"] != auth["session-secret"]
    assert postgres["database-url"] == (
        f"postgresql://fedgrid:{postgres['postgres-password']}"
        "@fedgrid-postgresql:5432/fedgrid"
    )
    assert redis["redis-url"] == (
        f"redis://:{redis['redis-password']}@fedgrid-redis:6379/0"
    )


def _leaves(node: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(node, dict):
        return [
            leaf
            for key, value in node.items()
            for leaf in _leaves(value, f"{path}.{key}" if path else str(key))
        ]
    return [(path, node)]


def test_values_defaults_hold_no_secret() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    credential = re.compile(r"(?i)(password|token|secret|accesskey|url)$")

    leaves = dict(_leaves(values))

    with_value = {
        path: v for path, v in leaves.items() if credential.search(path) and v
    }
    assert with_value == {}
    assert {path for path in leaves if path.endswith("existingSecret")} >= {
        "auth.existingSecret",
        "postgresql.external.existingSecret",
        "redis.external.existingSecret",
        "minio.external.existingSecret",
    }


def test_ingress_routes_gateway_and_signaling_with_websocket_timeouts(
    bundled: Manifests,
) -> None:
    ingress = bundled.get("Ingress", "fedgrid")
    paths = {
        path["path"]: path["backend"]["service"]
        for path in ingress["spec"]["rules"][0]["http"]["paths"]
    }
    annotations = ingress["metadata"]["annotations"]

    assert paths["/"] == {"name": "fedgrid-gateway", "port": {"name": "http"}}
    assert paths["/signaling"] == {"name": "fedgrid-signaling", "port": {"name": "ws"}}
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
    assert ingress["spec"]["rules"][0]["host"] == "fedgrid.example.test"


def test_bundled_database_migrates_in_init_containers_then_hook_on_upgrade(
    bundled: Manifests,
) -> None:
    job = bundled.get("Job", "fedgrid-migrations")

    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-upgrade"
    assert _container(job)["command"] == ["fedgrid", "db", "migrate"]
    for name in ("model-store", "cycle-manager"):
        spec = bundled.get("Deployment", f"fedgrid-{name}")["spec"]["template"]["spec"]
        assert [c["command"] for c in spec["initContainers"]] == [
            ["fedgrid", "db", "migrate"]
        ]
    assert len(bundled.kind("StatefulSet")) == 3


def test_external_backends_come_from_named_secrets(external: Manifests) -> None:
    job = external.get("Job", "fedgrid-migrations")
    job_env = _env(_container(job))
    store = _env(_container(external.get("Deployment", "fedgrid-model-store")))
    cycles = _env(_container(external.get("Deployment", "fedgrid-cycle-manager")))
    config = external.get("ConfigMap", "fedgrid")["data"]

    assert external.kind("StatefulSet") == []
    assert [s["metadata"]["name"] for s in external.kind("Secret")] == []
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    # The chart's ServiceAccount does not exist yet when pre-install hooks run.
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == "default"
    assert job_env["FEDGRID_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "fedgrid-database",
        "key": "database-url",
    }
    assert store["FEDGRID_S3_SECRET_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "fedgrid-s3",
        "key": "secret-key",
    }
    assert cycles["FEDGRID_BROKER_URL"]["valueFrom"]["secretKeyRef"]["name"] == (
        "fedgrid-broker"
    )
    assert config["FEDGRID_S3_ENDPOINT"] == "s3.eu-west-1.amazonaws.com:443"
    assert config["FEDGRID_S3_SECURE"] == "true"
    spec = external.get("Deployment", "fedgrid-model-store")["spec"]["template"]["spec"]
    assert "initContainers" not in spec


def test_ha_scenario_runs_replicas_and_plain_redis_url(render: Render) -> None:
    ha = render("ha")
    signaling = _env(_container(ha.get("Deployment", "fedgrid-signaling")))

    for name in ("gateway", "model-store", "cycle-manager", "signaling"):
        assert ha.get("Deployment", f"fedgrid-{name}")["spec"]["replicas"] == 3
    assert signaling["FEDGRID_REDIS_URL"] == {
        "name": "FEDGRID_REDIS_URL",
        "value": "redis://redis-ha.data.svc:6379/0",
    }
    config = ha.get("ConfigMap", "fedgrid")["data"]
    assert config["FEDGRID_GATEWAY_CYCLE_REQUESTS_PER_IP"] == "6000"


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (
            ("postgresql.enabled=false",),
            "postgresql.external.existingSecret is required",
        ),
        (
            ("redis.enabled=false",),
            "redis.external.url or redis.external.existingSecret",
        ),
        (
            ("minio.enabled=false", "minio.external.existingSecret=s3"),
            "minio.external.endpoint is required",
        ),
        (
            ("minio.enabled=false", "minio.external.endpoint=s3.example:443"),
            "minio.external.existingSecret is required",
        ),
        (("ingress.tls.secretName=tls",), "ingress.host is required"),
        (("config.extra.ADMIN_TOKEN=abc",), "would put a secret in the ConfigMap"),
        (("gateway.replicas=3",), "additional properties 'replicas' not allowed"),
        (("config.logLevel=LOUD",), "value must be one of"),
    ],
)
def test_missing_or_wrong_values_stop_rendering_with_a_reason(
    render_error: Any, sets: tuple[str, ...], message: str
) -> None:
    assert message in render_error(*sets)


def _values_paths(schema: dict[str, Any]) -> list[tuple[int, str, bool]]:
    """(line, dotted path, must be commented) for every key line of values.yaml."""
    found: list[tuple[int, str, bool]] = []
    stack: list[tuple[int, str, dict[str, Any] | None]] = []
    for number, line in enumerate((CHART / "values.yaml").read_text().splitlines(), 1):
        match = re.match(r"^( *)([A-Za-z][\w./-]*):", line)
        if not match:
            continue
        indent, key = len(match.group(1)), match.group(2)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][2] if stack else schema
        properties = (parent or {}).get("properties", {})
        node = properties.get(key)
        found.append(
            (number, ".".join([s[1] for s in stack] + [key]), key in properties)
        )
        stack.append((indent, key, node if node and "$ref" not in node else None))
    return found


def test_every_values_key_is_commented_and_in_the_schema() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    lines = (CHART / "values.yaml").read_text().splitlines()

    paths = _values_paths(schema)

    uncommented = [
        path
        for number, path, described in paths
        if described and not lines[number - 2].lstrip().startswith("#")
    ]
    assert uncommented == []
    top_level = {path for _, path, _ in paths if "." not in path}
    assert top_level == set(schema["properties"])


def test_install_notes_say_how_to_reach_the_grid_and_push(helm: Path) -> None:
    command = [
        str(helm), "install", "fedgrid", str(CHART), "--namespace", "grid",
        "--dry-run=client", "--values", str(CHART / "ci" / "external-values.yaml"),
        "--set", "ingress.enabled=false",
    ]  # fmt: skip

    result = subprocess.run(
        command, capture_output=True, text=True, env=helm_check.helm_env(), check=False
    )

    assert result.returncode == 0, result.stderr
    notes = result.stdout.partition("NOTES:")[2]
    assert "port-forward svc/fedgrid-gateway 8080:8080" in notes
    assert "get secret fedgrid-auth" in notes
    assert "fedgrid push my_job.py" in notes
