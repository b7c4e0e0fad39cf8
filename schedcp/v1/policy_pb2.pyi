import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from schedcp.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PolicyStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    POLICY_STATUS_UNSPECIFIED: _ClassVar[PolicyStatus]
    POLICY_CANDIDATE: _ClassVar[PolicyStatus]
    POLICY_VERIFIED: _ClassVar[PolicyStatus]
    POLICY_PROMOTED: _ClassVar[PolicyStatus]
    POLICY_DEPRECATED: _ClassVar[PolicyStatus]

class TunableType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TUNABLE_TYPE_UNSPECIFIED: _ClassVar[TunableType]
    TUNABLE_INT: _ClassVar[TunableType]
    TUNABLE_UINT: _ClassVar[TunableType]
    TUNABLE_BOOL: _ClassVar[TunableType]
    TUNABLE_FLOAT: _ClassVar[TunableType]
POLICY_STATUS_UNSPECIFIED: PolicyStatus
POLICY_CANDIDATE: PolicyStatus
POLICY_VERIFIED: PolicyStatus
POLICY_PROMOTED: PolicyStatus
POLICY_DEPRECATED: PolicyStatus
TUNABLE_TYPE_UNSPECIFIED: TunableType
TUNABLE_INT: TunableType
TUNABLE_UINT: TunableType
TUNABLE_BOOL: TunableType
TUNABLE_FLOAT: TunableType

class TunableSpec(_message.Message):
    __slots__ = ("name", "type", "default", "min", "max", "description", "unit")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_FIELD_NUMBER: _ClassVar[int]
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: TunableType
    default: _common_pb2.TunableValue
    min: float
    max: float
    description: str
    unit: str
    def __init__(self, name: _Optional[str] = ..., type: _Optional[_Union[TunableType, str]] = ..., default: _Optional[_Union[_common_pb2.TunableValue, _Mapping]] = ..., min: _Optional[float] = ..., max: _Optional[float] = ..., description: _Optional[str] = ..., unit: _Optional[str] = ...) -> None: ...

class PolicyMetadata(_message.Message):
    __slots__ = ("description", "target_workloads", "tags", "author")
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TARGET_WORKLOADS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    description: str
    target_workloads: _containers.RepeatedScalarFieldContainer[_common_pb2.WorkloadClass]
    tags: _containers.RepeatedScalarFieldContainer[str]
    author: str
    def __init__(self, description: _Optional[str] = ..., target_workloads: _Optional[_Iterable[_Union[_common_pb2.WorkloadClass, str]]] = ..., tags: _Optional[_Iterable[str]] = ..., author: _Optional[str] = ...) -> None: ...

class PerformanceRecord(_message.Message):
    __slots__ = ("workload_class", "metric", "ratio", "config_digest", "tunables", "source", "source_id", "at", "success", "workload_key")
    class TunablesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _common_pb2.TunableValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_common_pb2.TunableValue, _Mapping]] = ...) -> None: ...
    WORKLOAD_CLASS_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    RATIO_FIELD_NUMBER: _ClassVar[int]
    CONFIG_DIGEST_FIELD_NUMBER: _ClassVar[int]
    TUNABLES_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    WORKLOAD_KEY_FIELD_NUMBER: _ClassVar[int]
    workload_class: _common_pb2.WorkloadClass
    metric: str
    ratio: float
    config_digest: str
    tunables: _containers.MessageMap[str, _common_pb2.TunableValue]
    source: str
    source_id: str
    at: _timestamp_pb2.Timestamp
    success: bool
    workload_key: str
    def __init__(self, workload_class: _Optional[_Union[_common_pb2.WorkloadClass, str]] = ..., metric: _Optional[str] = ..., ratio: _Optional[float] = ..., config_digest: _Optional[str] = ..., tunables: _Optional[_Mapping[str, _common_pb2.TunableValue]] = ..., source: _Optional[str] = ..., source_id: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., success: _Optional[bool] = ..., workload_key: _Optional[str] = ...) -> None: ...

class Antipattern(_message.Message):
    __slots__ = ("antipattern_id", "policy", "workload_class", "reason", "findings", "source_digest", "stage", "at")
    ANTIPATTERN_ID_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    WORKLOAD_CLASS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_DIGEST_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    antipattern_id: str
    policy: _common_pb2.PolicyRef
    workload_class: _common_pb2.WorkloadClass
    reason: str
    findings: _containers.RepeatedCompositeFieldContainer[_common_pb2.Finding]
    source_digest: str
    stage: str
    at: _timestamp_pb2.Timestamp
    def __init__(self, antipattern_id: _Optional[str] = ..., policy: _Optional[_Union[_common_pb2.PolicyRef, _Mapping]] = ..., workload_class: _Optional[_Union[_common_pb2.WorkloadClass, str]] = ..., reason: _Optional[str] = ..., findings: _Optional[_Iterable[_Union[_common_pb2.Finding, _Mapping]]] = ..., source_digest: _Optional[str] = ..., stage: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Policy(_message.Message):
    __slots__ = ("name", "version", "source", "source_digest", "artifact_digest", "metadata", "tunables", "parent", "patch", "status", "history", "created_at")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_DIGEST_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_DIGEST_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    TUNABLES_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PATCH_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    source: str
    source_digest: str
    artifact_digest: str
    metadata: PolicyMetadata
    tunables: _containers.RepeatedCompositeFieldContainer[TunableSpec]
    parent: str
    patch: str
    status: PolicyStatus
    history: _containers.RepeatedCompositeFieldContainer[PerformanceRecord]
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., source: _Optional[str] = ..., source_digest: _Optional[str] = ..., artifact_digest: _Optional[str] = ..., metadata: _Optional[_Union[PolicyMetadata, _Mapping]] = ..., tunables: _Optional[_Iterable[_Union[TunableSpec, _Mapping]]] = ..., parent: _Optional[str] = ..., patch: _Optional[str] = ..., status: _Optional[_Union[PolicyStatus, str]] = ..., history: _Optional[_Iterable[_Union[PerformanceRecord, _Mapping]]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
