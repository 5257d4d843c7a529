from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RegisterJobRequest(_message.Message):
    __slots__ = ("job_id", "name", "version", "server_config_json", "checkpoint_number", "model_size")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SERVER_CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_NUMBER_FIELD_NUMBER: _ClassVar[int]
    MODEL_SIZE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    name: str
    version: str
    server_config_json: str
    checkpoint_number: int
    model_size: int
    def __init__(self, job_id: _Optional[str] = ..., name: _Optional[str] = ..., version: _Optional[str] = ..., server_config_json: _Optional[str] = ..., checkpoint_number: _Optional[int] = ..., model_size: _Optional[int] = ...) -> None: ...

class CycleRequest(_message.Message):
    __slots__ = ("job_id", "worker_id", "ping_ms", "download_kbps", "upload_kbps")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    PING_MS_FIELD_NUMBER: _ClassVar[int]
    DOWNLOAD_KBPS_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_KBPS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    worker_id: str
    ping_ms: float
    download_kbps: float
    upload_kbps: float
    def __init__(self, job_id: _Optional[str] = ..., worker_id: _Optional[str] = ..., ping_ms: _Optional[float] = ..., download_kbps: _Optional[float] = ..., upload_kbps: _Optional[float] = ...) -> None: ...

class Accepted(_message.Message):
    __slots__ = ("request_key", "cycle_id", "cycle_number", "checkpoint_number", "deadline_unix")
    REQUEST_KEY_FIELD_NUMBER: _ClassVar[int]
    CYCLE_ID_FIELD_NUMBER: _ClassVar[int]
    CYCLE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_NUMBER_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_UNIX_FIELD_NUMBER: _ClassVar[int]
    request_key: str
    cycle_id: str
    cycle_number: int
    checkpoint_number: int
    deadline_unix: float
    def __init__(self, request_key: _Optional[str] = ..., cycle_id: _Optional[str] = ..., cycle_number: _Optional[int] = ..., checkpoint_number: _Optional[int] = ..., deadline_unix: _Optional[float] = ...) -> None: ...

class Rejected(_message.Message):
    __slots__ = ("reason", "message", "retry_after_seconds")
    class Reason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        REASON_UNSPECIFIED: _ClassVar[Rejected.Reason]
        CYCLE_FULL: _ClassVar[Rejected.Reason]
        WORKER_RECENTLY_USED: _ClassVar[Rejected.Reason]
        SPEED_TOO_LOW: _ClassVar[Rejected.Reason]
        NOT_SELECTED: _ClassVar[Rejected.Reason]
        JOB_FINISHED: _ClassVar[Rejected.Reason]
        NO_OPEN_CYCLE: _ClassVar[Rejected.Reason]
        ALREADY_ASSIGNED: _ClassVar[Rejected.Reason]
        ADMISSION_CLOSED: _ClassVar[Rejected.Reason]
    REASON_UNSPECIFIED: Rejected.Reason
    CYCLE_FULL: Rejected.Reason
    WORKER_RECENTLY_USED: Rejected.Reason
    SPEED_TOO_LOW: Rejected.Reason
    NOT_SELECTED: Rejected.Reason
    JOB_FINISHED: Rejected.Reason
    NO_OPEN_CYCLE: Rejected.Reason
    ALREADY_ASSIGNED: Rejected.Reason
    ADMISSION_CLOSED: Rejected.Reason
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_SECONDS_FIELD_NUMBER: _ClassVar[int]
    reason: Rejected.Reason
    message: str
    retry_after_seconds: float
    def __init__(self, reason: _Optional[_Union[Rejected.Reason, str]] = ..., message: _Optional[str] = ..., retry_after_seconds: _Optional[float] = ...) -> None: ...

class CycleResponse(_message.Message):
    __slots__ = ("accepted", "rejected")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    accepted: Accepted
    rejected: Rejected
    def __init__(self, accepted: _Optional[_Union[Accepted, _Mapping]] = ..., rejected: _Optional[_Union[Rejected, _Mapping]] = ...) -> None: ...

class AssignmentRequest(_message.Message):
    __slots__ = ("request_key",)
    REQUEST_KEY_FIELD_NUMBER: _ClassVar[int]
    request_key: str
    def __init__(self, request_key: _Optional[str] = ...) -> None: ...

