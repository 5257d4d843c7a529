from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobRef(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class PlanInfo(_message.Message):
    __slots__ = ("name", "formats")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FORMATS_FIELD_NUMBER: _ClassVar[int]
    name: str
    formats: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., formats: _Optional[_Iterable[str]] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("id", "name", "version", "client_config_json", "server_config_json", "plans", "protocols", "averaging_plan", "created_at_unix", "latest_checkpoint")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CLIENT_CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    SERVER_CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    PLANS_FIELD_NUMBER: _ClassVar[int]
    PROTOCOLS_FIELD_NUMBER: _ClassVar[int]
    AVERAGING_PLAN_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_UNIX_FIELD_NUMBER: _ClassVar[int]
    LATEST_CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    version: str
    client_config_json: str
    server_config_json: str
    plans: _containers.RepeatedCompositeFieldContainer[PlanInfo]
    protocols: _containers.RepeatedScalarFieldContainer[str]
    averaging_plan: str
    created_at_unix: int
    latest_checkpoint: int
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., version: _Optional[str] = ..., client_config_json: _Optional[str] = ..., server_config_json: _Optional[str] = ..., plans: _Optional[_Iterable[_Union[PlanInfo, _Mapping]]] = ..., protocols: _Optional[_Iterable[str]] = ..., averaging_plan: _Optional[str] = ..., created_at_unix: _Optional[int] = ..., latest_checkpoint: _Optional[int] = ...) -> None: ...

class BlobRef(_message.Message):
    __slots__ = ("kind", "name", "format")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[BlobRef.Kind]
        MODEL: _ClassVar[BlobRef.Kind]
        PLAN: _ClassVar[BlobRef.Kind]
        PROTOCOL: _ClassVar[BlobRef.Kind]
        SERVER_STATE: _ClassVar[BlobRef.Kind]
    KIND_UNSPECIFIED: BlobRef.Kind
    MODEL: BlobRef.Kind
    PLAN: BlobRef.Kind
    PROTOCOL: BlobRef.Kind
    SERVER_STATE: BlobRef.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    kind: BlobRef.Kind
    name: str
    format: str
    def __init__(self, kind: _Optional[_Union[BlobRef.Kind, str]] = ..., name: _Optional[str] = ..., format: _Optional[str] = ...) -> None: ...

class HostJobHeader(_message.Message):
    __slots__ = ("name", "version", "client_config_json", "server_config_json", "averaging_plan")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CLIENT_CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    SERVER_CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    AVERAGING_PLAN_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    client_config_json: str
    server_config_json: str
    averaging_plan: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., client_config_json: _Optional[str] = ..., server_config_json: _Optional[str] = ..., averaging_plan: _Optional[str] = ...) -> None: ...

class HostJobPart(_message.Message):
    __slots__ = ("header", "blob", "data")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    BLOB_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    header: HostJobHeader
    blob: BlobRef
    data: bytes
    def __init__(self, header: _Optional[_Union[HostJobHeader, _Mapping]] = ..., blob: _Optional[_Union[BlobRef, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class CheckpointRef(_message.Message):
    __slots__ = ("job", "number", "alias")
    JOB_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    job: JobRef
    number: int
    alias: str
    def __init__(self, job: _Optional[_Union[JobRef, _Mapping]] = ..., number: _Optional[int] = ..., alias: _Optional[str] = ...) -> None: ...

class Checkpoint(_message.Message):
    __slots__ = ("job_id", "number", "digest", "size", "created_at_unix", "metrics", "aliases", "cycle_id")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_UNIX_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    CYCLE_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    number: int
    digest: str
    size: int
    created_at_unix: int
    metrics: _containers.ScalarMap[str, float]
    aliases: _containers.RepeatedScalarFieldContainer[str]
    cycle_id: str
    def __init__(self, job_id: _Optional[str] = ..., number: _Optional[int] = ..., digest: _Optional[str] = ..., size: _Optional[int] = ..., created_at_unix: _Optional[int] = ..., metrics: _Optional[_Mapping[str, float]] = ..., aliases: _Optional[_Iterable[str]] = ..., cycle_id: _Optional[str] = ...) -> None: ...

class BlobPart(_message.Message):
    __slots__ = ("checkpoint", "blob", "data")
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    BLOB_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    checkpoint: Checkpoint
    blob: BlobRef
    data: bytes
    def __init__(self, checkpoint: _Optional[_Union[Checkpoint, _Mapping]] = ..., blob: _Optional[_Union[BlobRef, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class PlanRef(_message.Message):
    __slots__ = ("job", "name", "format")
    JOB_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    job: JobRef
    name: str
    format: str
    def __init__(self, job: _Optional[_Union[JobRef, _Mapping]] = ..., name: _Optional[str] = ..., format: _Optional[str] = ...) -> None: ...

class ProtocolRef(_message.Message):
    __slots__ = ("job", "name")
    JOB_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    job: JobRef
    name: str
    def __init__(self, job: _Optional[_Union[JobRef, _Mapping]] = ..., name: _Optional[str] = ...) -> None: ...

class CreateCheckpointHeader(_message.Message):
    __slots__ = ("job_id", "cycle_id", "metrics", "aliases")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    CYCLE_ID_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    cycle_id: str
    metrics: _containers.ScalarMap[str, float]
    aliases: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, job_id: _Optional[str] = ..., cycle_id: _Optional[str] = ..., metrics: _Optional[_Mapping[str, float]] = ..., aliases: _Optional[_Iterable[str]] = ...) -> None: ...

class CreateCheckpointPart(_message.Message):
    __slots__ = ("header", "blob", "data")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    BLOB_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    header: CreateCheckpointHeader
    blob: BlobRef
    data: bytes
    def __init__(self, header: _Optional[_Union[CreateCheckpointHeader, _Mapping]] = ..., blob: _Optional[_Union[BlobRef, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ...) -> None: ...

class ListCheckpointsResponse(_message.Message):
    __slots__ = ("checkpoints",)
    CHECKPOINTS_FIELD_NUMBER: _ClassVar[int]
    checkpoints: _containers.RepeatedCompositeFieldContainer[Checkpoint]
    def __init__(self, checkpoints: _Optional[_Iterable[_Union[Checkpoint, _Mapping]]] = ...) -> None: ...

class SetAliasRequest(_message.Message):
    __slots__ = ("job", "number", "alias")
    JOB_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    job: JobRef
    number: int
    alias: str
    def __init__(self, job: _Optional[_Union[JobRef, _Mapping]] = ..., number: _Optional[int] = ..., alias: _Optional[str] = ...) -> None: ...

class GetJobByIdRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...
