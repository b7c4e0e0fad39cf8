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

class AnalysisTier(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ANALYSIS_TIER_UNSPECIFIED: _ClassVar[AnalysisTier]
    TIER_SUMMARY: _ClassVar[AnalysisTier]
    TIER_DEEP: _ClassVar[AnalysisTier]
    TIER_FEEDBACK: _ClassVar[AnalysisTier]
ANALYSIS_TIER_UNSPECIFIED: AnalysisTier
TIER_SUMMARY: AnalysisTier
TIER_DEEP: AnalysisTier
TIER_FEEDBACK: AnalysisTier

class WorkloadIdentity(_message.Message):
    __slots__ = ("cmdline", "comm", "cgroup", "pids", "name")
    CMDLINE_FIELD_NUMBER: _ClassVar[int]
    COMM_FIELD_NUMBER: _ClassVar[int]
    CGROUP_FIELD_NUMBER: _ClassVar[int]
    PIDS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    cmdline: _containers.RepeatedScalarFieldContainer[str]
    comm: str
    cgroup: str
    pids: _containers.RepeatedScalarFieldContainer[int]
    name: str
    def __init__(self, cmdline: _Optional[_Iterable[str]] = ..., comm: _Optional[str] = ..., cgroup: _Optional[str] = ..., pids: _Optional[_Iterable[int]] = ..., name: _Optional[str] = ...) -> None: ...

class Histogram(_message.Message):
    __slots__ = ("bounds", "counts", "unit", "samples", "p50", "p99", "p999")
    BOUNDS_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    P50_FIELD_NUMBER: _ClassVar[int]
    P99_FIELD_NUMBER: _ClassVar[int]
    P999_FIELD_NUMBER: _ClassVar[int]
    bounds: _containers.RepeatedScalarFieldContainer[float]
    counts: _containers.RepeatedScalarFieldContainer[int]
    unit: str
    samples: int
    p50: float
    p99: float
    p999: float
    def __init__(self, bounds: _Optional[_Iterable[float]] = ..., counts: _Optional[_Iterable[int]] = ..., unit: _Optional[str] = ..., samples: _Optional[int] = ..., p50: _Optional[float] = ..., p99: _Optional[float] = ..., p999: _Optional[float] = ...) -> None: ...

class WakeupEdge(_message.Message):
    __slots__ = ("waker", "wakee", "count")
    WAKER_FIELD_NUMBER: _ClassVar[int]
    WAKEE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    waker: str
    wakee: str
    count: int
    def __init__(self, waker: _Optional[str] = ..., wakee: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class WorkloadFeatures(_message.Message):
    __slots__ = ("cpu_utilization", "cpu_seconds", "thread_count", "process_count", "runqueue_wait_us_mean", "runqueue_wait_fraction", "voluntary_ctx_switches_per_s", "involuntary_ctx_switches_per_s", "wakeups_per_s", "task_births_per_s", "task_exits_per_s", "task_lifetime_ms_mean", "task_lifetime_ms_p50", "task_lifetime_ms_p99", "io_wait_fraction", "psi_cpu_some_avg10", "psi_io_some_avg10", "psi_memory_some_avg10", "load_avg_1m", "memory_used_fraction", "node_cpus", "cpu_bound_threads", "interactive_threads", "distinct_comms", "run_burst_us_mean", "short_task_cpu_fraction", "completed_tasks", "runqueue_latency", "timeslice", "task_lifetime", "wakeup_graph", "perf_counters")
    class PerfCountersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    CPU_UTILIZATION_FIELD_NUMBER: _ClassVar[int]
    CPU_SECONDS_FIELD_NUMBER: _ClassVar[int]
    THREAD_COUNT_FIELD_NUMBER: _ClassVar[int]
    PROCESS_COUNT_FIELD_NUMBER: _ClassVar[int]
    RUNQUEUE_WAIT_US_MEAN_FIELD_NUMBER: _ClassVar[int]
    RUNQUEUE_WAIT_FRACTION_FIELD_NUMBER: _ClassVar[int]
    VOLUNTARY_CTX_SWITCHES_PER_S_FIELD_NUMBER: _ClassVar[int]
    INVOLUNTARY_CTX_SWITCHES_PER_S_FIELD_NUMBER: _ClassVar[int]
    WAKEUPS_PER_S_FIELD_NUMBER: _ClassVar[int]
    TASK_BIRTHS_PER_S_FIELD_NUMBER: _ClassVar[int]
    TASK_EXITS_PER_S_FIELD_NUMBER: _ClassVar[int]
    TASK_LIFETIME_MS_MEAN_FIELD_NUMBER: _ClassVar[int]
    TASK_LIFETIME_MS_P50_FIELD_NUMBER: _ClassVar[int]
    TASK_LIFETIME_MS_P99_FIELD_NUMBER: _ClassVar[int]
    IO_WAIT_FRACTION_FIELD_NUMBER: _ClassVar[int]
    PSI_CPU_SOME_AVG10_FIELD_NUMBER: _ClassVar[int]
    PSI_IO_SOME_AVG10_FIELD_NUMBER: _ClassVar[int]
    PSI_MEMORY_SOME_AVG10_FIELD_NUMBER: _ClassVar[int]
    LOAD_AVG_1M_FIELD_NUMBER: _ClassVar[int]
    MEMORY_USED_FRACTION_FIELD_NUMBER: _ClassVar[int]
    NODE_CPUS_FIELD_NUMBER: _ClassVar[int]
    CPU_BOUND_THREADS_FIELD_NUMBER: _ClassVar[int]
    INTERACTIVE_THREADS_FIELD_NUMBER: _ClassVar[int]
    DISTINCT_COMMS_FIELD_NUMBER: _ClassVar[int]
    RUN_BURST_US_MEAN_FIELD_NUMBER: _ClassVar[int]
    SHORT_TASK_CPU_FRACTION_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_TASKS_FIELD_NUMBER: _ClassVar[int]
    RUNQUEUE_LATENCY_FIELD_NUMBER: _ClassVar[int]
    TIMESLICE_FIELD_NUMBER: _ClassVar[int]
    TASK_LIFETIME_FIELD_NUMBER: _ClassVar[int]
    WAKEUP_GRAPH_FIELD_NUMBER: _ClassVar[int]
    PERF_COUNTERS_FIELD_NUMBER: _ClassVar[int]
    cpu_utilization: float
    cpu_seconds: float
    thread_count: int
    process_count: int
    runqueue_wait_us_mean: float
    runqueue_wait_fraction: float
    voluntary_ctx_switches_per_s: float
    involuntary_ctx_switches_per_s: float
    wakeups_per_s: float
    task_births_per_s: float
    task_exits_per_s: float
    task_lifetime_ms_mean: float
    task_lifetime_ms_p50: float
    task_lifetime_ms_p99: float
    io_wait_fraction: float
    psi_cpu_some_avg10: float
    psi_io_some_avg10: float
    psi_memory_some_avg10: float
    load_avg_1m: float
    memory_used_fraction: float
    node_cpus: int
    cpu_bound_threads: int
    interactive_threads: int
    distinct_comms: int
    run_burst_us_mean: float
    short_task_cpu_fraction: float
    completed_tasks: int
    runqueue_latency: Histogram
    timeslice: Histogram
    task_lifetime: Histogram
    wakeup_graph: _containers.RepeatedCompositeFieldContainer[WakeupEdge]
    perf_counters: _containers.ScalarMap[str, float]
    def __init__(self, cpu_utilization: _Optional[float] = ..., cpu_seconds: _Optional[float] = ..., thread_count: _Optional[int] = ..., process_count: _Optional[int] = ..., runqueue_wait_us_mean: _Optional[float] = ..., runqueue_wait_fraction: _Optional[float] = ..., voluntary_ctx_switches_per_s: _Optional[float] = ..., involuntary_ctx_switches_per_s: _Optional[float] = ..., wakeups_per_s: _Optional[float] = ..., task_births_per_s: _Optional[float] = ..., task_exits_per_s: _Optional[float] = ..., task_lifetime_ms_mean: _Optional[float] = ..., task_lifetime_ms_p50: _Optional[float] = ..., task_lifetime_ms_p99: _Optional[float] = ..., io_wait_fraction: _Optional[float] = ..., psi_cpu_some_avg10: _Optional[float] = ..., psi_io_some_avg10: _Optional[float] = ..., psi_memory_some_avg10: _Optional[float] = ..., load_avg_1m: _Optional[float] = ..., memory_used_fraction: _Optional[float] = ..., node_cpus: _Optional[int] = ..., cpu_bound_threads: _Optional[int] = ..., interactive_threads: _Optional[int] = ..., distinct_comms: _Optional[int] = ..., run_burst_us_mean: _Optional[float] = ..., short_task_cpu_fraction: _Optional[float] = ..., completed_tasks: _Optional[int] = ..., runqueue_latency: _Optional[_Union[Histogram, _Mapping]] = ..., timeslice: _Optional[_Union[Histogram, _Mapping]] = ..., task_lifetime: _Optional[_Union[Histogram, _Mapping]] = ..., wakeup_graph: _Optional[_Iterable[_Union[WakeupEdge, _Mapping]]] = ..., perf_counters: _Optional[_Mapping[str, float]] = ...) -> None: ...

class OptimizationGoal(_message.Message):
    __slots__ = ("kind", "metric", "constraints", "max_regression_pct")
    KIND_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    CONSTRAINTS_FIELD_NUMBER: _ClassVar[int]
    MAX_REGRESSION_PCT_FIELD_NUMBER: _ClassVar[int]
    kind: _common_pb2.GoalKind
    metric: str
    constraints: _containers.RepeatedScalarFieldContainer[str]
    max_regression_pct: float
    def __init__(self, kind: _Optional[_Union[_common_pb2.GoalKind, str]] = ..., metric: _Optional[str] = ..., constraints: _Optional[_Iterable[str]] = ..., max_regression_pct: _Optional[float] = ...) -> None: ...

class AnalysisCost(_message.Message):
    __slots__ = ("tier", "wall_seconds", "cpu_seconds", "memory_bytes", "tools", "llm_tokens", "overhead_pct")
    TIER_FIELD_NUMBER: _ClassVar[int]
    WALL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CPU_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    LLM_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OVERHEAD_PCT_FIELD_NUMBER: _ClassVar[int]
    tier: AnalysisTier
    wall_seconds: float
    cpu_seconds: float
    memory_bytes: int
    tools: _containers.RepeatedScalarFieldContainer[str]
    llm_tokens: int
    overhead_pct: float
    def __init__(self, tier: _Optional[_Union[AnalysisTier, str]] = ..., wall_seconds: _Optional[float] = ..., cpu_seconds: _Optional[float] = ..., memory_bytes: _Optional[int] = ..., tools: _Optional[_Iterable[str]] = ..., llm_tokens: _Optional[int] = ..., overhead_pct: _Optional[float] = ...) -> None: ...

class WorkloadProfile(_message.Message):
    __slots__ = ("meta", "profile_id", "node", "workload", "description", "workload_class", "class_confidence", "features", "goal", "tier", "costs", "observed_at", "window_seconds", "trigger", "probe_costs", "workload_key")
    META_FIELD_NUMBER: _ClassVar[int]
    PROFILE_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    WORKLOAD_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    WORKLOAD_CLASS_FIELD_NUMBER: _ClassVar[int]
    CLASS_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    GOAL_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    COSTS_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_AT_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    PROBE_COSTS_FIELD_NUMBER: _ClassVar[int]
    WORKLOAD_KEY_FIELD_NUMBER: _ClassVar[int]
    meta: _common_pb2.Meta
    profile_id: str
    node: str
    workload: WorkloadIdentity
    description: str
    workload_class: _common_pb2.WorkloadClass
    class_confidence: float
    features: WorkloadFeatures
    goal: OptimizationGoal
    tier: AnalysisTier
    costs: _containers.RepeatedCompositeFieldContainer[AnalysisCost]
    observed_at: _timestamp_pb2.Timestamp
    window_seconds: float
    trigger: str
    probe_costs: _containers.RepeatedCompositeFieldContainer[AnalysisCost]
    workload_key: str
    def __init__(self, meta: _Optional[_Union[_common_pb2.Meta, _Mapping]] = ..., profile_id: _Optional[str] = ..., node: _Optional[str] = ..., workload: _Optional[_Union[WorkloadIdentity, _Mapping]] = ..., description: _Optional[str] = ..., workload_class: _Optional[_Union[_common_pb2.WorkloadClass, str]] = ..., class_confidence: _Optional[float] = ..., features: _Optional[_Union[WorkloadFeatures, _Mapping]] = ..., goal: _Optional[_Union[OptimizationGoal, _Mapping]] = ..., tier: _Optional[_Union[AnalysisTier, str]] = ..., costs: _Optional[_Iterable[_Union[AnalysisCost, _Mapping]]] = ..., observed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., window_seconds: _Optional[float] = ..., trigger: _Optional[str] = ..., probe_costs: _Optional[_Iterable[_Union[AnalysisCost, _Mapping]]] = ..., workload_key: _Optional[str] = ...) -> None: ...

class MetricDelta(_message.Message):
    __slots__ = ("metric", "baseline", "current", "ratio", "higher_is_better", "unit")
    METRIC_FIELD_NUMBER: _ClassVar[int]
    BASELINE_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    RATIO_FIELD_NUMBER: _ClassVar[int]
    HIGHER_IS_BETTER_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    metric: str
    baseline: float
    current: float
    ratio: float
    higher_is_better: bool
    unit: str
    def __init__(self, metric: _Optional[str] = ..., baseline: _Optional[float] = ..., current: _Optional[float] = ..., ratio: _Optional[float] = ..., higher_is_better: _Optional[bool] = ..., unit: _Optional[str] = ...) -> None: ...

class FeedbackReport(_message.Message):
    __slots__ = ("meta", "node", "workload", "rollout_id", "policy", "deltas", "window_seconds", "at", "node_healthy")
    META_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    WORKLOAD_FIELD_NUMBER: _ClassVar[int]
    ROLLOUT_ID_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    DELTAS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    NODE_HEALTHY_FIELD_NUMBER: _ClassVar[int]
    meta: _common_pb2.Meta
    node: str
    workload: str
    rollout_id: str
    policy: _common_pb2.PolicyRef
    deltas: _containers.RepeatedCompositeFieldContainer[MetricDelta]
    window_seconds: float
    at: _timestamp_pb2.Timestamp
    node_healthy: bool
    def __init__(self, meta: _Optional[_Union[_common_pb2.Meta, _Mapping]] = ..., node: _Optional[str] = ..., workload: _Optional[str] = ..., rollout_id: _Optional[str] = ..., policy: _Optional[_Union[_common_pb2.PolicyRef, _Mapping]] = ..., deltas: _Optional[_Iterable[_Union[MetricDelta, _Mapping]]] = ..., window_seconds: _Optional[float] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., node_healthy: _Optional[bool] = ...) -> None: ...
