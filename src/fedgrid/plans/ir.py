"""The in-memory form of a plan: inputs, op nodes, outputs and constants."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeAlias

import torch

from fedgrid.errors import PlanError

# Sizes that are not fixed when the plan is traced.
BATCH = "batch"
COUNT = "count"

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-/]{0,199}")


class PlanKind(enum.Enum):
    """What a plan is for, which tells its caller how to feed it."""

    GENERIC = 1
    TRAINING = 2
    AVERAGING_ITERATIVE = 3
    AVERAGING_LIST = 4


class InputKind(enum.Enum):
    """The role of a plan input."""

    STATE = 1  # a model parameter (or a running average of them)
    DATA = 2  # a batch: its first dimension is the symbolic batch size
    HYPERPARAMETER = 3  # a fixed-shape value the caller sets, such as lr
    DIFF = 4  # one worker's diff, or all of them stacked (list averaging)


@dataclass(frozen=True)
class Ref:
    """A reference to a named value: an input, a constant or a node output."""

    name: str


Argument: TypeAlias = (
    Ref
    | bool
    | int
    | float
    | str
    | torch.dtype
    | torch.device
    | torch.layout
    | torch.memory_format
    | tuple["Argument", ...]
    | None
)


@dataclass(frozen=True)
class Node:
    """One operator call: op name, arguments and the names of its results.

    An op with several results lists one name per result; a result nobody
    reads has the empty name.
    """

    op: str
    args: tuple[Argument, ...]
    kwargs: tuple[tuple[str, Argument], ...] = ()
    outputs: tuple[str, ...] = ()


@dataclass(frozen=True)
class InputSpec:
    """A plan input: a dimension is either a size or a symbol like `batch`."""

    name: str
    kind: InputKind
    dtype: torch.dtype
    shape: tuple[int | str, ...]


@dataclass(frozen=True)
class Program:
    """Everything a plan is; a Plan wraps one and runs or exports it."""

    name: str
    kind: PlanKind
    opset_version: int
    inputs: tuple[InputSpec, ...]
    outputs: tuple[tuple[str, str], ...]  # (output name, ref name)
    nodes: tuple[Node, ...]
    constants: Mapping[str, torch.Tensor] = field(default_factory=dict)


def check_name(name: str, what: str) -> str:
    """Refuse names that other tools could not carry safely."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise PlanError(
            f"{what} name {name!r} is not allowed: use letters, digits, "
            "'_', '.', '-' and '/', starting with a letter, digit or '_' "
            "(at most 200 characters)"
        )
    return name


def iter_refs(argument: Argument) -> list[str]:
    """The names an argument refers to, in order, nested lists included."""
    if isinstance(argument, Ref):
        return [argument.name]
    if isinstance(argument, tuple):
        return [name for item in argument for name in iter_refs(item)]
    return []


def node_refs(node: Node) -> list[str]:
    """Every value name a node reads."""
    names = [name for argument in node.args for name in iter_refs(argument)]
    for _, argument in node.kwargs:
        names.extend(iter_refs(argument))
    return names
