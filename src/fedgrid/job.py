"""How a data scientist describes a job in Python, and its hosting stream."""

from __future__ import annotations

import json
import runpy
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedgrid.errors import ConfigError, FedgridError, InvalidArgument, PlanError
from fedgrid.jobconfig import ServerConfig, validate_client_config
from fedgrid.modelstore.names import check_name, check_version

if TYPE_CHECKING:
    import torch
    from torch import nn

    from fedgrid.plans import Plan

TRAINING_PLAN = "training_plan"
AVERAGING_PLAN = "averaging_plan"
AVERAGING_STYLES = ("iterative", "list")
PROTOCOLS = ("secagg+",)
HOST_CHUNK_BYTES = 1024 * 1024


@dataclass
class JobSpec:
    """A job: model, plans and configs, as written in a job file.

    `training_plan` is a step fn(model, params, **inputs) -> {metrics...,
    every updated parameter by name}; `example_inputs` gives one example
    batch plus zero-dimensional hyperparameters (such as lr), whose values
    workers read from `client_config`. `averaging_plan` is None (the server
    config's built-in averaging) or a function traced in `averaging_style`.
    """

    name: str
    version: str
    model: nn.Module
    training_plan: Callable[..., Mapping[str, torch.Tensor]]
    example_inputs: Mapping[str, Any]
    averaging_plan: Callable[..., Any] | None = None
    averaging_style: str = "iterative"
    client_config: dict[str, Any] = field(default_factory=dict)
    server_config: dict[str, Any] = field(default_factory=dict)
    protocols: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not isinstance(self.version, str):
            raise ConfigError("a job's name and version must be strings")
        try:
            check_name(self.name, "job name")
            check_version(self.version)
        except InvalidArgument as exc:
            raise ConfigError(str(exc)) from exc
        if self.averaging_style not in AVERAGING_STYLES:
            raise ConfigError(
                f"averaging_style must be one of {list(AVERAGING_STYLES)}, "
                f"got {self.averaging_style!r}"
            )
        for protocol in self.protocols:
            if protocol not in PROTOCOLS:
                raise ConfigError(
                    f"protocol {protocol!r} is not a built-in; use one of "
                    f"{list(PROTOCOLS)}"
                )

    def configs(self) -> tuple[ServerConfig, dict[str, Any]]:
        """The validated server and client configs."""
        server = ServerConfig.from_dict(self.server_config)
        client = validate_client_config(self.client_config, server)
        return server, client

    def initial_state(self) -> dict[str, torch.Tensor]:
        """The model's parameters by name: checkpoint 1 and the plans' state."""
        return {
            name: tensor.detach().clone().contiguous()
            for name, tensor in self.model.named_parameters()
        }

    def trace(self) -> TracedJob:
        """Trace the plans, validate configs and targets; errors name the problem."""
        from fedgrid.plans import trace_training_plan

        server, client = self.configs()
        if self.averaging_plan is not None:
            from fedgrid.secagg.averaging import refuse_averaging_plan

            refuse_averaging_plan(server, f"{AVERAGING_PLAN} ({self.averaging_style})")
        plans = {
            TRAINING_PLAN: trace_training_plan(
                self.training_plan, self.model, self.example_inputs, TRAINING_PLAN
            )
        }
        if self.averaging_plan is not None:
            plans[AVERAGING_PLAN] = self._trace_averaging()
        for name, plan in plans.items():
            try:
                plan.validate(server.targets)
            except PlanError as exc:
                raise PlanError(f"plan {name!r}: {exc}") from exc
        _check_hyperparameters(plans[TRAINING_PLAN], client)
        return TracedJob(self, server, client, plans, self.initial_state())

    def _trace_averaging(self) -> Plan:
        from fedgrid.plans import trace_averaging_plan

        assert self.averaging_plan is not None
        state = self.initial_state()
        if self.averaging_style == "list":
            return trace_averaging_plan(
                self.averaging_plan, state, style="list", name=AVERAGING_PLAN
            )
        return trace_averaging_plan(
            self.averaging_plan, state, style="iterative", name=AVERAGING_PLAN
        )


