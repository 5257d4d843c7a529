"""Plans: Python functions over tensors traced into portable, safe programs."""

from fedgrid.plans.averaging import IterativeAverager, average, trace_averaging_plan
from fedgrid.plans.ir import InputKind, InputSpec, PlanKind
from fedgrid.plans.opset import Opset, load_opset
from fedgrid.plans.plan import Plan
from fedgrid.plans.torchscript import load_torchscript
from fedgrid.plans.trace import trace_plan, trace_training_plan

__all__ = [
    "InputKind",
    "InputSpec",
    "IterativeAverager",
    "Opset",
    "Plan",
    "PlanKind",
    "average",
    "load_opset",
    "load_torchscript",
    "trace_averaging_plan",
    "trace_plan",
    "trace_training_plan",
]
