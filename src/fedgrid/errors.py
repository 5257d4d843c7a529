"""The exception tree shared by the library and every service."""

from __future__ import annotations


class FedgridError(Exception):
    """Base of every error fedgrid raises on purpose."""


class ConfigError(FedgridError):
    """A setting or a job config is missing or wrong; the message names it."""


class InvalidArgument(FedgridError):
    """A caller sent a value that cannot be used (bad name, bad shape...)."""


class NotFound(FedgridError):
    """A job, version, checkpoint, alias, plan or key does not exist."""


class AlreadyExists(FedgridError):
    """Something with the same identity was stored before."""


class Conflict(FedgridError):
    """The request is well formed but the current state refuses it."""


class DataLoss(FedgridError):
    """Stored bytes no longer match their recorded digest."""


class PlanError(FedgridError):
    """A plan cannot be traced, decoded, validated, exported or run."""


class TensorError(InvalidArgument):
    """Tensor or state bytes are malformed, truncated or of the wrong form."""


class StorageError(FedgridError):
    """A backing store (database, object store, Redis) failed."""


class SchemaError(FedgridError):
    """The database schema is older or newer than this code expects."""


class Unavailable(FedgridError):
    """A service the caller depends on cannot be reached."""
