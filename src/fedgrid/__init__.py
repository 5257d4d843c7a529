"""fedgrid: a platform for private, cross-device federated learning."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from fedgrid.job import JobSpec
    from fedgrid.simulation import simulate

# Exported lazily so that `import fedgrid` (done by every service) stays light
# and does not load torch.
_LAZY = {"JobSpec": "fedgrid.job", "simulate": "fedgrid.simulation"}

__all__ = ["JobSpec", "__version__", "simulate"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fedgrid' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
