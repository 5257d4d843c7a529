"""The one versioned allowlist of plan operators, read from opset.json."""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import torch

from fedgrid.errors import PlanError

OPSET_FILE = Path(__file__).with_name("opset.json")

PYTHON = "python"
TORCHSCRIPT = "torchscript"
BROWSER = "browser"

# Integer arithmetic on symbolic sizes (a batch dimension times a width...).
SYM_FUNCTIONS: dict[str, Callable[..., int]] = {
    "sym.add": operator.add,
    "sym.sub": operator.sub,
    "sym.mul": operator.mul,
    "sym.floordiv": operator.floordiv,
    "sym.mod": operator.mod,
    "sym.neg": operator.neg,
    "sym.max": max,
    "sym.min": min,
}
SYM_ARITY = {name: 1 if name == "sym.neg" else 2 for name in SYM_FUNCTIONS}


@dataclass(frozen=True)
class Opset:
    """Which operators a plan may use, and on which targets each one runs."""

    version: int
    targets: tuple[str, ...]
    ops: Mapping[str, frozenset[str]]

    def __contains__(self, op: object) -> bool:
        return op in self.ops

    def targets_of(self, op: str) -> frozenset[str]:
        """The targets that can run op; PlanError when op is not allowed."""
        try:
            return self.ops[op]
        except KeyError:
            raise PlanError(
                f"op {op!r} is not in the opset (version {self.version})"
            ) from None

    def check_targets(self, targets: Iterable[str]) -> tuple[str, ...]:
        """Refuse target names the opset does not know."""
        wanted = tuple(targets)
        unknown = [target for target in wanted if target not in self.targets]
        if unknown:
            raise PlanError(
                f"unknown plan target {unknown[0]!r}; the targets are "
                f"{', '.join(self.targets)}"
            )
        return wanted

    def require(self, ops: Iterable[str], targets: Iterable[str]) -> None:
        """Raise PlanError naming the first op that cannot run on a target."""
        wanted = self.check_targets(targets)
        for op in ops:
            supported = self.targets_of(op)
            for target in wanted:
                if target not in supported:
                    raise PlanError(
                        f"op {op!r} cannot run on target {target!r} "
                        f"(opset version {self.version})"
                    )


def _parse_opset(document: Any, source: str) -> Opset:
    try:
        version = int(document["version"])
        targets = tuple(str(target) for target in document["targets"])
        ops = {
            str(op): frozenset(str(target) for target in supported)
            for op, supported in document["ops"].items()
        }
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise PlanError(f"{source} is not a valid opset file: {exc}") from exc
    for op, supported in ops.items():
        if not supported <= set(targets):
            raise PlanError(f"{source}: op {op!r} names an unknown target")
        if PYTHON not in supported:
            raise PlanError(f"{source}: op {op!r} must support {PYTHON!r}")
    return Opset(version=version, targets=targets, ops=ops)


@cache
def load_opset(path: Path = OPSET_FILE) -> Opset:
    """Read the opset file once; every reader shares the result."""
    with path.open(encoding="utf-8") as handle:
        document = json.load(handle)
    return _parse_opset(document, str(path.name))


def aten_overload(op: str) -> torch._ops.OpOverload:
    """The torch operator for an allowed `aten.<name>.<overload>` op name."""
    parts = op.split(".")
    if len(parts) != 3 or parts[0] != "aten":
        raise PlanError(f"op {op!r} is not an aten operator name")
    try:
        packet = getattr(torch.ops.aten, parts[1])
        overload: torch._ops.OpOverload = getattr(packet, parts[2])
    except (AttributeError, RuntimeError) as exc:
        raise PlanError(f"op {op!r} does not exist in this torch build") from exc
    return overload


def op_name(target: object) -> str:
    """The plan name of a traced call target (an aten overload or a size op)."""
    if isinstance(target, torch._ops.OpOverload):
        return f"{target.namespace}.{target._opname}.{target._overloadname}"
    for name, function in SYM_FUNCTIONS.items():
        if target is function:
            return name
    if target is torch.sym_max:
        return "sym.max"
    if target is torch.sym_min:
        return "sym.min"
    return getattr(target, "__name__", repr(target))
