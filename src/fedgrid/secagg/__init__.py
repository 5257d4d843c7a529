"""Secure aggregation (SecAgg+): the grid learns only the sum of the inputs."""

from fedgrid.secagg.driver import Outcome, Round, run_secagg
from fedgrid.secagg.errors import MalformedMessage, SecAggError, TooFewSurvivors
from fedgrid.secagg.params import SecAggParams
from fedgrid.secagg.quantization import Quantizer
from fedgrid.secagg.server import SecAggResult, SecAggServer, UnmaskPlan
from fedgrid.secagg.unmasking import MaskJob, mask_total, split_jobs
from fedgrid.secagg.worker import SecAggWorker

__all__ = [
    "MalformedMessage",
    "MaskJob",
    "Outcome",
    "Quantizer",
    "Round",
    "SecAggError",
    "SecAggParams",
    "SecAggResult",
    "SecAggServer",
    "SecAggWorker",
    "TooFewSurvivors",
    "UnmaskPlan",
    "mask_total",
    "run_secagg",
    "split_jobs",
]
