"""Averaging with the job's own traced averaging plan, in either style.

The plan gets validated diffs only (the same checks as the built-ins) and
returns the averaged diff, so new = current - output, cast to each
parameter's dtype. Iterative plans see one diff at a time (memory: the
running average plus one diff); list plans need every usable diff at once
(memory: diffs x model), so prefer the iterative style for large cycles.
Plans are unweighted: a report's sample count only weighs its metrics.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import torch

from fedgrid.averaging.accumulate import ReportInput, Tally, read_report
from fedgrid.averaging.diffs import DiffBuffer
from fedgrid.averaging.engine import AveragingResult, checked_model, nothing_usable
from fedgrid.averaging.errors import AveragingFailed, DiffRejected
from fedgrid.averaging.layout import ModelLayout
from fedgrid.errors import PlanError
from fedgrid.plans import IterativeAverager, Plan, PlanKind
from fedgrid.plans import average as plan_average


def _usable_diffs(
    reports: Sequence[ReportInput], layout: ModelLayout, tally: Tally
) -> Iterator[dict[str, torch.Tensor]]:
    buffer = DiffBuffer()
    for report in reports:
        try:
            parsed, _ = read_report(report, layout, buffer, weighted=False)
        except DiffRejected as exc:
            tally.exclude(report.key, str(exc))
            continue
        # Copies: the buffer is reused by the next report, and a plan's output
        # may be one of its inputs.
        diff = {spec.name: parsed.tensor(spec).clone() for spec in layout}
        tally.count(report)
        yield diff


def average_with_plan(
    current: Mapping[str, torch.Tensor],
    reports: Sequence[ReportInput],
    plan: Plan,
) -> AveragingResult:
    """Run an averaging plan over the usable diffs and step the model."""
    layout = ModelLayout.of(current)
    tally = Tally()
    try:
        if plan.kind is PlanKind.AVERAGING_ITERATIVE:
            averager = IterativeAverager(plan)
            for diff in _usable_diffs(reports, layout, tally):
                averager.add(diff)
            if not tally.used:
                raise nothing_usable(tally)
            mean = averager.result()
        elif plan.kind is PlanKind.AVERAGING_LIST:
            diffs = list(_usable_diffs(reports, layout, tally))
            if not diffs:
                raise nothing_usable(tally)
            mean = plan_average(plan, diffs)
        else:
            raise AveragingFailed(f"plan {plan.name!r} is not an averaging plan")
    except PlanError as exc:
        raise AveragingFailed(f"the averaging plan failed: {exc}") from exc
    new: dict[str, torch.Tensor] = {}
    for spec in layout:
        output = mean.get(spec.name)
        if output is None or tuple(output.shape) != spec.shape:
            raise AveragingFailed(
                f"the averaging plan returned no {list(spec.shape)} tensor "
                f"for {spec.name!r}"
            )
        base = current[spec.name]
        if spec.is_floating:
            new[spec.name] = (base.to(output.dtype) - output).to(spec.dtype)
        else:
            new[spec.name] = base - torch.round(output).to(spec.dtype)
    return AveragingResult(
        state=checked_model(new),
        metrics=tally.metrics(),
        excluded=dict(tally.excluded),
    )
