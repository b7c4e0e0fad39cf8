from schedcp.v1 import common_pb2 as _common_pb2
from schedcp.v1 import deployment_pb2 as _deployment_pb2
from schedcp.v1 import plan_pb2 as _plan_pb2
from schedcp.v1 import policy_pb2 as _policy_pb2
from schedcp.v1 import profile_pb2 as _profile_pb2
from schedcp.v1 import verdict_pb2 as _verdict_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WorkloadSelector(_message.Message):
    __slots__ = ("pid", "cgroup", "node")
    PID_FIELD_NUMBER: _ClassVar[int]
    CGROUP_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    pid: int
    cgroup: str
    node: bool
    def __init__(self, pid: _Optional[int] = ..., cgroup: _Optional[str] = ..., node: _Optional[bool] = ...) -> None: ...

class SummaryRequest(_message.Message):
    __slots__ = ("selector", "window_seconds", "publish", "correlation_id")
    SELECTOR_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    selector: WorkloadSelector
    window_seconds: float
    publish: bool
    correlation_id: str
    def __init__(self, selector: _Optional[_Union[WorkloadSelector, _Mapping]] = ..., window_seconds: _Optional[float] = ..., publish: _Optional[bool] = ..., correlation_id: _Optional[str] = ...) -> None: ...

class DeepProfileRequest(_message.Message):
    __slots__ = ("selector", "window_seconds", "probes", "max_overhead_pct", "publish", "correlation_id")
    SELECTOR_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PROBES_FIELD_NUMBER: _ClassVar[int]
    MAX_OVERHEAD_PCT_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    selector: WorkloadSelector
    window_seconds: float
    probes: _containers.RepeatedScalarFieldContainer[str]
    max_overhead_pct: float
    publish: bool
    correlation_id: str
    def __init__(self, selector: _Optional[_Union[WorkloadSelector, _Mapping]] = ..., window_seconds: _Optional[float] = ..., probes: _Optional[_Iterable[str]] = ..., max_overhead_pct: _Optional[float] = ..., publish: _Optional[bool] = ..., correlation_id: _Optional[str] = ...) -> None: ...

class FeedbackRequest(_message.Message):
    __slots__ = ("selector", "rollout_id", "policy", "baseline", "window_seconds")
    class BaselineEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    SELECTOR_FIELD_NUMBER: _ClassVar[int]
    ROLLOUT_ID_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    BASELINE_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    selector: WorkloadSelector
    rollout_id: str
    policy: _common_pb2.PolicyRef
    baseline: _containers.ScalarMap[str, float]
    window_seconds: float
    def __init__(self, selector: _Optional[_Union[WorkloadSelector, _Mapping]] = ..., rollout_id: _Optional[str] = ..., policy: _Optional[_Union[_common_pb2.PolicyRef, _Mapping]] = ..., baseline: _Optional[_Mapping[str, float]] = ..., window_seconds: _Optional[float] = ...) -> None: ...

class PlanRequest(_message.Message):
    __slots__ = ("profile", "llm", "max_candidates")
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    LLM_FIELD_NUMBER: _ClassVar[int]
    MAX_CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    profile: _profile_pb2.WorkloadProfile
    llm: str
    max_candidates: int
    def __init__(self, profile: _Optional[_Union[_profile_pb2.WorkloadProfile, _Mapping]] = ..., llm: _Optional[str] = ..., max_candidates: _Optional[int] = ...) -> None: ...

class PlanResponse(_message.Message):
    __slots__ = ("plans",)
    PLANS_FIELD_NUMBER: _ClassVar[int]
    plans: _containers.RepeatedCompositeFieldContainer[_plan_pb2.Plan]
    def __init__(self, plans: _Optional[_Iterable[_Union[_plan_pb2.Plan, _Mapping]]] = ...) -> None: ...

class VerifyRequest(_message.Message):
    __slots__ = ("plan", "workload_class", "skip_performance")
    PLAN_FIELD_NUMBER: _ClassVar[int]
    WORKLOAD_CLASS_FIELD_NUMBER: _ClassVar[int]
    SKIP_PERFORMANCE_FIELD_NUMBER: _ClassVar[int]
    plan: _plan_pb2.Plan
    workload_class: _common_pb2.WorkloadClass
    skip_performance: bool
    def __init__(self, plan: _Optional[_Union[_plan_pb2.Plan, _Mapping]] = ..., workload_class: _Optional[_Union[_common_pb2.WorkloadClass, str]] = ..., skip_performance: _Optional[bool] = ...) -> None: ...

class VerifyProgress(_message.Message):
    __slots__ = ("stage", "message", "verdict")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    stage: _verdict_pb2.StageResult
    message: str
    verdict: _verdict_pb2.Verdict
    def __init__(self, stage: _Optional[_Union[_verdict_pb2.StageResult, _Mapping]] = ..., message: _Optional[str] = ..., verdict: _Optional[_Union[_verdict_pb2.Verdict, _Mapping]] = ...) -> None: ...

class GetVerdictRequest(_message.Message):
    __slots__ = ("verdict_id",)
    VERDICT_ID_FIELD_NUMBER: _ClassVar[int]
    verdict_id: str
    def __init__(self, verdict_id: _Optional[str] = ...) -> None: ...

