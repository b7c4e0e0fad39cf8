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

class DeploymentPhase(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DEPLOYMENT_PHASE_UNSPECIFIED: _ClassVar[DeploymentPhase]
    PHASE_PENDING: _ClassVar[DeploymentPhase]
    PHASE_CANARY: _ClassVar[DeploymentPhase]
    PHASE_BAKING: _ClassVar[DeploymentPhase]
    PHASE_FLEET: _ClassVar[DeploymentPhase]
    PHASE_COMPLETE: _ClassVar[DeploymentPhase]
    PHASE_ROLLED_BACK: _ClassVar[DeploymentPhase]
    PHASE_REFUSED: _ClassVar[DeploymentPhase]
    PHASE_FAILED: _ClassVar[DeploymentPhase]
    PHASE_HALTED: _ClassVar[DeploymentPhase]
DEPLOYMENT_PHASE_UNSPECIFIED: DeploymentPhase
PHASE_PENDING: DeploymentPhase
PHASE_CANARY: DeploymentPhase
PHASE_BAKING: DeploymentPhase
PHASE_FLEET: DeploymentPhase
PHASE_COMPLETE: DeploymentPhase
PHASE_ROLLED_BACK: DeploymentPhase
PHASE_REFUSED: DeploymentPhase
PHASE_FAILED: DeploymentPhase
PHASE_HALTED: DeploymentPhase

class CircuitBreakerEvent(_message.Message):
    __slots__ = ("at", "kind", "reason", "metric", "value", "threshold")
    AT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    at: _timestamp_pb2.Timestamp
    kind: str
    reason: str
    metric: str
    value: float
    threshold: float
    def __init__(self, at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., kind: _Optional[str] = ..., reason: _Optional[str] = ..., metric: _Optional[str] = ..., value: _Optional[float] = ..., threshold: _Optional[float] = ...) -> None: ...

class DeploymentReport(_message.Message):
    __slots__ = ("meta", "report_id", "rollout_id", "node", "token_id", "phase", "policy", "metrics_before", "metrics_after", "breaker_events", "message", "sched_ext_state", "at", "config_digest", "improvement")
    class MetricsBeforeEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class MetricsAfterEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    META_FIELD_NUMBER: _ClassVar[int]
    REPORT_ID_FIELD_NUMBER: _ClassVar[int]
    ROLLOUT_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    METRICS_BEFORE_FIELD_NUMBER: _ClassVar[int]
    METRICS_AFTER_FIELD_NUMBER: _ClassVar[int]
    BREAKER_EVENTS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SCHED_EXT_STATE_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    CONFIG_DIGEST_FIELD_NUMBER: _ClassVar[int]
    IMPROVEMENT_FIELD_NUMBER: _ClassVar[int]
    meta: _common_pb2.Meta
    report_id: str
    rollout_id: str
    node: str
    token_id: str
    phase: DeploymentPhase
    policy: _common_pb2.PolicyRef
    metrics_before: _containers.ScalarMap[str, float]
    metrics_after: _containers.ScalarMap[str, float]
    breaker_events: _containers.RepeatedCompositeFieldContainer[CircuitBreakerEvent]
    message: str
    sched_ext_state: str
    at: _timestamp_pb2.Timestamp
    config_digest: str
    improvement: float
    def __init__(self, meta: _Optional[_Union[_common_pb2.Meta, _Mapping]] = ..., report_id: _Optional[str] = ..., rollout_id: _Optional[str] = ..., node: _Optional[str] = ..., token_id: _Optional[str] = ..., phase: _Optional[_Union[DeploymentPhase, str]] = ..., policy: _Optional[_Union[_common_pb2.PolicyRef, _Mapping]] = ..., metrics_before: _Optional[_Mapping[str, float]] = ..., metrics_after: _Optional[_Mapping[str, float]] = ..., breaker_events: _Optional[_Iterable[_Union[CircuitBreakerEvent, _Mapping]]] = ..., message: _Optional[str] = ..., sched_ext_state: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., config_digest: _Optional[str] = ..., improvement: _Optional[float] = ...) -> None: ...

class DeploymentOutcome(_message.Message):
    __slots__ = ("meta", "outcome_id", "rollout_id", "profile_id", "workload_class", "policy", "config_digest", "tunables", "improvement", "metric", "success", "reason", "source", "node", "workload_key")
    class TunablesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _common_pb2.TunableValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_common_pb2.TunableValue, _Mapping]] = ...) -> None: ...
    META_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_ID_FIELD_NUMBER: _ClassVar[int]
    ROLLOUT_ID_FIELD_NUMBER: _ClassVar[int]
    PROFILE_ID_FIELD_NUMBER: _ClassVar[int]
    WORKLOAD_CLASS_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    CONFIG_DIGEST_FIELD_NUMBER: _ClassVar[int]
    TUNABLES_FIELD_NUMBER: _ClassVar[int]
    IMPROVEMENT_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    WORKLOAD_KEY_FIELD_NUMBER: _ClassVar[int]
    meta: _common_pb2.Meta
    outcome_id: str
    rollout_id: str
    profile_id: str
    workload_class: _common_pb2.WorkloadClass
    policy: _common_pb2.PolicyRef
    config_digest: str
    tunables: _containers.MessageMap[str, _common_pb2.TunableValue]
    improvement: float
    metric: str
    success: bool
    reason: str
    source: str
    node: str
    workload_key: str
    def __init__(self, meta: _Optional[_Union[_common_pb2.Meta, _Mapping]] = ..., outcome_id: _Optional[str] = ..., rollout_id: _Optional[str] = ..., profile_id: _Optional[str] = ..., workload_class: _Optional[_Union[_common_pb2.WorkloadClass, str]] = ..., policy: _Optional[_Union[_common_pb2.PolicyRef, _Mapping]] = ..., config_digest: _Optional[str] = ..., tunables: _Optional[_Mapping[str, _common_pb2.TunableValue]] = ..., improvement: _Optional[float] = ..., metric: _Optional[str] = ..., success: _Optional[bool] = ..., reason: _Optional[str] = ..., source: _Optional[str] = ..., node: _Optional[str] = ..., workload_key: _Optional[str] = ...) -> None: ...
