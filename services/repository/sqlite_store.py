"""The embedded policy store: one SQLite file plus an in-memory vector index.

Zero set-up: the file is created on first use. SQLite runs in WAL mode with a
busy timeout, so any number of threads and processes can read while one
writes, and writers queue instead of failing. Every write is one
``BEGIN IMMEDIATE`` transaction, so a failed put leaves nothing behind.

Embeddings are stored as float32 BLOBs next to the rows they describe, and
the vector index is a numpy matrix rebuilt lazily from them. Vector rows are
append-only (policy versions are immutable, workload texts only accumulate),
so keeping the index in sync with other processes' writes is cheap: before a
search, load the rows whose id is above the last one seen.
"""

from __future__ import annotations

import builtins
import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np

from schedcp.digests import sha256_digest

from .embeddings import Embedder
from .store import (
    DEFAULT_LIMITS,
    TEXT_WEIGHTS,
    Antipattern,
    Finding,
    InvalidPolicy,
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

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS policies (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    content_digest TEXT NOT NULL,
    source TEXT NOT NULL,
    source_digest TEXT NOT NULL,
    artifact_digest TEXT NOT NULL,
    description TEXT NOT NULL,
    target_workloads TEXT NOT NULL,
    tags TEXT NOT NULL,
    author TEXT NOT NULL,
    tunables TEXT NOT NULL,
    parent TEXT NOT NULL,
    patch TEXT NOT NULL,
    status INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (name, version)
);
CREATE INDEX IF NOT EXISTS policies_source_digest ON policies (source_digest);
CREATE INDEX IF NOT EXISTS policies_status ON policies (status);
CREATE TABLE IF NOT EXISTS policy_workloads (
    policy_seq INTEGER NOT NULL REFERENCES policies (seq),
    workload_class INTEGER NOT NULL,
    PRIMARY KEY (policy_seq, workload_class)
);
CREATE INDEX IF NOT EXISTS policy_workloads_class ON policy_workloads (workload_class);
CREATE TABLE IF NOT EXISTS policy_tags (
    policy_seq INTEGER NOT NULL REFERENCES policies (seq),
    tag TEXT NOT NULL,
    PRIMARY KEY (policy_seq, tag)
);
CREATE INDEX IF NOT EXISTS policy_tags_tag ON policy_tags (tag);
CREATE TABLE IF NOT EXISTS vectors (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    policy_seq INTEGER NOT NULL REFERENCES policies (seq),
    kind TEXT NOT NULL,
    text TEXT NOT NULL,
    text_digest TEXT NOT NULL,
    vector BLOB NOT NULL,
    UNIQUE (policy_seq, kind, text_digest)
);
CREATE TABLE IF NOT EXISTS performance (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    policy_seq INTEGER NOT NULL REFERENCES policies (seq),
    workload_class INTEGER NOT NULL,
    metric TEXT NOT NULL,
    ratio REAL NOT NULL,
    success INTEGER NOT NULL,
    config_digest TEXT NOT NULL,
    tunables TEXT NOT NULL,
    source TEXT NOT NULL,
    source_id TEXT NOT NULL,
    at TEXT NOT NULL,
    workload_key TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS performance_policy ON performance (policy_seq, source, source_id);
CREATE INDEX IF NOT EXISTS performance_class ON performance (workload_class, success);
CREATE TABLE IF NOT EXISTS status_changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    policy_seq INTEGER NOT NULL REFERENCES policies (seq),
    from_status INTEGER,
    to_status INTEGER NOT NULL,
    reason TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS antipatterns (
    antipattern_id TEXT PRIMARY KEY,
    policy_name TEXT NOT NULL,
    policy_version TEXT NOT NULL,
    workload_class INTEGER NOT NULL,
    reason TEXT NOT NULL,
    findings TEXT NOT NULL,
    source_digest TEXT NOT NULL,
    stage TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS antipatterns_policy ON antipatterns (policy_name, policy_version);
CREATE TABLE IF NOT EXISTS processed_events (
    event_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE VIRTUAL TABLE IF NOT EXISTS policies_fts USING fts5 (name, description, tags, workloads);
"""

# Columns loaded for ranking and listing: everything except the (possibly
# large) source and patch.
_LIGHT_COLUMNS = ("seq, name, version, '' AS source, source_digest, artifact_digest, description, "
                  "target_workloads, tags, author, tunables, parent, '' AS patch, status, created_at")
_FULL_COLUMNS = ("seq, name, version, source, source_digest, artifact_digest, description, "
                 "target_workloads, tags, author, tunables, parent, patch, status, created_at")


class _VectorIndex:
    """Normalised embeddings of every vector row, as one growable float32 matrix."""

    def __init__(self, dimension: int) -> None:
        self._lock = threading.Lock()
        self._dim = dimension
        self._matrix = np.zeros((0, dimension), dtype=np.float32)
        self._seqs = np.zeros(0, dtype=np.int64)
        self._weights = np.zeros(0, dtype=np.float32)
        self._size = 0
        self._last_id = 0

    def refresh(self, conn: sqlite3.Connection) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Load rows other writers (or this one) added; return (matrix, seqs, weights) views."""
        with self._lock:
            rows = conn.execute("SELECT id, policy_seq, vector, kind FROM vectors WHERE id > ? ORDER BY id",
                                (self._last_id,)).fetchall()
            if rows:
                need = self._size + len(rows)
                if need > len(self._matrix):
                    cap = max(need, 2 * len(self._matrix), 256)
                    grown = np.zeros((cap, self._dim), dtype=np.float32)
                    grown[: self._size] = self._matrix[: self._size]
                    seqs = np.zeros(cap, dtype=np.int64)
                    seqs[: self._size] = self._seqs[: self._size]
                    weights = np.zeros(cap, dtype=np.float32)
                    weights[: self._size] = self._weights[: self._size]
                    self._matrix, self._seqs, self._weights = grown, seqs, weights
                block = np.frombuffer(b"".join(r[2] for r in rows), dtype=np.float32)
                self._matrix[self._size:need] = block.reshape(len(rows), self._dim)
                self._seqs[self._size:need] = [r[1] for r in rows]
                self._weights[self._size:need] = [TEXT_WEIGHTS.get(r[3], 1.0) for r in rows]
                self._size = need
                self._last_id = rows[-1][0]
            n = self._size
            return self._matrix[:n], self._seqs[:n], self._weights[:n]

    @property
    def size(self) -> int:
        return self._size


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _iso(value: datetime | None) -> str:
    return (value or now()).isoformat()


class SqliteStore:
    """The default ``PolicyStore``: ``SqliteStore(path, embedder=MiniLmEmbedder())``.

    Safe to share between threads (each thread gets its own connection) and
    to open from several processes at once.
    """

    def __init__(self, path: Path | str, *, embedder: Embedder, limits: Limits = DEFAULT_LIMITS,
                 busy_timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._embedder = embedder
        self._limits = limits
        self._busy_ms = int(busy_timeout_s * 1000)
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._index = _VectorIndex(embedder.dimension)
        self._closed = False
        self._write_gen = 0
        self._class_vecs: np.ndarray | None = None
        self._init_schema()

    # ------------------------------------------------------------ plumbing

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise InvalidPolicy("the policy store is closed", hint="open a new SqliteStore")
        conn = getattr(self._local, "conn", None)
        # A connection must not cross a fork: key it by process too.
        if conn is None or self._local.pid != os.getpid():
            conn = sqlite3.connect(self.path, timeout=self._busy_ms / 1000, isolation_level=None,
                                   check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            self._local.conn, self._local.pid = conn, os.getpid()
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; the write lock is taken up front so it cannot deadlock later."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        # Own commits do not change this connection's data_version: count them
        # so cached filter results are recomputed (see _allowed_seqs).
        self._write_gen += 1

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot across several SELECTs."""
        conn = self._conn()
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    def _init_schema(self) -> None:
        with self._write() as conn:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            # Additive migration: stores written before records carried a
            # workload key gain the column ('' = unknown) instead of refusing to open.
            columns = {r[1] for r in conn.execute("PRAGMA table_info(performance)")}
            if "workload_key" not in columns:
                conn.execute("ALTER TABLE performance ADD COLUMN workload_key TEXT NOT NULL DEFAULT ''")
            conn.execute("CREATE INDEX IF NOT EXISTS performance_workload ON performance (workload_key, success)")
            want = {"schema_version": str(SCHEMA_VERSION), "embedding_model": self._embedder.model_id,
                    "embedding_dimension": str(self._embedder.dimension)}
            have = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            for key, value in want.items():
                if key not in have:
                    conn.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, value))
                elif have[key] != value:
                    raise StoreIncompatible(
                        f"{self.path} has {key}={have[key]!r} but this build uses {value!r}",
                        hint="open it with the matching version, or re-seed a new store from bpf/",
                    )

    def close(self) -> None:
        """Close every connection this object opened (all threads)."""
        self._closed = True
        with self._conns_lock:
            for conn in self._conns:
                try:
                    conn.close()
                except sqlite3.ProgrammingError:
                    pass  # closed from another thread already
            self._conns.clear()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------- mapping

    def _row_to_policy(self, row: sqlite3.Row | tuple, history: tuple[PerformanceRecord, ...] = ()) -> Policy:
        (_, name, version, source, source_digest, artifact_digest, description, workloads, tags, author,
         tunables, parent, patch, status, created_at) = row
        specs = tuple(
            TunableSpec(name=t["name"], type=TunableType[t["type"].upper()], default=t["default"],
                        min=t["min"], max=t["max"], description=t["description"], unit=t["unit"])
            for t in json.loads(tunables)
        )
        return Policy(
            name=name, version=version, source=source, source_digest=source_digest,
            artifact_digest=artifact_digest,
            metadata=PolicyMetadata(description=description,
                                    target_workloads=tuple(WorkloadClass(c) for c in json.loads(workloads)),
                                    tags=tuple(json.loads(tags)), author=author),
            tunables=specs, parent=parent, patch=patch, status=PolicyStatus(status),
            history=history, created_at=_dt(created_at),
        )

    @staticmethod
    def _record_from_row(row: tuple) -> PerformanceRecord:
        (workload_class, metric, ratio, success, config_digest, tunables, source, source_id, at,
         workload_key) = row
        return PerformanceRecord(workload_class=WorkloadClass(workload_class), metric=metric, ratio=ratio,
                                 success=bool(success), config_digest=config_digest,
                                 tunables=json.loads(tunables), source=source, source_id=source_id,
                                 at=_dt(at), workload_key=workload_key)

    _RECORD_COLUMNS = ("workload_class, metric, ratio, success, config_digest, tunables, source, source_id, at,"
                       " workload_key")

    def _history(self, conn: sqlite3.Connection, seq: int) -> tuple[PerformanceRecord, ...]:
        rows = conn.execute(f"SELECT {self._RECORD_COLUMNS} FROM performance WHERE policy_seq = ? ORDER BY id",
                            (seq,)).fetchall()
        return tuple(self._record_from_row(r) for r in rows)

    def _find(self, conn: sqlite3.Connection, name: str, version: str, columns: str = _FULL_COLUMNS) -> tuple:
        if version:
            row = conn.execute(f"SELECT {columns} FROM policies WHERE name = ? AND version = ?",
                               (name, version)).fetchone()
        else:
            row = conn.execute(f"SELECT {columns} FROM policies WHERE name = ? ORDER BY seq DESC LIMIT 1",
                               (name,)).fetchone()
        if row is None:
            ref = f"{name}@{version}" if version else name
            known = [r[0] for r in conn.execute("SELECT version FROM policies WHERE name = ? ORDER BY seq",
                                                (name,)).fetchall()]
            hint = (f"known versions of {name}: {', '.join(known)}" if known
                    else "list policies with `schedcp policies list`")
            raise PolicyNotFound(f"no policy {ref} in the repository", hint=hint)
        return row

    # --------------------------------------------------------------- writes

    def put(self, policy: Policy, *, status: PolicyStatus = PolicyStatus.CANDIDATE) -> Policy:
        """Store a new immutable version (see ``PolicyStore.put``)."""
        policy = normalise_policy(policy, limits=self._limits)
        digest = content_digest(policy)
        existing = self._existing_same(policy, digest)
        if existing is not None:
            return existing
        # Embedding is the slow part: do it before taking the write lock.
        texts = [document_text(policy), *source_passages(policy.source)]
        vectors = self._embedder.embed(texts)
        created = now()
        with self._write() as conn:
            self._insert_policy(conn, policy, digest, texts, vectors, status, created.isoformat())
        return self.get(policy.name, policy.version)

    def put_many(self, policies: Sequence[Policy], *, status: PolicyStatus = PolicyStatus.CANDIDATE) -> int:
        """Store many new versions with batched embedding (seeding, benchmarks); returns how many were new.

        All-or-nothing: one invalid or conflicting policy stores none of them.
        """
        normalised = [normalise_policy(p, limits=self._limits) for p in policies]
        conn = self._conn()
        fresh = []
        for p in normalised:
            digest = content_digest(p)
            row = conn.execute("SELECT content_digest FROM policies WHERE name = ? AND version = ?",
                               (p.name, p.version)).fetchone()
            # Identical content is skipped here; a conflict is left to the
            # transaction below, which refuses it and rolls back the batch.
            if row is None or row[0] != digest:
                fresh.append((p, digest))
        if not fresh:
            return 0
        texts = [[document_text(p), *source_passages(p.source)] for p, _ in fresh]
        # One embedding call for the whole batch: that is where the time goes.
        flat = self._embedder.embed([t for group in texts for t in group])
        created = now().isoformat()
        stored = 0
        offset = 0
        with self._write() as conn:
            for (policy, digest), group in zip(fresh, texts, strict=True):
                vectors = flat[offset:offset + len(group)]
                offset += len(group)
                stored += self._insert_policy(conn, policy, digest, group, vectors, status, created)
        return stored

    def _insert_policy(self, conn: sqlite3.Connection, policy: Policy, digest: str, texts: builtins.list[str],
                       vectors: np.ndarray, status: PolicyStatus, created: str) -> bool:
        """Insert one version inside the caller's transaction; False if identical content is there."""
        row = conn.execute("SELECT content_digest FROM policies WHERE name = ? AND version = ?",
                           (policy.name, policy.version)).fetchone()
        if row is not None:
            if row[0] != digest:
                raise self._exists_error(policy)
            # Someone stored the same content between our check and the lock.
            return False
        md = policy.metadata
        cur = conn.execute(
            "INSERT INTO policies (name, version, content_digest, source, source_digest, artifact_digest,"
            " description, target_workloads, tags, author, tunables, parent, patch, status, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (policy.name, policy.version, digest, policy.source, policy.source_digest, policy.artifact_digest,
             md.description, json.dumps([int(c) for c in md.target_workloads]), json.dumps(list(md.tags)),
             md.author, json.dumps([tunable_to_json(t) for t in policy.tunables]), policy.parent,
             policy.patch, int(status), created),
        )
        seq = int(cur.lastrowid or 0)
        conn.executemany("INSERT INTO policy_workloads (policy_seq, workload_class) VALUES (?, ?)",
                         [(seq, int(c)) for c in md.target_workloads])
        conn.executemany("INSERT INTO policy_tags (policy_seq, tag) VALUES (?, ?)",
                         [(seq, t) for t in md.tags])
        conn.execute("INSERT INTO policies_fts (rowid, name, description, tags, workloads) VALUES (?, ?, ?, ?, ?)",
                     (seq, policy.name, md.description, " ".join(md.tags),
                      " ".join(WorkloadClass(c).name.lower() for c in md.target_workloads)))
        # Row 0 is the description document; the rest are header-comment passages.
        self._insert_vector(conn, seq, "policy", texts[0], vectors[0])
        for text, vector in zip(texts[1:], vectors[1:], strict=True):
            self._insert_vector(conn, seq, "source", text, vector)
        conn.execute("INSERT INTO status_changes (policy_seq, from_status, to_status, reason, at)"
                     " VALUES (?, NULL, ?, ?, ?)", (seq, int(status), "stored", created))
        return True

    def _existing_same(self, policy: Policy, digest: str) -> Policy | None:
        conn = self._conn()
        row = conn.execute("SELECT content_digest FROM policies WHERE name = ? AND version = ?",
                           (policy.name, policy.version)).fetchone()
        if row is None:
            return None
        if row[0] != digest:
            raise self._exists_error(policy)
        return self.get(policy.name, policy.version)

    @staticmethod
    def _exists_error(policy: Policy) -> PolicyVersionExists:
        return PolicyVersionExists(
            f"{policy.ref} already exists with different content; versions are immutable",
            hint="store the change under a new version (e.g. with parent set to this one)",
        )

    def _insert_vector(self, conn: sqlite3.Connection, seq: int, kind: str, text: str, vector: np.ndarray) -> None:
        vec = np.asarray(vector, dtype=np.float32)
        if vec.shape != (self._embedder.dimension,):
            raise InvalidPolicy(f"embedder returned shape {vec.shape}, expected ({self._embedder.dimension},)")
        conn.execute("INSERT OR IGNORE INTO vectors (policy_seq, kind, text, text_digest, vector)"
                     " VALUES (?, ?, ?, ?, ?)",
                     (seq, kind, text, sha256_digest(text.encode()), vec.tobytes()))

    def _claim_event(self, conn: sqlite3.Connection, event_id: str, kind: str) -> bool:
        """Record ``event_id`` inside the current transaction; False if it was already processed."""
        if not event_id:
            return True
        cur = conn.execute("INSERT OR IGNORE INTO processed_events (event_id, kind, at) VALUES (?, ?, ?)",
                           (event_id, kind, now().isoformat()))
        return cur.rowcount == 1

    def record_outcome(self, name: str, version: str, record: PerformanceRecord, *,
                       event_id: str = "", workload_text: str = "") -> Policy:
        """Append a performance record (see ``PolicyStore.record_outcome``).

        A record with a ``source_id`` is stored at most once per policy for its
        (source, source_id): the repository's own consumer and the learner may
        both report the same verdict, and neither may count twice. Scoping this
        to the policy matters: the same verdict may legitimately be recorded on
        a generated child by one and on its parent by the other, and a global
        event claim would silently drop whichever came second. ``event_id``
        dedupes records without a source id.

        ``workload_text`` (a profile description) is embedded when the record is
        a success, so later searches phrased like that workload find this policy.
        """
        validate_record(record)
        workload_text = workload_text.strip()[: self._limits.max_workload_text_chars]
        vector = None
        if workload_text and record.success and record.ratio > 1.0:
            vector = self._embedder.embed([workload_text])[0]
        with self._write() as conn:
            seq = self._find(conn, name, version, "seq")[0]
            if record.source_id:
                fresh = conn.execute("SELECT 1 FROM performance WHERE policy_seq = ? AND source = ?"
                                     " AND source_id = ?", (seq, record.source, record.source_id)).fetchone() is None
            else:
                fresh = self._claim_event(conn, event_id, "outcome")
            if fresh:
                conn.execute(
                    f"INSERT INTO performance (policy_seq, {self._RECORD_COLUMNS})"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (seq, int(record.workload_class), record.metric, float(record.ratio), int(record.success),
                     record.config_digest, json.dumps(dict(record.tunables), sort_keys=True), record.source,
                     record.source_id, _iso(record.at), record.workload_key),
                )
                if vector is not None:
                    self._insert_vector(conn, seq, "workload", workload_text, vector)
        return self.get(name, self._version_of(seq))

    def _version_of(self, seq: int) -> str:
        return self._conn().execute("SELECT version FROM policies WHERE seq = ?", (seq,)).fetchone()[0]

    def set_status(self, name: str, version: str, status: PolicyStatus, *, reason: str = "",
                   event_id: str = "") -> Policy:
        """Apply a lifecycle transition (``store.check_transition``); a repeated event_id is a no-op."""
        status = PolicyStatus(status)
        with self._write() as conn:
            seq, current = self._find(conn, name, version, "seq, status")
            if self._claim_event(conn, event_id, "status"):
                was_verified = conn.execute(
                    "SELECT 1 FROM status_changes WHERE policy_seq = ? AND to_status IN (?, ?) LIMIT 1",
                    (seq, int(PolicyStatus.VERIFIED), int(PolicyStatus.PROMOTED))).fetchone() is not None
                ref = f"{name}@{version or self._version_of(seq)}"
                if check_transition(ref, PolicyStatus(current), status, reason=reason, was_verified=was_verified):
                    conn.execute("UPDATE policies SET status = ? WHERE seq = ?", (int(status), seq))
                    conn.execute("INSERT INTO status_changes (policy_seq, from_status, to_status, reason, at)"
                                 " VALUES (?, ?, ?, ?, ?)", (seq, current, int(status), reason, now().isoformat()))
        return self.get(name, self._version_of(seq))

    def status_history(self, name: str, version: str) -> builtins.list[StatusChange]:
        with self._read() as conn:
            seq = self._find(conn, name, version, "seq")[0]
            rows = conn.execute("SELECT from_status, to_status, reason, at FROM status_changes"
                                " WHERE policy_seq = ? ORDER BY id", (seq,)).fetchall()
        return [StatusChange(from_status=PolicyStatus(f) if f is not None else None, to_status=PolicyStatus(t),
                             reason=r, at=_dt(a) or now()) for f, t, r, a in rows]

    def record_antipattern(self, antipattern: Antipattern, *, event_id: str = "") -> Antipattern:
        """Store a failed attempt once (by antipattern_id and event_id)."""
        validate_antipattern(antipattern, limits=self._limits)
        ap = replace(antipattern, at=antipattern.at or now())
        with self._write() as conn:
            if self._claim_event(conn, event_id, "antipattern"):
                conn.execute(
                    "INSERT OR IGNORE INTO antipatterns (antipattern_id, policy_name, policy_version, workload_class,"
                    " reason, findings, source_digest, stage, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (ap.antipattern_id, ap.policy_name, ap.policy_version, int(ap.workload_class), ap.reason,
                     json.dumps([f.__dict__ for f in ap.findings]), ap.source_digest, ap.stage, _iso(ap.at)),
                )
            row = conn.execute(f"SELECT {self._AP_COLUMNS} FROM antipatterns WHERE antipattern_id = ?",
                               (ap.antipattern_id,)).fetchone()
        return self._antipattern_from_row(row) if row else ap

    _AP_COLUMNS = ("antipattern_id, policy_name, policy_version, workload_class, reason, findings, "
                   "source_digest, stage, at")

    @staticmethod
    def _antipattern_from_row(row: tuple) -> Antipattern:
        (aid, name, version, wclass, reason, findings, source_digest, stage, at) = row
        return Antipattern(antipattern_id=aid, policy_name=name, policy_version=version,
                           workload_class=WorkloadClass(wclass), reason=reason,
                           findings=tuple(Finding(**f) for f in json.loads(findings)),
                           source_digest=source_digest, stage=stage, at=_dt(at))

    # ---------------------------------------------------------------- reads

    def get(self, name: str, version: str = "") -> Policy:
        """One version with its full history; empty version means the most recently stored."""
        validate_name(name)
        with self._read() as conn:
            row = self._find(conn, name, version)
            return self._row_to_policy(row, self._history(conn, row[0]))

    def list(self, *, statuses: Sequence[PolicyStatus] = (), all_versions: bool = False) -> builtins.list[Policy]:
        """Policies without source, patch or history (use ``get`` for those), ordered by name."""
        where, params = "", []
        if statuses:
            where = f"WHERE status IN ({','.join('?' * len(statuses))})"
            params = [int(s) for s in statuses]
        if not all_versions:
            where = (f"WHERE seq IN (SELECT max(seq) FROM policies {where} GROUP BY name)")
        rows = self._conn().execute(f"SELECT {_LIGHT_COLUMNS} FROM policies {where} ORDER BY name, seq",
                                    params).fetchall()
        return [self._row_to_policy(r) for r in rows]

    def find_by_source_digest(self, source_digest: str) -> Policy | None:
        row = self._conn().execute("SELECT name, version FROM policies WHERE source_digest = ?"
                                   " ORDER BY seq DESC LIMIT 1", (source_digest,)).fetchone()
        return self.get(row[0], row[1]) if row else None

    def is_processed(self, event_id: str) -> bool:
        return self._conn().execute("SELECT 1 FROM processed_events WHERE event_id = ?",
                                    (event_id,)).fetchone() is not None

    def list_antipatterns(self, *, name: str = "", version: str = "",
                          workload_class: WorkloadClass | None = None, limit: int = 50) -> builtins.list[Antipattern]:
        """Newest first, filtered by policy name/version and workload class."""
        clauses: builtins.list[str] = []
        params: builtins.list[object] = []
        if name:
            clauses.append("policy_name = ?")
            params.append(name)
        if version:
            clauses.append("policy_version = ?")
            params.append(version)
        if workload_class:
            clauses.append("workload_class = ?")
            params.append(int(workload_class))
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        rows = self._conn().execute(f"SELECT {self._AP_COLUMNS} FROM antipatterns {where}"
                                    " ORDER BY at DESC, rowid DESC LIMIT ?", [*params, max(1, min(limit, 1000))]
                                    ).fetchall()
        return [self._antipattern_from_row(r) for r in rows]

    def search(self, query: SearchQuery) -> builtins.list[SearchHit]:
        """Hybrid search: semantic + keyword + filters, re-ranked with history (``store.rank_score``)."""
        query = validate_query(query)
        qvec = self._embedder.embed([query.text])[0] if query.text.strip() else None
        conn = self._conn()
        matrix, seqs, weights = self._index.refresh(conn)
        allowed = self._allowed_seqs(conn, query)
        if not allowed.size or not seqs.size:
            return []
        # Boolean lookup by seq: O(n), no sorting, no copy of the matrix.
        flags = np.zeros(int(max(seqs.max(), allowed.max())) + 1, dtype=bool)
        flags[allowed] = True
        mask = flags[seqs]
        if qvec is not None:
            sims = (matrix @ qvec) * weights
        else:
            sims = np.zeros(len(seqs), dtype=np.float32)
        sims = np.where(mask, sims, -np.inf)
        # Best row per policy (a policy has its description vector, header
        # passages and any workload texts it served well), for the top few.
        pool = max(50, query.limit * 10)
        rows_wanted = min(int(mask.sum()), pool * 8)
        if rows_wanted == 0:
            return []
        top = np.argpartition(-sims, rows_wanted - 1)[:rows_wanted]
        top = top[np.argsort(-sims[top], kind="stable")]
        best: dict[int, float] = {}
        for i in top:
            s = int(seqs[i])
            if s not in best:
                best[s] = float(sims[i])
                if len(best) >= pool:
                    break
        # A policy that already won on exactly this workload is a candidate
        # however its text compares with the query (ranked first in _rank).
        for s in self._workload_winners(conn, query.workload_key):
            if s not in best and s < len(flags) and flags[s]:
                rows = sims[seqs == s]
                best[s] = float(rows.max()) if rows.size else 0.0
        affinity = class_affinity(qvec, self._class_vectors(), query.workload_classes)
        hits = self._rank(conn, query, best, affinity)
        out: list[SearchHit] = []
        with self._read() as rconn:
            for hit, seq in hits[: query.limit]:
                row = rconn.execute(f"SELECT {_FULL_COLUMNS} FROM policies WHERE seq = ?", (seq,)).fetchone()
                out.append(replace(hit, policy=self._row_to_policy(row, self._history(rconn, seq))))
        return out

    def _allowed_seqs(self, conn: sqlite3.Connection, query: SearchQuery) -> np.ndarray:
        """Policy seqs passing the query's filters, cached until anyone writes.

        ``PRAGMA data_version`` changes when another connection (thread or
        process) commits; ``_write_gen`` covers this connection's own writes.
        """
        key = (query.statuses, query.workload_classes, query.tags, query.keywords, query.workload_key)
        version = (conn.execute("PRAGMA data_version").fetchone()[0], self._write_gen)
        cache = getattr(self._local, "allowed", None)
        if cache is None:
            cache = self._local.allowed = {}
        hit = cache.get(key)
        if hit is not None and hit[0] == version:
            return hit[1]
        allowed = self._query_allowed(conn, query)
        if len(cache) > 64:
            cache.clear()
        cache[key] = (version, allowed)
        return allowed

    def _query_allowed(self, conn: sqlite3.Connection, query: SearchQuery) -> np.ndarray:
        clauses = [f"status IN ({','.join('?' * len(query.statuses))})"]
        params: list[object] = [int(s) for s in query.statuses]
        if query.workload_classes:
            marks = ",".join("?" * len(query.workload_classes))
            clauses.append(f"(seq IN (SELECT policy_seq FROM policy_workloads WHERE workload_class IN ({marks}))"
                           f" OR seq IN (SELECT policy_seq FROM performance WHERE success = 1 AND ratio > 1"
                           f" AND workload_class IN ({marks}))"
                           " OR seq IN (SELECT policy_seq FROM performance WHERE success = 1 AND ratio > 1"
                           " AND workload_key = ? AND workload_key != ''))")
            params += [int(c) for c in query.workload_classes] * 2
            params.append(query.workload_key)
        for tag in query.tags:
            clauses.append("seq IN (SELECT policy_seq FROM policy_tags WHERE tag = ?)")
            params.append(tag)
        if query.keywords:
            match = " AND ".join(f'"{kw}"*' for kw in query.keywords)
            clauses.append("seq IN (SELECT rowid FROM policies_fts WHERE policies_fts MATCH ?)")
            params.append(match)
        rows = conn.execute(f"SELECT seq FROM policies WHERE {' AND '.join(clauses)}", params).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    @staticmethod
    def _workload_winners(conn: sqlite3.Connection, workload_key: str) -> builtins.list[int]:
        if not workload_key:
            return []
        rows = conn.execute("SELECT DISTINCT policy_seq FROM performance WHERE workload_key = ?"
                            " AND success = 1 AND ratio > 1", (workload_key,)).fetchall()
        return [r[0] for r in rows]

    def _class_vectors(self) -> np.ndarray:
        """Embeddings of the workload-class prose, computed once per store object."""
        if self._class_vecs is None:
            self._class_vecs = self._embedder.embed(class_texts())
        return self._class_vecs

    def _rank(self, conn: sqlite3.Connection, query: SearchQuery, best: dict[int, float],
              affinity: dict[WorkloadClass, float]) -> builtins.list[tuple[SearchHit, int]]:
        if not best:
            return []
        terms = query_terms(query.text)
        seq_list = list(best)
        records: dict[int, list[PerformanceRecord]] = {s: [] for s in seq_list}
        policies: dict[int, Policy] = {}
        # Chunked to stay under SQLite's bound-parameter limit.
        for start in range(0, len(seq_list), 500):
            chunk = seq_list[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for row in conn.execute(f"SELECT {_LIGHT_COLUMNS} FROM policies WHERE seq IN ({marks})", chunk):
                policies[row[0]] = self._row_to_policy(row)
            for row in conn.execute(f"SELECT policy_seq, {self._RECORD_COLUMNS} FROM performance"
                                    f" WHERE policy_seq IN ({marks})", chunk):
                records[row[0]].append(self._record_from_row(row[1:]))
        ranked: dict[str, tuple[SearchHit, int]] = {}
        exact: dict[str, bool] = {}
        for seq, sim in best.items():
            policy = policies.get(seq)
            if policy is None:
                continue
            relevant = relevant_records(records[seq], query.workload_classes, query.workload_key)
            kw = keyword_fraction(terms, keyword_text(policy))
            score = rank_score(similarity=sim, keyword=kw, records=relevant, status=policy.status,
                               class_match=class_match_for(policy, affinity))
            hit = SearchHit(policy=policy, similarity=sim, historical_ratio=historical_ratio(relevant),
                            score=score, keyword_fraction=kw)
            # One hit per name: the best-scoring version stands for the family.
            if policy.name not in ranked or score > ranked[policy.name][0].score:
                ranked[policy.name] = (hit, seq)
                exact[policy.name] = won_on_workload(records[seq], query.workload_key)
        return sorted(ranked.values(),
                      key=lambda hs: (not exact[hs[0].policy.name], -hs[0].score, hs[0].policy.name))

    # ------------------------------------------------------------ integrity

    def check_integrity(self) -> builtins.list[str]:
        """Everything that should hold after any sequence of operations, checked from the file."""
        problems: list[str] = []
        conn = self._conn()
        result = conn.execute("PRAGMA integrity_check").fetchone()[0]
        if result != "ok":
            problems.append(f"sqlite integrity_check: {result}")
        for row in conn.execute("PRAGMA foreign_key_check").fetchall():
            problems.append(f"foreign key violation: {row}")
        with self._read() as rconn:
            rows = rconn.execute(f"SELECT content_digest, {_FULL_COLUMNS} FROM policies").fetchall()
            vec_counts = dict(rconn.execute("SELECT policy_seq, count(*) FROM vectors WHERE kind = 'policy'"
                                            " GROUP BY policy_seq").fetchall())
            fts = {r[0] for r in rconn.execute("SELECT rowid FROM policies_fts").fetchall()}
            dim = self._embedder.dimension
            bad_vectors = rconn.execute("SELECT count(*) FROM vectors WHERE length(vector) != ?",
                                        (dim * 4,)).fetchone()[0]
        for row in rows:
            policy = self._row_to_policy(row[1:])
            if sha256_digest(policy.source.encode()) != policy.source_digest:
                problems.append(f"{policy.ref}: source does not match source_digest")
            if content_digest(policy) != row[0]:
                problems.append(f"{policy.ref}: content does not match its stored digest")
            if vec_counts.get(row[1]) != 1:
                problems.append(f"{policy.ref}: has {vec_counts.get(row[1], 0)} description vectors, expected 1")
            if row[1] not in fts:
                problems.append(f"{policy.ref}: missing from the keyword index")
        if len(fts) != len(rows):
            problems.append(f"keyword index has {len(fts)} rows for {len(rows)} policies")
        if bad_vectors:
            problems.append(f"{bad_vectors} vectors are not {dim} float32 values")
        return problems

    def counts(self) -> dict[str, int]:
        """Row counts per table, for status output and benchmarks."""
        conn = self._conn()
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in ("policies", "vectors", "performance", "antipatterns", "processed_events")}