class VerifierKey(_message.Message):
    __slots__ = ("key_id", "public_key", "active")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    public_key: bytes
    active: bool
    def __init__(self, key_id: _Optional[str] = ..., public_key: _Optional[bytes] = ..., active: _Optional[bool] = ...) -> None: ...

class PublicKeysRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PublicKeysResponse(_message.Message):
    __slots__ = ("keys",)
    KEYS_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedCompositeFieldContainer[VerifierKey]
    def __init__(self, keys: _Optional[_Iterable[_Union[VerifierKey, _Mapping]]] = ...) -> None: ...

class DeployRequest(_message.Message):
    __slots__ = ("verdict", "verdict_id", "nodes", "canary", "bake_seconds", "regression_threshold_pct", "rollout_id", "phase_label")
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    VERDICT_ID_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    CANARY_FIELD_NUMBER: _ClassVar[int]
    BAKE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    REGRESSION_THRESHOLD_PCT_FIELD_NUMBER: _ClassVar[int]
    ROLLOUT_ID_FIELD_NUMBER: _ClassVar[int]
    PHASE_LABEL_FIELD_NUMBER: _ClassVar[int]
    verdict: _verdict_pb2.Verdict
    verdict_id: str
    nodes: _common_pb2.NodeSelector
    canary: float
    bake_seconds: float
    regression_threshold_pct: float
    rollout_id: str
    phase_label: str
    def __init__(self, verdict: _Optional[_Union[_verdict_pb2.Verdict, _Mapping]] = ..., verdict_id: _Optional[str] = ..., nodes: _Optional[_Union[_common_pb2.NodeSelector, _Mapping]] = ..., canary: _Optional[float] = ..., bake_seconds: _Optional[float] = ..., regression_threshold_pct: _Optional[float] = ..., rollout_id: _Optional[str] = ..., phase_label: _Optional[str] = ...) -> None: ...

class RollbackRequest(_message.Message):
    __slots__ = ("nodes", "reason", "rollout_id")
    NODES_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ROLLOUT_ID_FIELD_NUMBER: _ClassVar[int]
    nodes: _common_pb2.NodeSelector
    reason: str
    rollout_id: str
    def __init__(self, nodes: _Optional[_Union[_common_pb2.NodeSelector, _Mapping]] = ..., reason: _Optional[str] = ..., rollout_id: _Optional[str] = ...) -> None: ...

