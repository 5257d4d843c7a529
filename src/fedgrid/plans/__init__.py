"""Plans: Python functions over tensors traced into portable, safe programs."""

from fedgrid.plans.ir import InputKind, InputSpec, PlanKind
from fedgrid.plans.opset import Opset, load_opset
from fedgrid.plans.plan import Plan
from fedgrid.plans.trace import trace_plan, trace_training_plan

__all__ = [
    "InputKind",
    "InputSpec",
    "Opset",
    "Plan",
    "PlanKind",
    "load_opset",
    "trace_plan",
    "trace_training_plan",
]
