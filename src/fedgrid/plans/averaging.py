"""Averaging plans: how the aggregator folds workers' diffs into one.

Two styles, both traced like any plan:

- iterative: fn(avg, diff, n) -> new avg, called once per diff in arrival
  order with n = 1, 2, ... (the number of diffs folded so far, this one
  included) and avg starting at zeros, so the aggregator holds one diff at
  a time;
- list: fn(diffs) -> average, called once, where diffs[name] holds every
  worker's diff of that parameter stacked along a new first dimension (one
  row per worker; its size is symbolic, so any number of diffs works).

Both return a dict with one tensor per parameter name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Literal

import torch

from fedgrid.errors import PlanError
from fedgrid.plans.ir import COUNT, InputKind, InputSpec, PlanKind
from fedgrid.plans.plan import Plan
from fedgrid.plans.trace import trace_program

State = Mapping[str, torch.Tensor]
Style = Literal["iterative", "list"]

AVG_PREFIX = "avg/"
DIFF_PREFIX = "diff/"
COUNT_INPUT = "n"
DIFFS_PREFIX = "diffs/"


def _result_state(result: object, names: Iterable[str], style: str) -> State:
    if not isinstance(result, Mapping):
        raise PlanError(f"a {style} averaging function must return a dict")
    missing = [name for name in names if name not in result]
    if missing:
        raise PlanError(
            f"the {style} averaging function must return every parameter; "
            f"missing {missing[0]!r}"
        )
    return result


def trace_averaging_plan(
    fn: Callable[..., State],
    example_state: State,
    style: Style = "iterative",
    name: str = "averaging_plan",
) -> Plan:
    """Trace an averaging function over a model state of this layout."""
    state = {key: value.detach() for key, value in example_state.items()}
    if not state:
        raise PlanError("an averaging plan needs a state with at least one tensor")
    if style == "iterative":
        return _trace_iterative(fn, state, name)
    if style == "list":
        return _trace_list(fn, state, name)
    raise PlanError(f"unknown averaging style {style!r}; use 'iterative' or 'list'")


def _trace_iterative(fn: Callable[..., State], state: State, name: str) -> Plan:
    specs = [
        InputSpec(AVG_PREFIX + key, InputKind.STATE, value.dtype, tuple(value.shape))
        for key, value in state.items()
    ]
    specs += [
        InputSpec(DIFF_PREFIX + key, InputKind.DIFF, value.dtype, tuple(value.shape))
        for key, value in state.items()
    ]
    specs.append(InputSpec(COUNT_INPUT, InputKind.HYPERPARAMETER, torch.float32, ()))
    examples = {AVG_PREFIX + key: value for key, value in state.items()}
    examples.update({DIFF_PREFIX + key: value for key, value in state.items()})
    examples[COUNT_INPUT] = torch.tensor(1.0)

    def call(values: dict[str, torch.Tensor]) -> State:
        avg = {key: values[AVG_PREFIX + key] for key in state}
        diff = {key: values[DIFF_PREFIX + key] for key in state}
        result = fn(avg, diff, values[COUNT_INPUT])
        return {key: _result_state(result, state, "iterative")[key] for key in state}

    return trace_program(call, specs, examples, name, PlanKind.AVERAGING_ITERATIVE)


def _trace_list(fn: Callable[..., State], state: State, name: str) -> Plan:
    specs = [
        InputSpec(
            DIFFS_PREFIX + key, InputKind.DIFF, value.dtype, (COUNT, *value.shape)
        )
        for key, value in state.items()
    ]
    examples = {
        DIFFS_PREFIX + key: torch.stack([value, value]) for key, value in state.items()
    }

    def call(values: dict[str, torch.Tensor]) -> State:
        diffs = {key: values[DIFFS_PREFIX + key] for key in state}
        result = fn(diffs)
        return {key: _result_state(result, state, "list")[key] for key in state}

    return trace_program(call, specs, examples, name, PlanKind.AVERAGING_LIST)


def _parameter_names(plan: Plan) -> list[str]:
    return plan.output_names


class IterativeAverager:
    """Folds diffs one at a time with an iterative averaging plan."""

    def __init__(self, plan: Plan) -> None:
        if plan.kind is not PlanKind.AVERAGING_ITERATIVE:
            raise PlanError(f"plan {plan.name!r} is not an iterative averaging plan")
        self._plan = plan
        self._names = _parameter_names(plan)
        self._average: dict[str, torch.Tensor] | None = None
        self.count = 0

    def add(self, diff: State) -> None:
        """Fold one worker's diff into the running average."""
        missing = [name for name in self._names if name not in diff]
        if missing:
            raise PlanError(f"diff {self.count + 1} has no tensor {missing[0]!r}")
        if self._average is None:
            self._average = {name: torch.zeros_like(diff[name]) for name in self._names}
        self.count += 1
        inputs: dict[str, object] = {
            AVG_PREFIX + name: value for name, value in self._average.items()
        }
        inputs.update({DIFF_PREFIX + name: diff[name] for name in self._names})
        inputs[COUNT_INPUT] = torch.tensor(float(self.count))
        self._average = self._plan.run_with(inputs)

    def result(self) -> dict[str, torch.Tensor]:
        """The average of every diff added so far."""
        if self._average is None:
            raise PlanError("no diff was added; there is nothing to average")
        return dict(self._average)


def average(plan: Plan, diffs: Iterable[State]) -> dict[str, torch.Tensor]:
    """Average diffs with an averaging plan of either style."""
    if plan.kind is PlanKind.AVERAGING_ITERATIVE:
        averager = IterativeAverager(plan)
        for diff in diffs:
            averager.add(diff)
        return averager.result()
    if plan.kind is not PlanKind.AVERAGING_LIST:
        raise PlanError(f"plan {plan.name!r} is not an averaging plan")
    collected = list(diffs)
    if not collected:
        raise PlanError("no diff was given; there is nothing to average")
    inputs: dict[str, object] = {}
    for name in _parameter_names(plan):
        try:
            inputs[DIFFS_PREFIX + name] = torch.stack(
                [diff[name] for diff in collected]
            )
        except KeyError:
            raise PlanError(f"a diff has no tensor {name!r}") from None
        except RuntimeError as exc:
            raise PlanError(f"diffs of {name!r} differ in shape: {exc}") from exc
    return plan.run_with(inputs)
