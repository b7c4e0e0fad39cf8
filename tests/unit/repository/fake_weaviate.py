"""An in-memory imitation of the small part of the weaviate-client v4 API WeaviateStore uses.

For unit tests of WeaviateStore's own logic (idempotency by object id, lifecycle,
filters it builds, ranking) where no Weaviate server exists. It interprets the
client's real Filter/Sort objects, so a property name WeaviateStore gets wrong
shows up here. It says nothing about wire compatibility with a server: that is
what the contract suite's Weaviate leg (SCHEDCP_WEAVIATE_URL) is for.
"""

from __future__ import annotations

import fnmatch
import re
import uuid as uuid_mod
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from weaviate.exceptions import ObjectAlreadyExistsError


@dataclass
class Metadata:
    distance: float | None = None


@dataclass
class Obj:
    uuid: uuid_mod.UUID
    properties: dict[str, Any]
    vector: list[float] | None = None
    metadata: Metadata = field(default_factory=Metadata)


@dataclass
class Result:
    objects: list[Obj]


def _match(flt: Any, props: dict[str, Any]) -> bool:
    if flt is None:
        return True
    if hasattr(flt, "filters"):
        results = [_match(f, props) for f in flt.filters]
        return all(results) if type(flt).__name__ == "_FilterAnd" else any(results)
    value = props.get(flt.target)
    op = flt.operator.value
    if op == "Equal":
        return bool(value == flt.value)
    if op == "GreaterThan":
        return value is not None and value > flt.value
    if op in ("ContainsAny", "ContainsAll"):
        have = set(value) if isinstance(value, list) else {value}
        want = set(flt.value)
        return bool(have & want) if op == "ContainsAny" else want <= have
    if op == "Like":
        words = re.findall(r"[a-z0-9]+", str(value or "").lower())
        return any(fnmatch.fnmatch(w, flt.value.lower()) for w in words)
    raise NotImplementedError(f"operator {op}")


class _Data:
    def __init__(self, coll: _Collection) -> None:
        self._c = coll

    def insert(self, properties: dict[str, Any], uuid: str | None = None, vector: Any = None) -> uuid_mod.UUID:
        unknown = set(properties) - self._c.property_names
        if unknown:
            raise ValueError(f"{self._c.name}: properties not in the schema: {sorted(unknown)}")
        key = uuid_mod.UUID(uuid) if uuid else uuid_mod.uuid4()
        if key in self._c.objects:
            raise ObjectAlreadyExistsError(f"id {key} already exists")
        self._c.objects[key] = Obj(uuid=key, properties=dict(properties),
                                   vector=None if vector is None else list(vector))
        return key

    def exists(self, uuid: Any) -> bool:
        return uuid_mod.UUID(str(uuid)) in self._c.objects

    def update(self, uuid: Any, properties: dict[str, Any]) -> None:
        self._c.objects[uuid_mod.UUID(str(uuid))].properties.update(properties)


class _Query:
    def __init__(self, coll: _Collection) -> None:
        self._c = coll

    def _check(self, filters: Any, props: list[str] | None) -> None:
        names = set(props or [])
        stack = [filters] if filters is not None else []
        while stack:
            f = stack.pop()
            if hasattr(f, "filters"):
                stack.extend(f.filters)
            else:
                names.add(f.target)
        unknown = names - self._c.property_names
        if unknown:
            raise ValueError(f"{self._c.name}: no such properties {sorted(unknown)}")

    def _view(self, o: Obj, props: list[str] | None, distance: float | None = None) -> Obj:
        shown = o.properties if props is None else {k: v for k, v in o.properties.items() if k in props}
        return Obj(uuid=o.uuid, properties=dict(shown), vector=o.vector, metadata=Metadata(distance))

    def fetch_object_by_id(self, uuid: Any, return_properties: list[str] | None = None) -> Obj | None:
        o = self._c.objects.get(uuid_mod.UUID(str(uuid)))
        return None if o is None else self._view(o, return_properties)

    def fetch_objects(self, *, limit: int | None = None, offset: int | None = None, after: Any = None,
                      filters: Any = None, sort: Any = None, return_properties: list[str] | None = None) -> Result:
        self._check(filters, return_properties)
        objs = sorted((o for o in self._c.objects.values() if _match(filters, o.properties)), key=lambda o: o.uuid)
        if after is not None:
            objs = [o for o in objs if o.uuid > uuid_mod.UUID(str(after))]
        for s in reversed(sort.sorts if sort is not None else []):
            objs.sort(key=lambda o, p=s.prop: o.properties[p], reverse=not s.ascending)
        objs = objs[offset or 0:]
        return Result([self._view(o, return_properties) for o in objs[:limit]])

    def near_vector(self, near_vector: list[float], *, limit: int | None = None, filters: Any = None,
                    return_metadata: Any = None, return_properties: list[str] | None = None) -> Result:
        self._check(filters, return_properties)
        q = np.asarray(near_vector, dtype=np.float32)
        scored = [(1.0 - float(np.dot(np.asarray(o.vector, dtype=np.float32), q)), o)
                  for o in self._c.objects.values() if o.vector is not None and _match(filters, o.properties)]
        scored.sort(key=lambda t: t[0])
        return Result([self._view(o, return_properties, d) for d, o in scored[:limit]])


class _Config:
    """``collection.config``: read the schema, add a property (what migrations use)."""

    def __init__(self, c: _Collection) -> None:
        self._c = c

    def get(self) -> Any:
        from types import SimpleNamespace

        return SimpleNamespace(properties=[SimpleNamespace(name=n) for n in sorted(self._c.property_names)])

    def add_property(self, prop: Any) -> None:
        if prop.name in self._c.property_names:
            raise ValueError(f"property {prop.name} exists")
        self._c.property_names.add(prop.name)


class _Collection:
    def __init__(self, name: str, properties: list[Any]) -> None:
        self.name = name
        self.property_names = {p.name for p in properties}
        self.objects: dict[uuid_mod.UUID, Obj] = {}
        self.data = _Data(self)
        self.query = _Query(self)
        self.config = _Config(self)


class _Collections:
    def __init__(self) -> None:
        self._all: dict[str, _Collection] = {}

    def exists(self, name: str) -> bool:
        return name in self._all

    def create(self, name: str, *, properties: list[Any], vector_config: Any = None) -> _Collection:
        self._all[name] = _Collection(name, properties)
        return self._all[name]

    def get(self, name: str) -> _Collection:
        return self._all[name]

    def delete(self, name: str) -> None:
        self._all.pop(name, None)


class FakeWeaviateClient:
    def __init__(self) -> None:
        self.collections = _Collections()
        self.closed = False

    def close(self) -> None:
        self.closed = True


class HashingEmbedder:
    """Bag-of-words vectors (normalised): similar wording -> similar vectors. Pure, no model."""

    model_id = "hashing-test-embedder"
    dimension = 384

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"[a-z0-9]+", text.lower()):
                out[i, hash(word) % self.dimension] += 1.0
            norm = np.linalg.norm(out[i])
            if norm:
                out[i] /= norm
        return out
