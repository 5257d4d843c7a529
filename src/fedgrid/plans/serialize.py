"""Plans to and from the plan protobuf (fedgrid.v1.Plan inside a PlanFile)."""

from __future__ import annotations

import hashlib

import torch
from google.protobuf.message import DecodeError

from fedgrid.errors import PlanError, TensorError
from fedgrid.plans.ir import (
    Argument,
    InputKind,
    InputSpec,
    Node,
    PlanKind,
    Program,
    Ref,
)
from fedgrid.tensors import dtype_code, tensor_from_proto, tensor_to_proto, torch_dtype
from fedgrid.v1 import plan_pb2, tensor_pb2

MAX_PLAN_BYTES = 256 * 1024 * 1024
MAX_LIST_DEPTH = 4

_LAYOUTS = {torch.strided: plan_pb2.LAYOUT_STRIDED}
_MEMORY_FORMATS = {
    torch.preserve_format: plan_pb2.MEMORY_FORMAT_PRESERVE,
    torch.contiguous_format: plan_pb2.MEMORY_FORMAT_CONTIGUOUS,
    torch.channels_last: plan_pb2.MEMORY_FORMAT_CHANNELS_LAST,
}
_LAYOUT_OF = {code: layout for layout, code in _LAYOUTS.items()}
_MEMORY_FORMAT_OF = {code: fmt for fmt, code in _MEMORY_FORMATS.items()}


def _encode_argument(value: Argument, depth: int = 0) -> plan_pb2.Argument:
    message = plan_pb2.Argument()
    if isinstance(value, Ref):
        message.ref = value.name
    elif value is None:
        message.none = True
    elif isinstance(value, bool):
        message.bool_value = value
    elif isinstance(value, int):
        message.int_value = value
    elif isinstance(value, float):
        message.float_value = value
    elif isinstance(value, str):
        message.string_value = value
    elif isinstance(value, torch.dtype):
        message.dtype = dtype_code(value)
    elif isinstance(value, torch.device):
        message.device = str(value)
    elif isinstance(value, torch.layout) and value in _LAYOUTS:
        message.layout = _LAYOUTS[value]
    elif isinstance(value, torch.memory_format) and value in _MEMORY_FORMATS:
        message.memory_format = _MEMORY_FORMATS[value]
    elif isinstance(value, tuple) and depth < MAX_LIST_DEPTH:
        message.list.items.extend(_encode_argument(item, depth + 1) for item in value)
    else:
        raise PlanError(f"argument {value!r} cannot be stored in a plan")
    return message


def _decode_argument(
    message: plan_pb2.Argument, where: str, depth: int = 0
) -> Argument:
    kind = message.WhichOneof("kind")
    if kind == "ref":
        return Ref(message.ref)
    if kind == "none":
        return None
    if kind == "bool_value":
        return message.bool_value
    if kind == "int_value":
        return message.int_value
    if kind == "float_value":
        return message.float_value
    if kind == "string_value":
        return message.string_value
    if kind == "dtype":
        try:
            return torch_dtype(message.dtype)
        except TensorError as exc:
            raise PlanError(f"{where}: {exc}") from exc
    if kind == "device":
        if message.device != "cpu":
            raise PlanError(f"{where}: device {message.device!r}; plans run on 'cpu'")
        return torch.device("cpu")
    if kind == "layout" and message.layout in _LAYOUT_OF:
        return _LAYOUT_OF[message.layout]
    if kind == "memory_format" and message.memory_format in _MEMORY_FORMAT_OF:
        return _MEMORY_FORMAT_OF[message.memory_format]
    if kind == "list" and depth < MAX_LIST_DEPTH:
        return tuple(
            _decode_argument(item, where, depth + 1) for item in message.list.items
        )
    raise PlanError(f"{where}: unreadable argument ({kind or 'empty'})")