@dataclass
class TracedJob:
    """A job ready to push: validated configs, traced plans, initial model."""

    spec: JobSpec
    server_config: ServerConfig
    client_config: dict[str, Any]
    plans: dict[str, Plan]
    state: dict[str, torch.Tensor]

    def host_parts(self, chunk_bytes: int = HOST_CHUNK_BYTES) -> Iterator[bytes]:
        """The framed HostJobPart stream the gateway's admin route takes."""
        from fedgrid.tensors import encode_state_stream, frame
        from fedgrid.v1 import model_store_pb2 as ms

        averaging = AVERAGING_PLAN if AVERAGING_PLAN in self.plans else ""
        header = ms.HostJobHeader(
            name=self.spec.name,
            version=self.spec.version,
            client_config_json=json.dumps(self.client_config, sort_keys=True),
            server_config_json=self.server_config.to_json(),
            averaging_plan=averaging,
        )
        yield frame(ms.HostJobPart(header=header).SerializeToString())

        def blob(ref: ms.BlobRef, parts: Iterator[bytes]) -> Iterator[bytes]:
            yield frame(ms.HostJobPart(blob=ref).SerializeToString())
            buffer = b""
            for part in parts:
                buffer += part
                while len(buffer) >= chunk_bytes:
                    piece, buffer = buffer[:chunk_bytes], buffer[chunk_bytes:]
                    yield frame(ms.HostJobPart(data=piece).SerializeToString())
            if buffer:
                yield frame(ms.HostJobPart(data=buffer).SerializeToString())

        model_ref = ms.BlobRef(kind=ms.BlobRef.MODEL)
        yield from blob(model_ref, encode_state_stream(self.state, chunk_bytes))
        for name, plan in self.plans.items():
            ref = ms.BlobRef(kind=ms.BlobRef.PLAN, name=name, format="ops")
            yield from blob(ref, iter([plan.to_bytes()]))
        for name, parameters in self.spec.protocols.items():
            ref = ms.BlobRef(kind=ms.BlobRef.PROTOCOL, name=name)
            text = json.dumps(parameters, sort_keys=True, allow_nan=False)
            yield from blob(ref, iter([text.encode()]))

    def host_body(self) -> list[bytes]:
        """The whole hosting stream as a list of frames (its length is known)."""
        return list(self.host_parts())


def _check_hyperparameters(plan: Plan, client_config: Mapping[str, Any]) -> None:
    from fedgrid.plans import InputKind

    for spec in plan.inputs:
        if spec.kind is InputKind.HYPERPARAMETER and spec.name not in client_config:
            raise ConfigError(
                f"the training plan's hyperparameter {spec.name!r} must have a value "
                "in client_config (workers read it from there)"
            )


def load_job(path: str | Path, variable: str = "job") -> JobSpec:
    """Run a job file (the data scientist's own code) and return its JobSpec.

    The file defines a module-level `job = JobSpec(...)`; when no variable of
    that name exists, the one JobSpec instance in the file is used.
    """
    source = Path(path)
    if not source.is_file():
        raise ConfigError(f"job file {str(source)!r} does not exist")
    try:
        namespace = runpy.run_path(str(source), run_name="__fedgrid_job__")
    except FedgridError:
        raise
    except Exception as exc:  # the data scientist's own code failed
        where = f" (line {exc.lineno})" if isinstance(exc, SyntaxError) else ""
        raise ConfigError(
            f"job file {source} failed to load{where}: {type(exc).__name__}: {exc}"
        ) from exc
    found = namespace.get(variable)
    if isinstance(found, JobSpec):
        return found
    specs = [value for value in namespace.values() if isinstance(value, JobSpec)]
    if len(specs) == 1:
        return specs[0]
    raise ConfigError(
        f"{source} must define `{variable} = JobSpec(...)` "
        f"(found {len(specs)} JobSpec objects)"
    )