class Assignment(_message.Message):
    __slots__ = ("request_key", "job_id", "cycle_id", "worker_id", "checkpoint_number", "deadline_unix", "reported", "cycle_open")
    REQUEST_KEY_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    CYCLE_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_NUMBER_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_UNIX_FIELD_NUMBER: _ClassVar[int]
    REPORTED_FIELD_NUMBER: _ClassVar[int]
    CYCLE_OPEN_FIELD_NUMBER: _ClassVar[int]
    request_key: str
    job_id: str
    cycle_id: str
    worker_id: str
    checkpoint_number: int
    deadline_unix: float
    reported: bool
    cycle_open: bool
    def __init__(self, request_key: _Optional[str] = ..., job_id: _Optional[str] = ..., cycle_id: _Optional[str] = ..., worker_id: _Optional[str] = ..., checkpoint_number: _Optional[int] = ..., deadline_unix: _Optional[float] = ..., reported: _Optional[bool] = ..., cycle_open: _Optional[bool] = ...) -> None: ...

class SubmitReportRequest(_message.Message):
    __slots__ = ("request_key", "worker_id", "sample_count", "metrics", "diff_object_key", "diff_size", "diff_digest")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    REQUEST_KEY_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_COUNT_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    DIFF_OBJECT_KEY_FIELD_NUMBER: _ClassVar[int]
    DIFF_SIZE_FIELD_NUMBER: _ClassVar[int]
    DIFF_DIGEST_FIELD_NUMBER: _ClassVar[int]
    request_key: str
    worker_id: str
    sample_count: int
    metrics: _containers.ScalarMap[str, float]
    diff_object_key: str
    diff_size: int
    diff_digest: str
    def __init__(self, request_key: _Optional[str] = ..., worker_id: _Optional[str] = ..., sample_count: _Optional[int] = ..., metrics: _Optional[_Mapping[str, float]] = ..., diff_object_key: _Optional[str] = ..., diff_size: _Optional[int] = ..., diff_digest: _Optional[str] = ...) -> None: ...

class SubmitReportResponse(_message.Message):
    __slots__ = ("status", "message", "cycle_id")
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATUS_UNSPECIFIED: _ClassVar[SubmitReportResponse.Status]
        ACCEPTED: _ClassVar[SubmitReportResponse.Status]
        UNKNOWN_KEY: _ClassVar[SubmitReportResponse.Status]
        ALREADY_REPORTED: _ClassVar[SubmitReportResponse.Status]
        CYCLE_CLOSED: _ClassVar[SubmitReportResponse.Status]
        DEADLINE_PASSED: _ClassVar[SubmitReportResponse.Status]
        WRONG_WORKER: _ClassVar[SubmitReportResponse.Status]
        SECURE_CYCLE: _ClassVar[SubmitReportResponse.Status]
    STATUS_UNSPECIFIED: SubmitReportResponse.Status
    ACCEPTED: SubmitReportResponse.Status
    UNKNOWN_KEY: SubmitReportResponse.Status
    ALREADY_REPORTED: SubmitReportResponse.Status
    CYCLE_CLOSED: SubmitReportResponse.Status
    DEADLINE_PASSED: SubmitReportResponse.Status
    WRONG_WORKER: SubmitReportResponse.Status
    SECURE_CYCLE: SubmitReportResponse.Status
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CYCLE_ID_FIELD_NUMBER: _ClassVar[int]
    status: SubmitReportResponse.Status
    message: str
    cycle_id: str
    def __init__(self, status: _Optional[_Union[SubmitReportResponse.Status, str]] = ..., message: _Optional[str] = ..., cycle_id: _Optional[str] = ...) -> None: ...

class CycleRef(_message.Message):
    __slots__ = ("cycle_id",)
    CYCLE_ID_FIELD_NUMBER: _ClassVar[int]
    cycle_id: str
    def __init__(self, cycle_id: _Optional[str] = ...) -> None: ...

class CheckpointStoredRequest(_message.Message):
    __slots__ = ("cycle_id", "checkpoint_number")
    CYCLE_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_NUMBER_FIELD_NUMBER: _ClassVar[int]
    cycle_id: str
    checkpoint_number: int
    def __init__(self, cycle_id: _Optional[str] = ..., checkpoint_number: _Optional[int] = ...) -> None: ...