class NodeStatus(_message.Message):
    __slots__ = ("node", "sched_ext_state", "running", "config_digest", "token_id", "since_unix", "healthy", "known_good", "message")
    NODE_FIELD_NUMBER: _ClassVar[int]
    SCHED_EXT_STATE_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    CONFIG_DIGEST_FIELD_NUMBER: _ClassVar[int]
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    SINCE_UNIX_FIELD_NUMBER: _ClassVar[int]
    HEALTHY_FIELD_NUMBER: _ClassVar[int]
    KNOWN_GOOD_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    node: str
    sched_ext_state: str
    running: _common_pb2.PolicyRef
    config_digest: str
    token_id: str
    since_unix: int
    healthy: bool
    known_good: _common_pb2.PolicyRef
    message: str
    def __init__(self, node: _Optional[str] = ..., sched_ext_state: _Optional[str] = ..., running: _Optional[_Union[_common_pb2.PolicyRef, _Mapping]] = ..., config_digest: _Optional[str] = ..., token_id: _Optional[str] = ..., since_unix: _Optional[int] = ..., healthy: _Optional[bool] = ..., known_good: _Optional[_Union[_common_pb2.PolicyRef, _Mapping]] = ..., message: _Optional[str] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ("nodes",)
    NODES_FIELD_NUMBER: _ClassVar[int]
    nodes: _common_pb2.NodeSelector
    def __init__(self, nodes: _Optional[_Union[_common_pb2.NodeSelector, _Mapping]] = ...) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("nodes",)
    NODES_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[NodeStatus]
    def __init__(self, nodes: _Optional[_Iterable[_Union[NodeStatus, _Mapping]]] = ...) -> None: ...

class HistoryRequest(_message.Message):
    __slots__ = ("workload_class", "limit")
    WORKLOAD_CLASS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    workload_class: _common_pb2.WorkloadClass
    limit: int
    def __init__(self, workload_class: _Optional[_Union[_common_pb2.WorkloadClass, str]] = ..., limit: _Optional[int] = ...) -> None: ...

class HistoryResponse(_message.Message):
    __slots__ = ("summary", "records", "antipatterns")
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    ANTIPATTERNS_FIELD_NUMBER: _ClassVar[int]
    summary: str
    records: _containers.RepeatedCompositeFieldContainer[_policy_pb2.PerformanceRecord]
    antipatterns: _containers.RepeatedCompositeFieldContainer[_policy_pb2.Antipattern]
    def __init__(self, summary: _Optional[str] = ..., records: _Optional[_Iterable[_Union[_policy_pb2.PerformanceRecord, _Mapping]]] = ..., antipatterns: _Optional[_Iterable[_Union[_policy_pb2.Antipattern, _Mapping]]] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("query", "workload_classes", "statuses", "keywords", "limit", "workload_key")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    WORKLOAD_CLASSES_FIELD_NUMBER: _ClassVar[int]
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    KEYWORDS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    WORKLOAD_KEY_FIELD_NUMBER: _ClassVar[int]
    query: str
    workload_classes: _containers.RepeatedScalarFieldContainer[_common_pb2.WorkloadClass]
    statuses: _containers.RepeatedScalarFieldContainer[_policy_pb2.PolicyStatus]
    keywords: _containers.RepeatedScalarFieldContainer[str]
    limit: int
    workload_key: str
    def __init__(self, query: _Optional[str] = ..., workload_classes: _Optional[_Iterable[_Union[_common_pb2.WorkloadClass, str]]] = ..., statuses: _Optional[_Iterable[_Union[_policy_pb2.PolicyStatus, str]]] = ..., keywords: _Optional[_Iterable[str]] = ..., limit: _Optional[int] = ..., workload_key: _Optional[str] = ...) -> None: ...

class SearchHit(_message.Message):
    __slots__ = ("policy", "similarity", "historical_ratio", "score")
    POLICY_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    HISTORICAL_RATIO_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    policy: _policy_pb2.Policy
    similarity: float
    historical_ratio: float
    score: float
    def __init__(self, policy: _Optional[_Union[_policy_pb2.Policy, _Mapping]] = ..., similarity: _Optional[float] = ..., historical_ratio: _Optional[float] = ..., score: _Optional[float] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("hits",)
    HITS_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[SearchHit]
    def __init__(self, hits: _Optional[_Iterable[_Union[SearchHit, _Mapping]]] = ...) -> None: ...

class GetPolicyRequest(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class PutPolicyRequest(_message.Message):
    __slots__ = ("policy",)
    POLICY_FIELD_NUMBER: _ClassVar[int]
    policy: _policy_pb2.Policy
    def __init__(self, policy: _Optional[_Union[_policy_pb2.Policy, _Mapping]] = ...) -> None: ...

class ListPoliciesRequest(_message.Message):
    __slots__ = ("statuses", "all_versions")
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    ALL_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    statuses: _containers.RepeatedScalarFieldContainer[_policy_pb2.PolicyStatus]
    all_versions: bool
    def __init__(self, statuses: _Optional[_Iterable[_Union[_policy_pb2.PolicyStatus, str]]] = ..., all_versions: _Optional[bool] = ...) -> None: ...

class ListPoliciesResponse(_message.Message):
    __slots__ = ("policies",)
    POLICIES_FIELD_NUMBER: _ClassVar[int]
    policies: _containers.RepeatedCompositeFieldContainer[_policy_pb2.Policy]
    def __init__(self, policies: _Optional[_Iterable[_Union[_policy_pb2.Policy, _Mapping]]] = ...) -> None: ...

class RecordOutcomeRequest(_message.Message):
    __slots__ = ("policy", "record")
    POLICY_FIELD_NUMBER: _ClassVar[int]
    RECORD_FIELD_NUMBER: _ClassVar[int]
    policy: _common_pb2.PolicyRef
    record: _policy_pb2.PerformanceRecord
    def __init__(self, policy: _Optional[_Union[_common_pb2.PolicyRef, _Mapping]] = ..., record: _Optional[_Union[_policy_pb2.PerformanceRecord, _Mapping]] = ...) -> None: ...

class SetStatusRequest(_message.Message):
    __slots__ = ("policy", "reason")
    POLICY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    policy: _common_pb2.PolicyRef
    reason: str
    def __init__(self, policy: _Optional[_Union[_common_pb2.PolicyRef, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class ListAntipatternsRequest(_message.Message):
    __slots__ = ("policy", "workload_class", "limit")
    POLICY_FIELD_NUMBER: _ClassVar[int]
    WORKLOAD_CLASS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    policy: _common_pb2.PolicyRef
    workload_class: _common_pb2.WorkloadClass
    limit: int
    def __init__(self, policy: _Optional[_Union[_common_pb2.PolicyRef, _Mapping]] = ..., workload_class: _Optional[_Union[_common_pb2.WorkloadClass, str]] = ..., limit: _Optional[int] = ...) -> None: ...

class ListAntipatternsResponse(_message.Message):
    __slots__ = ("antipatterns",)
    ANTIPATTERNS_FIELD_NUMBER: _ClassVar[int]
    antipatterns: _containers.RepeatedCompositeFieldContainer[_policy_pb2.Antipattern]
    def __init__(self, antipatterns: _Optional[_Iterable[_Union[_policy_pb2.Antipattern, _Mapping]]] = ...) -> None: ...

class RecordAntipatternRequest(_message.Message):
    __slots__ = ("antipattern",)
    ANTIPATTERN_FIELD_NUMBER: _ClassVar[int]
    antipattern: _policy_pb2.Antipattern
    def __init__(self, antipattern: _Optional[_Union[_policy_pb2.Antipattern, _Mapping]] = ...) -> None: ...
