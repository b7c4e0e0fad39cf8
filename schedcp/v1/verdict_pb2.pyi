import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from schedcp.v1 import common_pb2 as _common_pb2
from schedcp.v1 import plan_pb2 as _plan_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StageStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STAGE_STATUS_UNSPECIFIED: _ClassVar[StageStatus]
    STAGE_PASSED: _ClassVar[StageStatus]
    STAGE_FAILED: _ClassVar[StageStatus]
    STAGE_SKIPPED: _ClassVar[StageStatus]
    STAGE_RUNNING: _ClassVar[StageStatus]
STAGE_STATUS_UNSPECIFIED: StageStatus
STAGE_PASSED: StageStatus
STAGE_FAILED: StageStatus
STAGE_SKIPPED: StageStatus
STAGE_RUNNING: StageStatus

class StageResult(_message.Message):
    __slots__ = ("name", "status", "duration_s", "findings", "log")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    name: str
    status: StageStatus
    duration_s: float
    findings: _containers.RepeatedCompositeFieldContainer[_common_pb2.Finding]
    log: str
    def __init__(self, name: _Optional[str] = ..., status: _Optional[_Union[StageStatus, str]] = ..., duration_s: _Optional[float] = ..., findings: _Optional[_Iterable[_Union[_common_pb2.Finding, _Mapping]]] = ..., log: _Optional[str] = ...) -> None: ...

class PerformanceResult(_message.Message):
    __slots__ = ("workload", "metrics", "score", "repetitions", "regression_threshold_pct", "max_repetitions", "p_value", "decision", "host_cpu_pressure")
    WORKLOAD_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    REPETITIONS_FIELD_NUMBER: _ClassVar[int]
    REGRESSION_THRESHOLD_PCT_FIELD_NUMBER: _ClassVar[int]
    MAX_REPETITIONS_FIELD_NUMBER: _ClassVar[int]
    P_VALUE_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    HOST_CPU_PRESSURE_FIELD_NUMBER: _ClassVar[int]
    workload: str
    metrics: _containers.RepeatedCompositeFieldContainer[_common_pb2.MetricComparison]
    score: float
    repetitions: int
    regression_threshold_pct: float
    max_repetitions: int
    p_value: float
    decision: str
    host_cpu_pressure: float
    def __init__(self, workload: _Optional[str] = ..., metrics: _Optional[_Iterable[_Union[_common_pb2.MetricComparison, _Mapping]]] = ..., score: _Optional[float] = ..., repetitions: _Optional[int] = ..., regression_threshold_pct: _Optional[float] = ..., max_repetitions: _Optional[int] = ..., p_value: _Optional[float] = ..., decision: _Optional[str] = ..., host_cpu_pressure: _Optional[float] = ...) -> None: ...

class TokenClaims(_message.Message):
    __slots__ = ("token_id", "artifact_digest", "config_digest", "node_selector", "not_before", "expires_at", "nonce", "key_id", "verdict_id", "policy")
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_DIGEST_FIELD_NUMBER: _ClassVar[int]
    CONFIG_DIGEST_FIELD_NUMBER: _ClassVar[int]
    NODE_SELECTOR_FIELD_NUMBER: _ClassVar[int]
    NOT_BEFORE_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    VERDICT_ID_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    token_id: str
    artifact_digest: str
    config_digest: str
    node_selector: _common_pb2.NodeSelector
    not_before: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    nonce: str
    key_id: str
    verdict_id: str
    policy: _common_pb2.PolicyRef
    def __init__(self, token_id: _Optional[str] = ..., artifact_digest: _Optional[str] = ..., config_digest: _Optional[str] = ..., node_selector: _Optional[_Union[_common_pb2.NodeSelector, _Mapping]] = ..., not_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., nonce: _Optional[str] = ..., key_id: _Optional[str] = ..., verdict_id: _Optional[str] = ..., policy: _Optional[_Union[_common_pb2.PolicyRef, _Mapping]] = ...) -> None: ...

class DeploymentToken(_message.Message):
    __slots__ = ("claims", "signature", "key_id", "algorithm")
    CLAIMS_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    claims: bytes
    signature: bytes
    key_id: str
    algorithm: str
    def __init__(self, claims: _Optional[bytes] = ..., signature: _Optional[bytes] = ..., key_id: _Optional[str] = ..., algorithm: _Optional[str] = ...) -> None: ...

class Verdict(_message.Message):
    __slots__ = ("meta", "verdict_id", "plan", "artifact_digest", "config_digest", "stages", "passed", "performance", "token", "artifact", "cached", "at", "config_json")
    META_FIELD_NUMBER: _ClassVar[int]
    VERDICT_ID_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_DIGEST_FIELD_NUMBER: _ClassVar[int]
    CONFIG_DIGEST_FIELD_NUMBER: _ClassVar[int]
    STAGES_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    PERFORMANCE_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    meta: _common_pb2.Meta
    verdict_id: str
    plan: _plan_pb2.Plan
    artifact_digest: str
    config_digest: str
    stages: _containers.RepeatedCompositeFieldContainer[StageResult]
    passed: bool
    performance: PerformanceResult
    token: DeploymentToken
    artifact: bytes
    cached: bool
    at: _timestamp_pb2.Timestamp
    config_json: str
    def __init__(self, meta: _Optional[_Union[_common_pb2.Meta, _Mapping]] = ..., verdict_id: _Optional[str] = ..., plan: _Optional[_Union[_plan_pb2.Plan, _Mapping]] = ..., artifact_digest: _Optional[str] = ..., config_digest: _Optional[str] = ..., stages: _Optional[_Iterable[_Union[StageResult, _Mapping]]] = ..., passed: _Optional[bool] = ..., performance: _Optional[_Union[PerformanceResult, _Mapping]] = ..., token: _Optional[_Union[DeploymentToken, _Mapping]] = ..., artifact: _Optional[bytes] = ..., cached: _Optional[bool] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., config_json: _Optional[str] = ...) -> None: ...