class AggregationFailedRequest(_message.Message):
    __slots__ = ("cycle_id", "reason")
    CYCLE_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    cycle_id: str
    reason: str
    def __init__(self, cycle_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class StoredReport(_message.Message):
    __slots__ = ("request_key", "worker_id", "sample_count", "metrics", "diff_object_key", "diff_size", "diff_digest")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    REQUEST_KEY_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_COUNT_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    DIFF_OBJECT_KEY_FIELD_NUMBER: _ClassVar[int]
    DIFF_SIZE_FIELD_NUMBER: _ClassVar[int]
    DIFF_DIGEST_FIELD_NUMBER: _ClassVar[int]
    request_key: str
    worker_id: str
    sample_count: int
    metrics: _containers.ScalarMap[str, float]
    diff_object_key: str
    diff_size: int
    diff_digest: str
    def __init__(self, request_key: _Optional[str] = ..., worker_id: _Optional[str] = ..., sample_count: _Optional[int] = ..., metrics: _Optional[_Mapping[str, float]] = ..., diff_object_key: _Optional[str] = ..., diff_size: _Optional[int] = ..., diff_digest: _Optional[str] = ...) -> None: ...

class ListReportsResponse(_message.Message):
    __slots__ = ("job_id", "cycle_id", "checkpoint_number", "reports")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    CYCLE_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_NUMBER_FIELD_NUMBER: _ClassVar[int]
    REPORTS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    cycle_id: str
    checkpoint_number: int
    reports: _containers.RepeatedCompositeFieldContainer[StoredReport]
    def __init__(self, job_id: _Optional[str] = ..., cycle_id: _Optional[str] = ..., checkpoint_number: _Optional[int] = ..., reports: _Optional[_Iterable[_Union[StoredReport, _Mapping]]] = ...) -> None: ...

class Cycle(_message.Message):
    __slots__ = ("cycle_id", "job_id", "number", "state", "admitted", "reports", "opened_at_unix", "deadline_unix", "closed_at_unix", "checkpoint_number", "close_reason")
    CYCLE_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ADMITTED_FIELD_NUMBER: _ClassVar[int]
    REPORTS_FIELD_NUMBER: _ClassVar[int]
    OPENED_AT_UNIX_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_UNIX_FIELD_NUMBER: _ClassVar[int]
    CLOSED_AT_UNIX_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_NUMBER_FIELD_NUMBER: _ClassVar[int]
    CLOSE_REASON_FIELD_NUMBER: _ClassVar[int]
    cycle_id: str
    job_id: str
    number: int
    state: str
    admitted: int
    reports: int
    opened_at_unix: float
    deadline_unix: float
    closed_at_unix: float
    checkpoint_number: int
    close_reason: str
    def __init__(self, cycle_id: _Optional[str] = ..., job_id: _Optional[str] = ..., number: _Optional[int] = ..., state: _Optional[str] = ..., admitted: _Optional[int] = ..., reports: _Optional[int] = ..., opened_at_unix: _Optional[float] = ..., deadline_unix: _Optional[float] = ..., closed_at_unix: _Optional[float] = ..., checkpoint_number: _Optional[int] = ..., close_reason: _Optional[str] = ...) -> None: ...

class JobStatusRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class JobStatus(_message.Message):
    __slots__ = ("job_id", "state", "finish_reason", "completed_cycles", "num_cycles", "cycles")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_CYCLES_FIELD_NUMBER: _ClassVar[int]
    NUM_CYCLES_FIELD_NUMBER: _ClassVar[int]
    CYCLES_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    state: str
    finish_reason: str
    completed_cycles: int
    num_cycles: int
    cycles: _containers.RepeatedCompositeFieldContainer[Cycle]
    def __init__(self, job_id: _Optional[str] = ..., state: _Optional[str] = ..., finish_reason: _Optional[str] = ..., completed_cycles: _Optional[int] = ..., num_cycles: _Optional[int] = ..., cycles: _Optional[_Iterable[_Union[Cycle, _Mapping]]] = ...) -> None: ...

class SecAggPostRequest(_message.Message):
    __slots__ = ("request_key", "worker_id", "round", "payload")
    REQUEST_KEY_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    request_key: str
    worker_id: str
    round: str
    payload: bytes
    def __init__(self, request_key: _Optional[str] = ..., worker_id: _Optional[str] = ..., round: _Optional[str] = ..., payload: _Optional[bytes] = ...) -> None: ...

class SecAggPostResponse(_message.Message):
    __slots__ = ("complete",)
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    complete: bool
    def __init__(self, complete: _Optional[bool] = ...) -> None: ...

class SecAggFetchRequest(_message.Message):
    __slots__ = ("request_key", "worker_id", "round")
    REQUEST_KEY_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    request_key: str
    worker_id: str
    round: str
    def __init__(self, request_key: _Optional[str] = ..., worker_id: _Optional[str] = ..., round: _Optional[str] = ...) -> None: ...

class SecAggFetchResponse(_message.Message):
    __slots__ = ("ready", "payload", "current_round", "round_deadline_unix")
    READY_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    CURRENT_ROUND_FIELD_NUMBER: _ClassVar[int]
    ROUND_DEADLINE_UNIX_FIELD_NUMBER: _ClassVar[int]
    ready: bool
    payload: bytes
    current_round: str
    round_deadline_unix: float
    def __init__(self, ready: _Optional[bool] = ..., payload: _Optional[bytes] = ..., current_round: _Optional[str] = ..., round_deadline_unix: _Optional[float] = ...) -> None: ...
