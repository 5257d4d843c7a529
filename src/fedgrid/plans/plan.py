"""The Plan object: a checked program that runs, serializes and exports."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

from fedgrid.plans.check import check_program
from fedgrid.plans.interpreter import Interpreter
from fedgrid.plans.ir import InputKind, InputSpec, PlanKind, Program
from fedgrid.plans.opset import Opset, load_opset
from fedgrid.plans.serialize import program_from_bytes, program_to_bytes
from fedgrid.plans.torchscript import export_torchscript

# The served plan format each target downloads.
TARGET_FORMATS = {"python": "ops", "browser": "ops", "torchscript": "torchscript"}


class Plan:
    """A traced plan: named inputs, op nodes over the opset, named outputs.

    Building one checks every node against the opset (known op, known refs,
    right arity) and binds the interpreter once, so `run` does little more
    than call the operators.
    """

    def __init__(self, program: Program, opset: Opset | None = None) -> None:
        self._opset = opset or load_opset()
        infos = check_program(program, self._opset)
        self._program = program
        self._interpreter = Interpreter(program, infos)

    # --- description ---------------------------------------------------

    @property
    def program(self) -> Program:
        """The underlying plan data (inputs, nodes, outputs, constants)."""
        return self._program

    @property
    def name(self) -> str:
        return self._program.name

    @property
    def kind(self) -> PlanKind:
        return self._program.kind

    @property
    def inputs(self) -> tuple[InputSpec, ...]:
        """Every input with its kind, dtype and shape (symbols for batch sizes)."""
        return self._program.inputs

    @property
    def input_names(self) -> list[str]:
        return [spec.name for spec in self._program.inputs]

    @property
    def state_names(self) -> list[str]:
        """Inputs that are model state, in model order."""
        return [
            spec.name for spec in self._program.inputs if spec.kind is InputKind.STATE
        ]

    @property
    def output_names(self) -> list[str]:
        return [name for name, _ in self._program.outputs]

    @property
    def ops(self) -> set[str]:
        """The distinct op names the plan uses."""
        return {node.op for node in self._program.nodes}

    def __repr__(self) -> str:
        return (
            f"Plan(name={self.name!r}, kind={self.kind.name.lower()}, "
            f"nodes={len(self._program.nodes)}, inputs={self.input_names}, "
            f"outputs={self.output_names})"
        )

    # --- use ------------------------------------------------------------

    def run(self, **inputs: Any) -> dict[str, torch.Tensor]:
        """Run the plan with the interpreter; inputs by name, outputs by name."""
        return self._interpreter.run(inputs)

    def run_with(self, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """Like run, for input names that are not Python identifiers."""
        return self._interpreter.run(inputs)

    def validate(self, targets: Iterable[str]) -> None:
        """Raise PlanError naming the op and target if a target cannot run it."""
        ops = [node.op for node in self._program.nodes]
        self._opset.require(dict.fromkeys(ops), targets)

    def to_bytes(self) -> bytes:
        """The plan's wire form: a PlanFile message (protobuf, no pickle)."""
        return program_to_bytes(self._program)

    @classmethod
    def from_bytes(cls, data: bytes, opset: Opset | None = None) -> Plan:
        """Decode and check plan bytes; PlanError says what is wrong and where."""
        return cls(program_from_bytes(data), opset)

    def to_torchscript(self) -> bytes:
        """A TorchScript module (torch.jit.save bytes) that replays the plan."""
        return export_torchscript(self._program, self._opset)

    def formats(self, targets: Iterable[str]) -> dict[str, bytes]:
        """Validate for targets, then the bytes of each format they download.

        "ops" is the PlanFile (Python and browser workers); "torchscript" is
        the module the grid compiles itself (LibTorch workers).
        """
        wanted = self._opset.check_targets(targets)
        self.validate(wanted)
        served: dict[str, bytes] = {}
        for target in wanted:
            fmt = TARGET_FORMATS[target]
            if fmt not in served:
                served[fmt] = self.to_bytes() if fmt == "ops" else self.to_torchscript()
        return served
