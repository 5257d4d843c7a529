"""Errors of the secure aggregation library."""

from __future__ import annotations

from fedgrid.errors import Conflict, InvalidArgument


class SecAggError(Conflict):
    """Secure aggregation cannot go on as asked; the message says why."""


class TooFewSurvivors(SecAggError):
    """Too few workers are left to unmask the sum; the cycle ends without it."""


class MalformedMessage(InvalidArgument):
    """A protocol message cannot be used; its sender is left out of the run."""
