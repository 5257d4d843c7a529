"""TorchScript export: a scripted module whose forward replays a plan's ops.

The grid writes the TorchScript source itself from a checked op list: every
identifier is generated here, op names come from the opset and literals are
formatted from typed values, so no text from a plan's author reaches the
compiler. The source is compiled by TorchScript (not Python) and saved with
torch.jit.save, the archive format LibTorch loads.
"""

from __future__ import annotations

import io
import math
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from fedgrid.errors import PlanError
from fedgrid.plans.ir import Argument, Node, Program, Ref
from fedgrid.plans.opset import TORCHSCRIPT, Opset, aten_overload

FORMAT = "torchscript"

_SYM_BINARY = {
    "sym.add": "+",
    "sym.sub": "-",
    "sym.mul": "*",
    "sym.floordiv": "//",
    "sym.mod": "%",
}
_SAFE_STRING = re.compile(r"[A-Za-z0-9_]{0,64}")
_MEMORY_FORMATS = {
    torch.preserve_format: "torch.preserve_format",
    torch.contiguous_format: "torch.contiguous_format",
    torch.channels_last: "torch.channels_last",
}


@contextmanager
def quiet_jit() -> Iterator[None]:
    """Silence torch.jit's deprecation notice (the one place it is filtered)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit.*deprecated.*")
        yield


class _Constants(nn.Module):
    """Holds a plan's constant tensors as buffers of the scripted module."""

    def __init__(self, constants: dict[str, torch.Tensor]) -> None:
        super().__init__()
        for name, tensor in constants.items():
            self.register_buffer(name, tensor)


class _Source:
    """Writes the TorchScript text of a plan, one line per op."""

    def __init__(self, program: Program) -> None:
        self.program = program
        self.names: dict[str, str] = {}
        self.lines: list[str] = []
        self.buffers: dict[str, torch.Tensor] = {}
        for index, spec in enumerate(program.inputs):
            self.names[spec.name] = f"i{index}"
        for index, (name, tensor) in enumerate(program.constants.items()):
            self.names[name] = f"self.c{index}"
            self.buffers[f"c{index}"] = tensor

    def literal(self, value: Argument, where: str, list_type: str = "List[int]") -> str:
        if isinstance(value, Ref):
            return self.names[value.name]
        if value is None or isinstance(value, (bool, int)):
            return repr(value)
        if isinstance(value, float):
            return repr(value) if math.isfinite(value) else f'float("{value}")'
        if isinstance(value, str):
            if not _SAFE_STRING.fullmatch(value):
                raise PlanError(f"{where}: string {value!r} cannot be exported")
            return f'"{value}"'
        if isinstance(value, torch.dtype):
            return str(value)
        if isinstance(value, torch.device):
            return f'torch.device("{value.type}")'
        if value is torch.strided:
            return "torch.strided"
        if isinstance(value, torch.memory_format) and value in _MEMORY_FORMATS:
            return _MEMORY_FORMATS[value]
        if isinstance(value, tuple):
            if not value:
                return f"torch.jit.annotate({list_type}, [])"
            return "[" + ", ".join(self.literal(item, where) for item in value) + "]"
        raise PlanError(f"{where}: argument {value!r} cannot be exported")

    def call(self, index: int, node: Node) -> str:
        where = f"node {index} ({node.op})"
        args = [self.literal(value, where) for value in node.args]
        if node.op in _SYM_BINARY:
            return f"{args[0]} {_SYM_BINARY[node.op]} {args[1]}"
        if node.op == "sym.neg":
            return f"-{args[0]}"
        if node.op in ("sym.max", "sym.min"):
            return f"{node.op[4:]}({args[0]}, {args[1]})"
        schema = aten_overload(node.op)._schema
        types = {p.name: _list_type(str(p.type)) for p in schema.arguments}
        positional = [p.name for p in schema.arguments]
        args = [
            self.literal(value, where, types[positional[i]])
            for i, value in enumerate(node.args)
        ]
        args += [
            f"{key}={self.literal(value, where, types[key])}"
            for key, value in node.kwargs
        ]
        packet = node.op.split(".")[1]
        return f"torch.ops.aten.{packet}({', '.join(args)})"

    def write(self) -> str:
        for index, node in enumerate(self.program.nodes):
            expression = self.call(index, node)
            if len(node.outputs) == 1 and not _returns_list(node):
                target = self.names[node.outputs[0]] = f"v{index}"
                self.lines.append(f"    {target} = {expression}")
                continue
            self.lines.append(f"    r{index} = {expression}")
            for position, name in enumerate(node.outputs):
                if name:
                    self.names[name] = f"v{index}_{position}"
                    self.lines.append(f"    v{index}_{position} = r{index}[{position}]")
        params = ", ".join(f"i{k}: Tensor" for k in range(len(self.program.inputs)))
        returned = ", ".join(
            f'"{name}": {self.names[ref]}' for name, ref in self.program.outputs
        )
        head = f"def forward(self, {params}) -> Dict[str, Tensor]:"
        return "\n".join([head, *self.lines, f"    return {{{returned}}}", ""])


def _list_type(type_name: str) -> str:
    match = re.search(r"List\[\w+\]", type_name)
    return match.group(0) if match else "List[int]"


def _returns_list(node: Node) -> bool:
    if node.op.startswith("sym."):
        return False
    returns = aten_overload(node.op)._schema.returns
    return len(returns) > 1 or str(returns[0].type).startswith("List[")


def _names_method(method: str, names: list[str]) -> str:
    quoted = ", ".join(f'"{name}"' for name in names)
    return f"def {method}(self) -> List[str]:\n    return [{quoted}]\n"


def export_torchscript(program: Program, opset: Opset) -> bytes:
    """Compile the plan into a TorchScript module; torch.jit.save bytes.

    forward takes the plan's inputs positionally in plan order and returns
    a dict of its outputs; input_names() and output_names() list both.
    """
    for index, node in enumerate(program.nodes):
        if TORCHSCRIPT not in opset.targets_of(node.op):
            raise PlanError(
                f"plan {program.name!r} cannot be exported to {FORMAT}: node "
                f"{index} uses op {node.op!r}, which {FORMAT} cannot run"
            )
    source = _Source(program)
    text = source.write()
    # A fresh class per export: TorchScript keys compiled methods by class.
    holder_class = type("Plan", (_Constants,), {"__module__": __name__})
    holder = holder_class(source.buffers)
    try:
        with quiet_jit():
            module = torch.jit.script(holder)
            module.define(text)
            module.define(
                _names_method("input_names", [s.name for s in program.inputs])
            )
            module.define(
                _names_method("output_names", [name for name, _ in program.outputs])
            )
            buffer = io.BytesIO()
            torch.jit.save(module, buffer)
    except RuntimeError as exc:
        raise PlanError(
            f"plan {program.name!r} cannot be exported to {FORMAT}: "
            f"{str(exc).splitlines()[0]}"
        ) from exc
    return buffer.getvalue()


def load_torchscript(data: bytes) -> torch.jit.ScriptModule:
    """Load TorchScript bytes the grid itself made (tests and tools only)."""
    with quiet_jit():
        module: torch.jit.ScriptModule = torch.jit.load(io.BytesIO(data))
    return module
