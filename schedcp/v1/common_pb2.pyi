import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WorkloadClass(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WORKLOAD_CLASS_UNSPECIFIED: _ClassVar[WorkloadClass]
    BATCH_LONG_TAIL: _ClassVar[WorkloadClass]
    LATENCY_SERVER: _ClassVar[WorkloadClass]
    PARALLEL_BUILD: _ClassVar[WorkloadClass]
    INTERACTIVE_BACKGROUND: _ClassVar[WorkloadClass]
    CPU_THROUGHPUT: _ClassVar[WorkloadClass]
    UNKNOWN_WORKLOAD: _ClassVar[WorkloadClass]

class GoalKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GOAL_KIND_UNSPECIFIED: _ClassVar[GoalKind]
    GOAL_MAKESPAN: _ClassVar[GoalKind]
    GOAL_THROUGHPUT: _ClassVar[GoalKind]
    GOAL_TAIL_LATENCY: _ClassVar[GoalKind]

class Severity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEVERITY_UNSPECIFIED: _ClassVar[Severity]
    SEVERITY_INFO: _ClassVar[Severity]
    SEVERITY_WARNING: _ClassVar[Severity]
    SEVERITY_ERROR: _ClassVar[Severity]
WORKLOAD_CLASS_UNSPECIFIED: WorkloadClass
BATCH_LONG_TAIL: WorkloadClass
LATENCY_SERVER: WorkloadClass
PARALLEL_BUILD: WorkloadClass
INTERACTIVE_BACKGROUND: WorkloadClass
CPU_THROUGHPUT: WorkloadClass
UNKNOWN_WORKLOAD: WorkloadClass
GOAL_KIND_UNSPECIFIED: GoalKind
GOAL_MAKESPAN: GoalKind
GOAL_THROUGHPUT: GoalKind
GOAL_TAIL_LATENCY: GoalKind
SEVERITY_UNSPECIFIED: Severity
SEVERITY_INFO: Severity
SEVERITY_WARNING: Severity
SEVERITY_ERROR: Severity

class Meta(_message.Message):
    __slots__ = ("message_id", "correlation_id", "schema_version", "created_at", "producer", "trace_context")
    class TraceContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    PRODUCER_FIELD_NUMBER: _ClassVar[int]
    TRACE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    correlation_id: str
    schema_version: str
    created_at: _timestamp_pb2.Timestamp
    producer: str
    trace_context: _containers.ScalarMap[str, str]
    def __init__(self, message_id: _Optional[str] = ..., correlation_id: _Optional[str] = ..., schema_version: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., producer: _Optional[str] = ..., trace_context: _Optional[_Mapping[str, str]] = ...) -> None: ...

class TunableValue(_message.Message):
    __slots__ = ("int_value", "float_value", "bool_value", "string_value")
    INT_VALUE_FIELD_NUMBER: _ClassVar[int]
    FLOAT_VALUE_FIELD_NUMBER: _ClassVar[int]
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    int_value: int
    float_value: float
    bool_value: bool
    string_value: str
    def __init__(self, int_value: _Optional[int] = ..., float_value: _Optional[float] = ..., bool_value: _Optional[bool] = ..., string_value: _Optional[str] = ...) -> None: ...

class PolicyRef(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class Finding(_message.Message):
    __slots__ = ("severity", "rule", "message", "file", "line", "hint")
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    HINT_FIELD_NUMBER: _ClassVar[int]
    severity: Severity
    rule: str
    message: str
    file: str
    line: int
    hint: str
    def __init__(self, severity: _Optional[_Union[Severity, str]] = ..., rule: _Optional[str] = ..., message: _Optional[str] = ..., file: _Optional[str] = ..., line: _Optional[int] = ..., hint: _Optional[str] = ...) -> None: ...

class MetricComparison(_message.Message):
    __slots__ = ("metric", "baseline", "candidate", "ratio", "higher_is_better", "spread", "unit", "baseline_spread")
    METRIC_FIELD_NUMBER: _ClassVar[int]
    BASELINE_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_FIELD_NUMBER: _ClassVar[int]
    RATIO_FIELD_NUMBER: _ClassVar[int]
    HIGHER_IS_BETTER_FIELD_NUMBER: _ClassVar[int]
    SPREAD_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    BASELINE_SPREAD_FIELD_NUMBER: _ClassVar[int]
    metric: str
    baseline: float
    candidate: float
    ratio: float
    higher_is_better: bool
    spread: float
    unit: str
    baseline_spread: float
    def __init__(self, metric: _Optional[str] = ..., baseline: _Optional[float] = ..., candidate: _Optional[float] = ..., ratio: _Optional[float] = ..., higher_is_better: _Optional[bool] = ..., spread: _Optional[float] = ..., unit: _Optional[str] = ..., baseline_spread: _Optional[float] = ...) -> None: ...

class NodeSelector(_message.Message):
    __slots__ = ("nodes", "labels", "all_nodes")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NODES_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    ALL_NODES_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedScalarFieldContainer[str]
    labels: _containers.ScalarMap[str, str]
    all_nodes: bool
    def __init__(self, nodes: _Optional[_Iterable[str]] = ..., labels: _Optional[_Mapping[str, str]] = ..., all_nodes: _Optional[bool] = ...) -> None: ...
