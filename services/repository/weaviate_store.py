"""The Weaviate policy store (weaviate-client v4), for fleets sharing one repository.

Same contract as the embedded store (``PolicyStore``), same validation and
ranking (``store``); vectors come from our own embedder (collections are
created with self-provided vectors), so both backends rank identically.

Weaviate has no multi-object transactions, so immutability and idempotency
rest on deterministic object ids instead:

- a policy's id is uuid5("policy:" + name@version): inserting an id that
  exists is refused by the server, and we then compare content digests
  (identical -> no-op, different -> PolicyVersionExists);
- a performance record's id is uuid5(event id): a redelivered event
  collides instead of counting twice;
- antipatterns use uuid5(antipattern_id) the same way.

Status changes are read-check-update, so two replicas promoting and
deprecating the same policy at the same instant can interleave (last write
wins); the embedded backend serialises them. Every status change is logged.

NOTE: no Weaviate server can run on the machines this was written on; this
backend is exercised by tests/integration/repository/test_contract.py only
where SCHEDCP_WEAVIATE_URL points at a server (e.g. the compose deployment).
"""

from __future__ import annotations

import builtins
import json
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

import numpy as np

from schedcp.digests import sha256_digest
from schedcp.errors import Unavailable

from .embeddings import Embedder
from .store import (
    DEFAULT_LIMITS,
    TEXT_WEIGHTS,
    Antipattern,
    Finding,
    Limits,
    PerformanceRecord,
    Policy,
    PolicyMetadata,
    PolicyNotFound,
    PolicyStatus,
    PolicyVersionExists,
    SearchHit,
    SearchQuery,
    StatusChange,
    StoreIncompatible,
    TunableSpec,
    TunableType,
    WorkloadClass,
    check_transition,
    class_affinity,
    class_match_for,
    class_texts,
    content_digest,
    document_text,
    historical_ratio,
    keyword_fraction,
    keyword_text,
    normalise_policy,
    now,
    query_terms,
    rank_score,
    relevant_records,
    source_passages,
    tunable_to_json,
    validate_antipattern,
    validate_name,
    validate_query,
    validate_record,
    won_on_workload,
)

_NS = uuid.UUID("6f1c3c52-8d5e-4b7e-9a55-3c1f0e2a9b11")
_PAGE = 1000


def _uid(kind: str, key: str) -> str:
    return str(uuid.uuid5(_NS, f"{kind}:{key}"))


def _any_equal(prop: str, values: Sequence[int]) -> Any:
    """OR of equalities: ContainsAny is documented for text and array properties, these are scalar ints."""
    from weaviate.classes.query import Filter

    return Filter.any_of([Filter.by_property(prop).equal(v) for v in values])