def program_to_proto(program: Program) -> plan_pb2.Plan:
    """Encode a plan as its protobuf message."""
    message = plan_pb2.Plan(
        name=program.name,
        opset_version=program.opset_version,
        kind=program.kind.value,  # type: ignore[arg-type]
    )
    for spec in program.inputs:
        shape = [
            plan_pb2.Dim(symbol=dim) if isinstance(dim, str) else plan_pb2.Dim(size=dim)
            for dim in spec.shape
        ]
        message.inputs.append(
            plan_pb2.Input(
                name=spec.name,
                kind=spec.kind.value,  # type: ignore[arg-type]
                dtype=dtype_code(spec.dtype),
                shape=shape,
            )
        )
    for name, ref in program.outputs:
        message.outputs.append(plan_pb2.Output(name=name, ref=ref))
    for node in program.nodes:
        message.nodes.append(
            plan_pb2.Node(
                op=node.op,
                args=[_encode_argument(value) for value in node.args],
                kwargs=[
                    plan_pb2.KeywordArgument(name=key, value=_encode_argument(value))
                    for key, value in node.kwargs
                ],
                outputs=list(node.outputs),
            )
        )
    for name, tensor in program.constants.items():
        message.constants.append(
            tensor_pb2.NamedTensor(name=name, tensor=tensor_to_proto(tensor))
        )
    return message


def _decode_input(message: plan_pb2.Input) -> InputSpec:
    where = f"input {message.name!r}"
    try:
        kind = InputKind(message.kind)
        dtype = torch_dtype(message.dtype)
    except (ValueError, TensorError) as exc:
        raise PlanError(f"{where}: {exc}") from exc
    shape: list[int | str] = []
    for dim in message.shape:
        which = dim.WhichOneof("kind")
        if which is None:
            raise PlanError(f"{where}: a dimension is neither a size nor a symbol")
        shape.append(dim.size if which == "size" else dim.symbol)
    return InputSpec(name=message.name, kind=kind, dtype=dtype, shape=tuple(shape))


def program_from_proto(message: plan_pb2.Plan) -> Program:
    """Decode a plan message into a Program (not yet checked against the opset)."""
    try:
        kind = PlanKind(message.kind)
    except ValueError:
        raise PlanError(
            f"plan {message.name!r} has unknown kind {message.kind}"
        ) from None
    nodes = []
    for index, node in enumerate(message.nodes):
        where = f"node {index} ({node.op})"
        nodes.append(
            Node(
                op=node.op,
                args=tuple(_decode_argument(value, where) for value in node.args),
                kwargs=tuple(
                    (item.name, _decode_argument(item.value, where))
                    for item in node.kwargs
                ),
                outputs=tuple(node.outputs),
            )
        )
    constants: dict[str, torch.Tensor] = {}
    for item in message.constants:
        if item.name in constants:
            raise PlanError(f"constant {item.name!r} appears twice")
        try:
            constants[item.name] = tensor_from_proto(item.tensor, where=item.name)
        except TensorError as exc:
            raise PlanError(f"constant {item.name!r}: {exc}") from exc
    return Program(
        name=message.name,
        kind=kind,
        opset_version=message.opset_version,
        inputs=tuple(_decode_input(spec) for spec in message.inputs),
        outputs=tuple((output.name, output.ref) for output in message.outputs),
        nodes=tuple(nodes),
        constants=constants,
    )


def program_to_bytes(program: Program) -> bytes:
    """Serialize a plan into PlanFile bytes (plan message plus its digest)."""
    payload = program_to_proto(program).SerializeToString()
    digest = hashlib.sha256(payload).digest()
    return plan_pb2.PlanFile(plan=payload, sha256=digest).SerializeToString()


def program_from_bytes(data: bytes) -> Program:
    """Parse PlanFile bytes, refusing truncated, damaged or oversized input."""
    if len(data) > MAX_PLAN_BYTES:
        raise PlanError(f"plan of {len(data)} bytes exceeds the limit {MAX_PLAN_BYTES}")
    envelope = plan_pb2.PlanFile()
    try:
        envelope.ParseFromString(data)
    except DecodeError as exc:
        raise PlanError(
            f"plan bytes are truncated or not a plan ({len(data)} bytes)"
        ) from exc
    if len(envelope.sha256) != hashlib.sha256().digest_size:
        raise PlanError(
            f"plan bytes are truncated or not a plan ({len(data)} bytes): "
            "the digest is missing"
        )
    if hashlib.sha256(envelope.plan).digest() != envelope.sha256:
        raise PlanError("plan bytes are damaged: the digest does not match")
    message = plan_pb2.Plan()
    try:
        message.ParseFromString(envelope.plan)
    except DecodeError as exc:
        raise PlanError("the plan message inside the plan bytes is malformed") from exc
    return program_from_proto(message)
