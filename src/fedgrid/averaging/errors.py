"""Errors of the averaging library."""

from __future__ import annotations

from fedgrid.errors import Conflict, InvalidArgument


class DiffRejected(InvalidArgument):
    """One report cannot be used; the message is the reason recorded for it."""


class AveragingFailed(Conflict):
    """No checkpoint can come out of this cycle; the message says why."""