def _utc(value: datetime | None) -> datetime:
    value = value or now()
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class WeaviateStore:
    """``PolicyStore`` on Weaviate; create with ``WeaviateStore.connect(url, embedder=...)``."""

    def __init__(self, client: Any, *, embedder: Embedder, limits: Limits = DEFAULT_LIMITS,
                 prefix: str = "Schedcp") -> None:
        self._client = client
        self._embedder = embedder
        self._limits = limits
        self._class_vecs: np.ndarray | None = None
        self._names = {k: f"{prefix}{k}" for k in
                       ("Policy", "Passage", "Performance", "StatusChange", "Antipattern", "Event", "Meta")}
        self._ensure_schema()
        self._c = {k: client.collections.get(v) for k, v in self._names.items()}
        self._check_meta()

    @classmethod
    def connect(cls, url: str, *, embedder: Embedder, grpc_port: int = 50051, limits: Limits = DEFAULT_LIMITS,
                prefix: str = "Schedcp") -> WeaviateStore:
        """Connect to the Weaviate at ``url`` (HTTP) and its gRPC port; collections are created on demand."""
        import weaviate

        parsed = urlparse(url if "://" in url else f"http://{url}")
        secure = parsed.scheme == "https"
        host = parsed.hostname or "localhost"
        try:
            client = weaviate.connect_to_custom(
                http_host=host, http_port=parsed.port or (443 if secure else 8080), http_secure=secure,
                grpc_host=host, grpc_port=grpc_port, grpc_secure=secure,
            )
        except Exception as exc:  # noqa: BLE001 - the client raises several unrelated types
            raise Unavailable(f"cannot connect to Weaviate at {url} (gRPC port {grpc_port}): {exc}",
                              hint="check SCHEDCP_WEAVIATE_URL / SCHEDCP_WEAVIATE_GRPC_PORT and that it is up") from exc
        return cls(client, embedder=embedder, limits=limits, prefix=prefix)

    # ------------------------------------------------------------- schema

    def _ensure_schema(self) -> None:
        from weaviate.classes.config import (
            Configure,
            DataType,
            Property,
            Tokenization,
            VectorDistances,
        )

        def field(name: str) -> Property:
            # Exact-match strings (names, digests, enums): one token per value.
            return Property(name=name, data_type=DataType.TEXT, tokenization=Tokenization.FIELD)

        def blob(name: str) -> Property:
            return Property(name=name, data_type=DataType.TEXT, index_filterable=False,
                            index_searchable=False)

        def vectors() -> Any:
            return Configure.Vectors.self_provided(
                vector_index_config=Configure.VectorIndex.hnsw(distance_metric=VectorDistances.COSINE))

        schemas: dict[str, tuple[list[Property], bool]] = {
            "Policy": ([field("name"), field("version"), field("ref"), field("content_digest"), blob("source"),
                        field("source_digest"), field("artifact_digest"),
                        Property(name="description", data_type=DataType.TEXT),
                        Property(name="target_workloads", data_type=DataType.INT_ARRAY),
                        Property(name="tags", data_type=DataType.TEXT_ARRAY, tokenization=Tokenization.FIELD),
                        field("author"), blob("tunables_json"), field("parent"), blob("patch"),
                        Property(name="status", data_type=DataType.INT),
                        Property(name="created_at", data_type=DataType.DATE),
                        Property(name="keyword_text", data_type=DataType.TEXT, tokenization=Tokenization.WORD)],
                       True),
            "Passage": ([field("policy_ref"), field("kind"), blob("text")], True),
            "Performance": ([field("policy_ref"), Property(name="workload_class", data_type=DataType.INT),
                             field("metric"), Property(name="ratio", data_type=DataType.NUMBER),
                             Property(name="success", data_type=DataType.BOOL), field("config_digest"),
                             blob("tunables_json"), field("source"), field("source_id"),
                             Property(name="at", data_type=DataType.DATE), field("workload_key")], False),
            "StatusChange": ([field("policy_ref"), Property(name="from_status", data_type=DataType.INT),
                              Property(name="to_status", data_type=DataType.INT), blob("reason"),
                              Property(name="at", data_type=DataType.DATE)], False),
            "Antipattern": ([field("antipattern_id"), field("policy_name"), field("policy_version"),
                             Property(name="workload_class", data_type=DataType.INT), blob("reason"),
                             blob("findings_json"), field("source_digest"), field("stage"),
                             Property(name="at", data_type=DataType.DATE)], False),
            "Event": ([field("event_id"), field("kind"), Property(name="at", data_type=DataType.DATE)], False),
            "Meta": ([field("key"), field("value")], False),
        }
        for key, (props, with_vectors) in schemas.items():
            name = self._names[key]
            if self._client.collections.exists(name):
                # Additive migration: properties added since the collection was
                # created (e.g. Performance.workload_key) are added, never changed.
                collection = self._client.collections.get(name)
                have = {p.name for p in collection.config.get().properties}
                for prop in props:
                    if prop.name not in have:
                        collection.config.add_property(prop)
                continue
            # Collections without embeddings still say so explicitly, so a
            # server-wide default vectorizer module never runs on them.
            kwargs: dict[str, Any] = {"properties": props,
                                      "vector_config": vectors() if with_vectors
                                      else Configure.Vectors.self_provided()}
            try:
                self._client.collections.create(name, **kwargs)
            except Exception:  # noqa: BLE001 - another replica created it first
                if not self._client.collections.exists(name):
                    raise

    def _check_meta(self) -> None:
        want = {"embedding_model": self._embedder.model_id, "embedding_dimension": str(self._embedder.dimension)}
        meta = self._c["Meta"]
        for key, value in want.items():
            obj = meta.query.fetch_object_by_id(_uid("meta", key))
            if obj is None:
                self._insert(meta, {"key": key, "value": value}, _uid("meta", key))
                obj = meta.query.fetch_object_by_id(_uid("meta", key))
            if obj is not None and obj.properties["value"] != value:
                raise StoreIncompatible(f"Weaviate collections hold {key}={obj.properties['value']!r}, "
                                        f"this build uses {value!r}",
                                        hint="use another collection prefix or re-seed")

    @staticmethod
    def _insert(collection: Any, properties: dict[str, Any], uid: str, vector: Sequence[float] | None = None
                ) -> bool:
        """Insert with a fixed id; False if an object with that id already exists."""
        from weaviate.exceptions import ObjectAlreadyExistsError, UnexpectedStatusCodeError

        try:
            collection.data.insert(properties=properties, uuid=uid,
                                   vector=None if vector is None else [float(x) for x in vector])
        except ObjectAlreadyExistsError:
            return False
        except UnexpectedStatusCodeError as exc:
            if exc.status_code == 422 and collection.data.exists(uid):
                return False
            raise
        return True

    def close(self) -> None:
        self._client.close()

    # ------------------------------------------------------------ mapping

    _LIGHT = ["name", "version", "source_digest", "artifact_digest", "description", "target_workloads", "tags",
              "author", "tunables_json", "parent", "status", "created_at", "content_digest"]

    @staticmethod
    def _to_policy(p: dict[str, Any], history: tuple[PerformanceRecord, ...] = ()) -> Policy:
        specs = tuple(TunableSpec(name=t["name"], type=TunableType[t["type"].upper()], default=t["default"],
                                  min=t["min"], max=t["max"], description=t["description"], unit=t["unit"])
                      for t in json.loads(p.get("tunables_json") or "[]"))
        return Policy(
            name=p["name"], version=p["version"], source=p.get("source") or "",
            source_digest=p.get("source_digest") or "", artifact_digest=p.get("artifact_digest") or "",
            metadata=PolicyMetadata(description=p.get("description") or "",
                                    target_workloads=tuple(WorkloadClass(c) for c in p.get("target_workloads") or []),
                                    tags=tuple(sorted(p.get("tags") or [])), author=p.get("author") or ""),
            tunables=specs, parent=p.get("parent") or "", patch=p.get("patch") or "",
            status=PolicyStatus(int(p["status"])), history=history, created_at=p.get("created_at"),
        )

    @staticmethod
    def _to_record(p: dict[str, Any]) -> PerformanceRecord:
        return PerformanceRecord(workload_class=WorkloadClass(int(p["workload_class"])), metric=p["metric"] or "",
                                 ratio=float(p["ratio"]), success=bool(p["success"]),
                                 config_digest=p.get("config_digest") or "",
                                 tunables=json.loads(p.get("tunables_json") or "{}"),
                                 source=p.get("source") or "verdict", source_id=p.get("source_id") or "",
                                 at=p.get("at"), workload_key=p.get("workload_key") or "")

    def _fetch_all(self, key: str, filters: Any = None, properties: builtins.list[str] | None = None) -> builtins.list[Any]:
        """Every object matching ``filters``, paged by id cursor."""
        out: list[Any] = []
        after = None
        while True:
            kwargs: dict[str, Any] = {"limit": _PAGE, "filters": filters}
            if properties is not None:
                kwargs["return_properties"] = properties
            if after is not None and filters is None:
                kwargs["after"] = after
            elif after is not None:
                kwargs["offset"] = len(out)
            page = self._c[key].query.fetch_objects(**kwargs).objects
            out.extend(page)
            if len(page) < _PAGE:
                return out
            after = page[-1].uuid

    def _history(self, refs: Sequence[str]) -> dict[str, builtins.list[PerformanceRecord]]:
        from weaviate.classes.query import Filter

        out: dict[str, list[PerformanceRecord]] = {r: [] for r in refs}
        if not refs:
            return out
        objs = self._fetch_all("Performance", Filter.by_property("policy_ref").contains_any(list(refs)))
        for o in sorted(objs, key=lambda o: o.properties.get("at") or now()):
            out.setdefault(o.properties["policy_ref"], []).append(self._to_record(o.properties))
        return out

    def _find(self, name: str, version: str) -> Any:
        from weaviate.classes.query import Filter, Sort

        validate_name(name)
        coll = self._c["Policy"]
        if version:
            obj = coll.query.fetch_object_by_id(_uid("policy", f"{name}@{version}"))
        else:
            res = coll.query.fetch_objects(filters=Filter.by_property("name").equal(name), limit=1,
                                           sort=Sort.by_property("created_at", ascending=False))
            obj = res.objects[0] if res.objects else None
        if obj is None:
            versions = [o.properties["version"] for o in
                        self._fetch_all("Policy", Filter.by_property("name").equal(name), ["version"])]
            ref = f"{name}@{version}" if version else name
            hint = (f"known versions of {name}: {', '.join(sorted(versions))}" if versions
                    else "list policies with `schedcp policies list`")
            raise PolicyNotFound(f"no policy {ref} in the repository", hint=hint)
        return obj

    # ------------------------------------------------------------- writes

    def put(self, policy: Policy, *, status: PolicyStatus = PolicyStatus.CANDIDATE) -> Policy:
        """Store a new immutable version (see ``PolicyStore.put``)."""
        policy = normalise_policy(policy, limits=self._limits)
        digest = content_digest(policy)
        uid = _uid("policy", policy.ref)
        existing = self._c["Policy"].query.fetch_object_by_id(uid, return_properties=["content_digest"])
        if existing is None:
            passages = source_passages(policy.source)
            vectors = self._embedder.embed([document_text(policy), *passages])
            md = policy.metadata
            created = now()
            props = {
                "name": policy.name, "version": policy.version, "ref": policy.ref, "content_digest": digest,
                "source": policy.source, "source_digest": policy.source_digest,
                "artifact_digest": policy.artifact_digest, "description": md.description,
                "target_workloads": [int(c) for c in md.target_workloads], "tags": list(md.tags),
                "author": md.author, "tunables_json": json.dumps([tunable_to_json(t) for t in policy.tunables]),
                "parent": policy.parent, "patch": policy.patch, "status": int(status), "created_at": created,
                "keyword_text": keyword_text(policy),
            }
            if self._insert(self._c["Policy"], props, uid, vectors[0]):
                for text, vec in zip(passages, vectors[1:], strict=True):
                    self._insert(self._c["Passage"], {"policy_ref": policy.ref, "kind": "source", "text": text},
                                 _uid("passage", f"{policy.ref}:{sha256_digest(text.encode())}"), vec)
                self._insert(self._c["StatusChange"],
                             {"policy_ref": policy.ref, "from_status": -1, "to_status": int(status),
                              "reason": "stored", "at": created}, _uid("status", f"{policy.ref}:stored"))
                return self.get(policy.name, policy.version)
            existing = self._c["Policy"].query.fetch_object_by_id(uid, return_properties=["content_digest"])
        if existing is not None and existing.properties["content_digest"] != digest:
            raise PolicyVersionExists(f"{policy.ref} already exists with different content; versions are immutable",
                                      hint="store the change under a new version (e.g. with parent set to this one)")
        return self.get(policy.name, policy.version)

    def put_many(self, policies: Sequence[Policy], *, status: PolicyStatus = PolicyStatus.CANDIDATE) -> int:
        """Put each policy (not atomic on Weaviate: validation happens for all first)."""
        normalised = [normalise_policy(p, limits=self._limits) for p in policies]
        before = {p.ref: self._c["Policy"].data.exists(_uid("policy", p.ref)) for p in normalised}
        for p in normalised:
            self.put(p, status=status)
        return sum(1 for v in before.values() if not v)

    def _claimed(self, event_id: str) -> bool:
        return bool(event_id) and self._c["Event"].data.exists(_uid("event", event_id))

    def _claim(self, event_id: str, kind: str) -> None:
        if event_id:
            self._insert(self._c["Event"], {"event_id": event_id, "kind": kind, "at": now()},
                         _uid("event", event_id))

    def record_outcome(self, name: str, version: str, record: PerformanceRecord, *,
                       event_id: str = "", workload_text: str = "") -> Policy:
        validate_record(record)
        obj = self._find(name, version)
        ref = f"{obj.properties['name']}@{obj.properties['version']}"
        # At most one record per policy for a (source, source_id): the id says so.
        if record.source_id:
            uid, fresh = _uid("perf", f"{ref}:{record.source}:{record.source_id}"), True
        else:
            uid, fresh = (_uid("perf", f"{ref}:{event_id}") if event_id else str(uuid.uuid4())), not self._claimed(event_id)
        if fresh and self._insert(self._c["Performance"], {
                "policy_ref": ref, "workload_class": int(record.workload_class), "metric": record.metric,
                "ratio": float(record.ratio), "success": bool(record.success),
                "config_digest": record.config_digest,
                "tunables_json": json.dumps(dict(record.tunables), sort_keys=True), "source": record.source,
                "source_id": record.source_id, "at": _utc(record.at),
                "workload_key": record.workload_key}, uid):
            workload_text = workload_text.strip()[: self._limits.max_workload_text_chars]
            if workload_text and record.success and record.ratio > 1.0:
                vector = self._embedder.embed([workload_text])[0]
                self._insert(self._c["Passage"], {"policy_ref": ref, "kind": "workload", "text": workload_text},
                             _uid("workload", f"{ref}:{sha256_digest(workload_text.encode())}"), vector)
            self._claim(event_id, "outcome")
        return self.get(obj.properties["name"], obj.properties["version"])

    def set_status(self, name: str, version: str, status: PolicyStatus, *, reason: str = "",
                   event_id: str = "") -> Policy:
        from weaviate.classes.query import Filter

        status = PolicyStatus(status)
        obj = self._find(name, version)
        ref = f"{obj.properties['name']}@{obj.properties['version']}"
        if not self._claimed(event_id):
            current = PolicyStatus(int(obj.properties["status"]))
            changes = self._fetch_all("StatusChange", Filter.by_property("policy_ref").equal(ref), ["to_status"])
            was_verified = any(int(c.properties["to_status"]) in (PolicyStatus.VERIFIED, PolicyStatus.PROMOTED)
                               for c in changes)
            if check_transition(ref, current, status, reason=reason, was_verified=was_verified):
                self._c["Policy"].data.update(uuid=obj.uuid, properties={"status": int(status)})
                self._insert(self._c["StatusChange"], {"policy_ref": ref, "from_status": int(current),
                                                       "to_status": int(status), "reason": reason, "at": now()},
                             str(uuid.uuid4()))
            self._claim(event_id, "status")
        return self.get(obj.properties["name"], obj.properties["version"])

    def status_history(self, name: str, version: str) -> builtins.list[StatusChange]:
        from weaviate.classes.query import Filter

        obj = self._find(name, version)
        ref = f"{obj.properties['name']}@{obj.properties['version']}"
        rows = self._fetch_all("StatusChange", Filter.by_property("policy_ref").equal(ref))
        rows.sort(key=lambda o: o.properties["at"])
        return [StatusChange(from_status=(PolicyStatus(int(o.properties["from_status"]))
                                          if int(o.properties["from_status"]) > 0 else None),
                             to_status=PolicyStatus(int(o.properties["to_status"])),
                             reason=o.properties.get("reason") or "", at=o.properties["at"]) for o in rows]

    def record_antipattern(self, antipattern: Antipattern, *, event_id: str = "") -> Antipattern:
        validate_antipattern(antipattern, limits=self._limits)
        ap = replace(antipattern, at=_utc(antipattern.at))
        uid = _uid("antipattern", ap.antipattern_id)
        if not self._claimed(event_id):
            self._insert(self._c["Antipattern"], {
                "antipattern_id": ap.antipattern_id, "policy_name": ap.policy_name,
                "policy_version": ap.policy_version, "workload_class": int(ap.workload_class),
                "reason": ap.reason, "findings_json": json.dumps([f.__dict__ for f in ap.findings]),
                "source_digest": ap.source_digest, "stage": ap.stage, "at": ap.at}, uid)
            self._claim(event_id, "antipattern")
        obj = self._c["Antipattern"].query.fetch_object_by_id(uid)
        return self._to_antipattern(obj.properties) if obj is not None else ap

    @staticmethod
    def _to_antipattern(p: dict[str, Any]) -> Antipattern:
        return Antipattern(antipattern_id=p["antipattern_id"], policy_name=p.get("policy_name") or "",
                           policy_version=p.get("policy_version") or "",
                           workload_class=WorkloadClass(int(p["workload_class"])), reason=p.get("reason") or "",
                           findings=tuple(Finding(**f) for f in json.loads(p.get("findings_json") or "[]")),
                           source_digest=p.get("source_digest") or "", stage=p.get("stage") or "",
                           at=p.get("at"))

    # -------------------------------------------------------------- reads

    def get(self, name: str, version: str = "") -> Policy:
        obj = self._find(name, version)
        ref = f"{obj.properties['name']}@{obj.properties['version']}"
        return self._to_policy(obj.properties, tuple(self._history([ref])[ref]))

    def list(self, *, statuses: Sequence[PolicyStatus] = (), all_versions: bool = False) -> builtins.list[Policy]:

        filters = _any_equal("status", [int(s) for s in statuses]) if statuses else None
        policies = [self._to_policy(o.properties) for o in self._fetch_all("Policy", filters, self._LIGHT)]
        policies.sort(key=lambda p: (p.name, _utc(p.created_at)))
        if not all_versions:
            latest: dict[str, Policy] = {}
            for p in policies:
                latest[p.name] = p
            policies = list(latest.values())
        return policies

    def find_by_source_digest(self, source_digest: str) -> Policy | None:
        from weaviate.classes.query import Filter, Sort

        res = self._c["Policy"].query.fetch_objects(
            filters=Filter.by_property("source_digest").equal(source_digest), limit=1,
            sort=Sort.by_property("created_at", ascending=False), return_properties=["name", "version"])
        if not res.objects:
            return None
        return self.get(res.objects[0].properties["name"], res.objects[0].properties["version"])

    def is_processed(self, event_id: str) -> bool:
        return self._claimed(event_id)

    def list_antipatterns(self, *, name: str = "", version: str = "",
                          workload_class: WorkloadClass | None = None, limit: int = 50) -> builtins.list[Antipattern]:
        from weaviate.classes.query import Filter, Sort

        clauses = []
        if name:
            clauses.append(Filter.by_property("policy_name").equal(name))
        if version:
            clauses.append(Filter.by_property("policy_version").equal(version))
        if workload_class:
            clauses.append(Filter.by_property("workload_class").equal(int(workload_class)))
        res = self._c["Antipattern"].query.fetch_objects(
            filters=Filter.all_of(clauses) if clauses else None, limit=max(1, min(limit, 1000)),
            sort=Sort.by_property("at", ascending=False))
        return [self._to_antipattern(o.properties) for o in res.objects]

    def _filters(self, query: SearchQuery) -> Any:
        from weaviate.classes.query import Filter

        clauses = [_any_equal("status", [int(s) for s in query.statuses])]
        if query.workload_classes:
            classes = [int(c) for c in query.workload_classes]
            same = _any_equal("workload_class", classes)
            if query.workload_key:
                # Or exactly this workload, whatever class it was recorded under.
                same = Filter.any_of([same, Filter.by_property("workload_key").equal(query.workload_key)])
            served = self._fetch_all("Performance", Filter.all_of([
                same, Filter.by_property("success").equal(True), Filter.by_property("ratio").greater_than(1.0)]),
                ["policy_ref"])
            refs = sorted({o.properties["policy_ref"] for o in served})
            by_class = Filter.by_property("target_workloads").contains_any(classes)
            clauses.append(Filter.any_of([by_class, Filter.by_property("ref").contains_any(refs)])
                           if refs else by_class)
        if query.tags:
            clauses.append(Filter.by_property("tags").contains_all(list(query.tags)))
        for kw in query.keywords:
            clauses.append(Filter.by_property("keyword_text").like(f"*{kw.lower()}*"))
        return Filter.all_of(clauses)

    def search(self, query: SearchQuery) -> builtins.list[SearchHit]:
        """Hybrid search with the shared ranking (``store.rank_score``)."""
        from weaviate.classes.query import Filter, MetadataQuery

        query = validate_query(query)
        filters = self._filters(query)
        pool = max(100, query.limit * 20)
        coll = self._c["Policy"]
        best: dict[str, float] = {}
        props: dict[str, dict[str, Any]] = {}
        qvec: list[float] = []
        if query.text.strip():
            qvec = [float(x) for x in np.asarray(self._embedder.embed([query.text])[0])]
            res = coll.query.near_vector(near_vector=qvec, limit=pool, filters=filters,
                                         return_metadata=MetadataQuery(distance=True),
                                         return_properties=self._LIGHT + ["ref"])
            for o in res.objects:
                ref = o.properties["ref"]
                best[ref] = 1.0 - float(o.metadata.distance)
                props[ref] = o.properties
            # Header-comment passages and workload texts a policy served well
            # count as extra descriptions of it (weighted as in the embedded store).
            wres = self._c["Passage"].query.near_vector(near_vector=qvec, limit=pool,
                                                        return_metadata=MetadataQuery(distance=True),
                                                        return_properties=["policy_ref", "kind"])
            extra: dict[str, float] = {}
            for o in wres.objects:
                ref = o.properties["policy_ref"]
                sim = (1.0 - float(o.metadata.distance)) * TEXT_WEIGHTS.get(o.properties["kind"], 1.0)
                extra[ref] = max(extra.get(ref, -1.0), sim)
            missing = [r for r in extra if r not in props]
            if missing:
                for o in self._fetch_all("Policy", Filter.all_of([filters, Filter.by_property("ref")
                                                                  .contains_any(missing)]), self._LIGHT + ["ref"]):
                    props[o.properties["ref"]] = o.properties
            for ref, sim in extra.items():
                if ref in props:
                    best[ref] = max(best.get(ref, -1.0), sim)
        else:
            for o in coll.query.fetch_objects(filters=filters, limit=pool,
                                              return_properties=self._LIGHT + ["ref"]).objects:
                best[o.properties["ref"]] = 0.0
                props[o.properties["ref"]] = o.properties
        if query.workload_key:
            # A policy that already won on exactly this workload is a candidate
            # however its text compares with the query (ranked first below).
            won = self._fetch_all("Performance", Filter.all_of([
                Filter.by_property("workload_key").equal(query.workload_key),
                Filter.by_property("success").equal(True), Filter.by_property("ratio").greater_than(1.0)]),
                ["policy_ref"])
            missing = sorted({o.properties["policy_ref"] for o in won} - set(best))
            if missing:
                for o in self._fetch_all("Policy", Filter.all_of([filters, Filter.by_property("ref")
                                                                  .contains_any(missing)]), self._LIGHT + ["ref"]):
                    props[o.properties["ref"]] = o.properties
                    best[o.properties["ref"]] = 0.0
        history = self._history(list(best))
        terms = query_terms(query.text)
        if self._class_vecs is None:
            self._class_vecs = self._embedder.embed(class_texts())
        affinity = class_affinity(np.asarray(qvec, dtype=np.float32) if query.text.strip() else None,
                                  self._class_vecs, query.workload_classes)
        ranked: dict[str, SearchHit] = {}
        exact: dict[str, bool] = {}
        for ref, sim in best.items():
            policy = self._to_policy(props[ref])
            relevant = relevant_records(history.get(ref, []), query.workload_classes, query.workload_key)
            kw = keyword_fraction(terms, keyword_text(policy))
            score = rank_score(similarity=sim, keyword=kw, records=relevant, status=policy.status,
                               class_match=class_match_for(policy, affinity))
            hit = SearchHit(policy=policy, similarity=sim, historical_ratio=historical_ratio(relevant),
                            score=score, keyword_fraction=kw)
            if policy.name not in ranked or score > ranked[policy.name].score:
                ranked[policy.name] = hit
                exact[policy.name] = won_on_workload(history.get(ref, []), query.workload_key)
        # A policy that already won on exactly this workload comes first (as in SqliteStore).
        top = sorted(ranked.values(),
                     key=lambda h: (not exact[h.policy.name], -h.score, h.policy.name))[: query.limit]
        return [replace(h, policy=self.get(h.policy.name, h.policy.version)) for h in top]

    # ---------------------------------------------------------- integrity

    def check_integrity(self) -> builtins.list[str]:
        problems: list[str] = []
        for o in self._fetch_all("Policy"):
            policy = self._to_policy(o.properties)
            if sha256_digest(policy.source.encode()) != policy.source_digest:
                problems.append(f"{policy.ref}: source does not match source_digest")
            if content_digest(policy) != o.properties.get("content_digest"):
                problems.append(f"{policy.ref}: content does not match its stored digest")
            if str(o.uuid) != _uid("policy", policy.ref):
                problems.append(f"{policy.ref}: stored under an unexpected id {o.uuid}")
        return problems
