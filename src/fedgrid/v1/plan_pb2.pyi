from fedgrid.v1 import tensor_pb2 as _tensor_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PlanKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PLAN_KIND_UNSPECIFIED: _ClassVar[PlanKind]
    PLAN_KIND_GENERIC: _ClassVar[PlanKind]
    PLAN_KIND_TRAINING: _ClassVar[PlanKind]
    PLAN_KIND_AVERAGING_ITERATIVE: _ClassVar[PlanKind]
    PLAN_KIND_AVERAGING_LIST: _ClassVar[PlanKind]

class InputKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INPUT_KIND_UNSPECIFIED: _ClassVar[InputKind]
    INPUT_KIND_STATE: _ClassVar[InputKind]
    INPUT_KIND_DATA: _ClassVar[InputKind]
    INPUT_KIND_HYPERPARAMETER: _ClassVar[InputKind]
    INPUT_KIND_DIFF: _ClassVar[InputKind]

class Layout(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LAYOUT_UNSPECIFIED: _ClassVar[Layout]
    LAYOUT_STRIDED: _ClassVar[Layout]

class MemoryFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MEMORY_FORMAT_UNSPECIFIED: _ClassVar[MemoryFormat]
    MEMORY_FORMAT_PRESERVE: _ClassVar[MemoryFormat]
    MEMORY_FORMAT_CONTIGUOUS: _ClassVar[MemoryFormat]
    MEMORY_FORMAT_CHANNELS_LAST: _ClassVar[MemoryFormat]
PLAN_KIND_UNSPECIFIED: PlanKind
PLAN_KIND_GENERIC: PlanKind
PLAN_KIND_TRAINING: PlanKind
PLAN_KIND_AVERAGING_ITERATIVE: PlanKind
PLAN_KIND_AVERAGING_LIST: PlanKind
INPUT_KIND_UNSPECIFIED: InputKind
INPUT_KIND_STATE: InputKind
INPUT_KIND_DATA: InputKind
INPUT_KIND_HYPERPARAMETER: InputKind
INPUT_KIND_DIFF: InputKind
LAYOUT_UNSPECIFIED: Layout
LAYOUT_STRIDED: Layout
MEMORY_FORMAT_UNSPECIFIED: MemoryFormat
MEMORY_FORMAT_PRESERVE: MemoryFormat
MEMORY_FORMAT_CONTIGUOUS: MemoryFormat
MEMORY_FORMAT_CHANNELS_LAST: MemoryFormat

class Dim(_message.Message):
    __slots__ = ("size", "symbol")
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    size: int
    symbol: str
    def __init__(self, size: _Optional[int] = ..., symbol: _Optional[str] = ...) -> None: ...

class Input(_message.Message):
    __slots__ = ("name", "kind", "dtype", "shape")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: InputKind
    dtype: _tensor_pb2.DType
    shape: _containers.RepeatedCompositeFieldContainer[Dim]
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[_Union[InputKind, str]] = ..., dtype: _Optional[_Union[_tensor_pb2.DType, str]] = ..., shape: _Optional[_Iterable[_Union[Dim, _Mapping]]] = ...) -> None: ...

class Output(_message.Message):
    __slots__ = ("name", "ref")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REF_FIELD_NUMBER: _ClassVar[int]
    name: str
    ref: str
    def __init__(self, name: _Optional[str] = ..., ref: _Optional[str] = ...) -> None: ...

class ArgumentList(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Argument]
    def __init__(self, items: _Optional[_Iterable[_Union[Argument, _Mapping]]] = ...) -> None: ...

class Argument(_message.Message):
    __slots__ = ("ref", "float_value", "int_value", "bool_value", "none", "string_value", "dtype", "device", "layout", "memory_format", "list")
    REF_FIELD_NUMBER: _ClassVar[int]
    FLOAT_VALUE_FIELD_NUMBER: _ClassVar[int]
    INT_VALUE_FIELD_NUMBER: _ClassVar[int]
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    NONE_FIELD_NUMBER: _ClassVar[int]
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    LAYOUT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FORMAT_FIELD_NUMBER: _ClassVar[int]
    LIST_FIELD_NUMBER: _ClassVar[int]
    ref: str
    float_value: float
    int_value: int
    bool_value: bool
    none: bool
    string_value: str
    dtype: _tensor_pb2.DType
    device: str
    layout: Layout
    memory_format: MemoryFormat
    list: ArgumentList
    def __init__(self, ref: _Optional[str] = ..., float_value: _Optional[float] = ..., int_value: _Optional[int] = ..., bool_value: _Optional[bool] = ..., none: _Optional[bool] = ..., string_value: _Optional[str] = ..., dtype: _Optional[_Union[_tensor_pb2.DType, str]] = ..., device: _Optional[str] = ..., layout: _Optional[_Union[Layout, str]] = ..., memory_format: _Optional[_Union[MemoryFormat, str]] = ..., list: _Optional[_Union[ArgumentList, _Mapping]] = ...) -> None: ...

class KeywordArgument(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: Argument
    def __init__(self, name: _Optional[str] = ..., value: _Optional[_Union[Argument, _Mapping]] = ...) -> None: ...

class Node(_message.Message):
    __slots__ = ("op", "args", "kwargs", "outputs")
    OP_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    KWARGS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    op: str
    args: _containers.RepeatedCompositeFieldContainer[Argument]
    kwargs: _containers.RepeatedCompositeFieldContainer[KeywordArgument]
    outputs: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, op: _Optional[str] = ..., args: _Optional[_Iterable[_Union[Argument, _Mapping]]] = ..., kwargs: _Optional[_Iterable[_Union[KeywordArgument, _Mapping]]] = ..., outputs: _Optional[_Iterable[str]] = ...) -> None: ...

class Plan(_message.Message):
    __slots__ = ("name", "opset_version", "kind", "inputs", "outputs", "nodes", "constants")
    NAME_FIELD_NUMBER: _ClassVar[int]
    OPSET_VERSION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    CONSTANTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    opset_version: int
    kind: PlanKind
    inputs: _containers.RepeatedCompositeFieldContainer[Input]
    outputs: _containers.RepeatedCompositeFieldContainer[Output]
    nodes: _containers.RepeatedCompositeFieldContainer[Node]
    constants: _containers.RepeatedCompositeFieldContainer[_tensor_pb2.NamedTensor]
    def __init__(self, name: _Optional[str] = ..., opset_version: _Optional[int] = ..., kind: _Optional[_Union[PlanKind, str]] = ..., inputs: _Optional[_Iterable[_Union[Input, _Mapping]]] = ..., outputs: _Optional[_Iterable[_Union[Output, _Mapping]]] = ..., nodes: _Optional[_Iterable[_Union[Node, _Mapping]]] = ..., constants: _Optional[_Iterable[_Union[_tensor_pb2.NamedTensor, _Mapping]]] = ...) -> None: ...

class PlanFile(_message.Message):
    __slots__ = ("plan", "sha256")
    PLAN_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    plan: bytes
    sha256: bytes
    def __init__(self, plan: _Optional[bytes] = ..., sha256: _Optional[bytes] = ...) -> None: ...
