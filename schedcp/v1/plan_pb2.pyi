from schedcp.v1 import common_pb2 as _common_pb2
from schedcp.v1 import profile_pb2 as _profile_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DecisionPath(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DECISION_PATH_UNSPECIFIED: _ClassVar[DecisionPath]
    CONFIGURE_EXISTING: _ClassVar[DecisionPath]
    PATCH: _ClassVar[DecisionPath]
    COMPOSE_NEW: _ClassVar[DecisionPath]
DECISION_PATH_UNSPECIFIED: DecisionPath
CONFIGURE_EXISTING: DecisionPath
PATCH: DecisionPath
COMPOSE_NEW: DecisionPath

class LlmUsage(_message.Message):
    __slots__ = ("model", "calls", "prompt_tokens", "completion_tokens", "wall_seconds", "cost_usd")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CALLS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    WALL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    model: str
    calls: int
    prompt_tokens: int
    completion_tokens: int
    wall_seconds: float
    cost_usd: float
    def __init__(self, model: _Optional[str] = ..., calls: _Optional[int] = ..., prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., wall_seconds: _Optional[float] = ..., cost_usd: _Optional[float] = ...) -> None: ...

class ExpectedEffect(_message.Message):
    __slots__ = ("metric", "ratio", "confidence", "summary")
    METRIC_FIELD_NUMBER: _ClassVar[int]
    RATIO_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    metric: str
    ratio: float
    confidence: float
    summary: str
    def __init__(self, metric: _Optional[str] = ..., ratio: _Optional[float] = ..., confidence: _Optional[float] = ..., summary: _Optional[str] = ...) -> None: ...

class Plan(_message.Message):
    __slots__ = ("meta", "plan_id", "profile", "path", "policy", "source", "patch", "tunables", "rationale", "expected", "llm", "iteration", "parent_plan_id", "candidate_index", "candidate_count", "target")
    class TunablesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _common_pb2.TunableValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_common_pb2.TunableValue, _Mapping]] = ...) -> None: ...
    META_FIELD_NUMBER: _ClassVar[int]
    PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    PATCH_FIELD_NUMBER: _ClassVar[int]
    TUNABLES_FIELD_NUMBER: _ClassVar[int]
    RATIONALE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_FIELD_NUMBER: _ClassVar[int]
    LLM_FIELD_NUMBER: _ClassVar[int]
    ITERATION_FIELD_NUMBER: _ClassVar[int]
    PARENT_PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_INDEX_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_COUNT_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    meta: _common_pb2.Meta
    plan_id: str
    profile: _profile_pb2.WorkloadProfile
    path: DecisionPath
    policy: _common_pb2.PolicyRef
    source: str
    patch: str
    tunables: _containers.MessageMap[str, _common_pb2.TunableValue]
    rationale: str
    expected: ExpectedEffect
    llm: LlmUsage
    iteration: int
    parent_plan_id: str
    candidate_index: int
    candidate_count: int
    target: _common_pb2.NodeSelector
    def __init__(self, meta: _Optional[_Union[_common_pb2.Meta, _Mapping]] = ..., plan_id: _Optional[str] = ..., profile: _Optional[_Union[_profile_pb2.WorkloadProfile, _Mapping]] = ..., path: _Optional[_Union[DecisionPath, str]] = ..., policy: _Optional[_Union[_common_pb2.PolicyRef, _Mapping]] = ..., source: _Optional[str] = ..., patch: _Optional[str] = ..., tunables: _Optional[_Mapping[str, _common_pb2.TunableValue]] = ..., rationale: _Optional[str] = ..., expected: _Optional[_Union[ExpectedEffect, _Mapping]] = ..., llm: _Optional[_Union[LlmUsage, _Mapping]] = ..., iteration: _Optional[int] = ..., parent_plan_id: _Optional[str] = ..., candidate_index: _Optional[int] = ..., candidate_count: _Optional[int] = ..., target: _Optional[_Union[_common_pb2.NodeSelector, _Mapping]] = ...) -> None: ...
