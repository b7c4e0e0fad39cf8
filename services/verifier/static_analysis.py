"""Scheduler-specific static analysis: flaws the kernel's eBPF verifier misses.

The kernel verifier proves memory safety and termination; it happily loads a
scheduler that never dispatches a task, fills a DSQ nobody drains or hands out
ten-second slices. This module parses the candidate with clang's JSON AST
(``-Xclang -ast-dump=json -fsyntax-only`` with exactly the build's flags), keeps
the declarations of the candidate and of the project's own headers (the
``sc_*`` compat wrappers), and runs rules over that model:

===========================  =====================================================
rule                         what it catches
===========================  =====================================================
enqueue-no-insert            a path through ops.enqueue that neither inserts nor
                             dispatches the task (it is lost: stall, ejection)
dsq-never-consumed           a DSQ created or filled but never moved to a local DSQ
missing-dispatch             custom DSQs without ops.dispatch (the default
                             dispatch only drains SCX_DSQ_GLOBAL)
slice-zero / slice-too-long  a slice that is 0 or longer than 1 s
slice-infinite               SCX_SLICE_INF without a timer or preempting kick
vtime-truncation             vtime stored or computed in 32 bits (wraps in ~4 s)
vtime-backwards              vtime decreased or built from unguarded subtraction
vtime-unclamped              a queued vtime not clamped against a global clock
                             (a long sleeper returns far ahead and starves others)
strict-priority-starvation   dispatch always drains one DSQ before another, with
                             no aging: the lower class starves under load
unbounded-loop               huge or task-wide loops in hot ops
removed-kfunc                scx_bpf_dispatch*/scx_bpf_consume (gone since 6.17)
deprecated-field-write       direct writes to p->scx.slice / p->scx.dsq_vtime
===========================  =====================================================

Only ERROR findings fail the stage; WARNING and INFO are reported. Rules
prefer silence to guessing: when a value cannot be evaluated statically
(a DSQ id computed at run time), the rule that needs it stays quiet, and the
dynamic stage is the backstop.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from schedcp.errors import SchedcpError
from services.verifier.domain import Finding, Severity

U64_MAX = (1 << 64) - 1
NSEC_PER_SEC = 1_000_000_000
#: Longest slice accepted without an error: beyond this one task can hold a CPU
#: for human-visible time.
MAX_SLICE_NS = NSEC_PER_SEC
LOOP_WARN = 1024
LOOP_ERROR = 65536

# sched_ext constants by name (stable UAPI-ish enums in vmlinux.h).
_DSQ_FLAG_BUILTIN = 1 << 63
_DSQ_FLAG_LOCAL_ON = 1 << 62
SCX_CONSTANTS = {
    "SCX_DSQ_FLAG_BUILTIN": _DSQ_FLAG_BUILTIN,
    "SCX_DSQ_FLAG_LOCAL_ON": _DSQ_FLAG_LOCAL_ON,
    "SCX_DSQ_INVALID": _DSQ_FLAG_BUILTIN,
    "SCX_DSQ_GLOBAL": _DSQ_FLAG_BUILTIN | 1,
    "SCX_DSQ_LOCAL": _DSQ_FLAG_BUILTIN | 2,
    "SCX_DSQ_LOCAL_ON": _DSQ_FLAG_BUILTIN | _DSQ_FLAG_LOCAL_ON,
    "SCX_SLICE_DFL": 20_000_000,
    "SCX_SLICE_INF": U64_MAX,
}

INSERT = {"scx_bpf_dsq_insert", "scx_bpf_dsq_insert_vtime", "scx_bpf_dispatch",
          "scx_bpf_dispatch_vtime", "__scx_bpf_dsq_insert_vtime"}
CONSUME = {"scx_bpf_dsq_move_to_local", "scx_bpf_consume"}
MOVE_INTO = {"scx_bpf_dsq_move", "scx_bpf_dsq_move_vtime", "scx_bpf_dispatch_from_dsq",
             "scx_bpf_dispatch_vtime_from_dsq"}
TERMINATE = {"scx_bpf_error_bstr", "scx_bpf_exit_bstr", "scx_bpf_error", "scx_bpf_exit"}
REMOVED = {
    "scx_bpf_dispatch": "scx_bpf_dsq_insert",
    "scx_bpf_dispatch_vtime": "scx_bpf_dsq_insert_vtime",
    "scx_bpf_consume": "scx_bpf_dsq_move_to_local",
    "scx_bpf_dispatch_from_dsq": "scx_bpf_dsq_move",
    "scx_bpf_dispatch_vtime_from_dsq": "scx_bpf_dsq_move_vtime",
    "scx_bpf_dispatch_from_dsq_set_slice": "scx_bpf_dsq_move_set_slice",
    "scx_bpf_dispatch_from_dsq_set_vtime": "scx_bpf_dsq_move_set_vtime",
}
#: (kfunc, argument index) -> role of that argument.
ROLE_ARGS: dict[str, dict[int, str]] = {
    "scx_bpf_dsq_insert": {1: "insert_dsq", 2: "slice"},
    "scx_bpf_dispatch": {1: "insert_dsq", 2: "slice"},
    "scx_bpf_dsq_insert_vtime": {1: "insert_dsq", 2: "slice", 3: "queue_vtime"},
    "scx_bpf_dispatch_vtime": {1: "insert_dsq", 2: "slice", 3: "queue_vtime"},
    "scx_bpf_dsq_move_to_local": {0: "consume_dsq"},
    "scx_bpf_consume": {0: "consume_dsq"},
    "bpf_iter_scx_dsq_new": {1: "consume_dsq"},
    "scx_bpf_dsq_move": {2: "insert_dsq"},
    "scx_bpf_dsq_move_vtime": {2: "insert_dsq"},
    "scx_bpf_dispatch_from_dsq": {2: "insert_dsq"},
    "scx_bpf_dispatch_vtime_from_dsq": {2: "insert_dsq"},
    "scx_bpf_create_dsq": {0: "create_dsq"},
    "scx_bpf_task_set_slice": {1: "set_slice"},
    "scx_bpf_task_set_dsq_vtime": {1: "vtime"},
}
HOT_OPS = ("enqueue", "dispatch", "select_cpu", "tick", "running", "stopping", "runnable",
           "quiescent", "update_idle", "dequeue")
TIME_SOURCES = {"bpf_ktime_get_ns", "scx_bpf_now", "bpf_ktime_get_boot_ns",
                "bpf_get_prandom_u32", "bpf_jiffies64"}
_BITS = {
    "u64": 64, "__u64": 64, "s64": 64, "__s64": 64, "unsigned long long": 64,
    "long long": 64, "unsigned long": 64, "long": 64, "uint64_t": 64, "int64_t": 64,
    "u32": 32, "__u32": 32, "s32": 32, "__s32": 32, "unsigned int": 32, "int": 32,
    "unsigned": 32, "uint32_t": 32, "int32_t": 32,
    "u16": 16, "__u16": 16, "s16": 16, "unsigned short": 16, "short": 16,
    "u8": 8, "__u8": 8, "s8": 8, "unsigned char": 8, "char": 8, "bool": 1, "_Bool": 1,
}
_SIGNED = {"s64", "__s64", "long long", "long", "int64_t", "s32", "__s32", "int", "int32_t",
           "s16", "short", "s8", "char"}


class StaticAnalysisError(SchedcpError):
    """The analyser could not run (clang missing, unparseable AST)."""

    code = "internal"


def normalize(name: str) -> str:
    """kfunc name without libbpf ``___flavour`` suffixes (the kernel's name)."""
    return name.split("___", 1)[0] if "___" in name else name


def bits_of(qual_type: str) -> int | None:
    t = qual_type.replace("const ", "").replace("volatile ", "").strip()
    return _BITS.get(t)


# ------------------------------------------------------------------ AST loading


@dataclass
class SourceFile:
    path: str
    text: bytes
    _starts: list[int] = field(default_factory=list)

    def line_of(self, offset: int) -> int:
        if not self._starts:
            self._starts = [0] + [m.end() for m in re.finditer(rb"\n", self.text)]
        lo, hi = 0, len(self._starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self._starts[mid] <= offset:
                lo = mid
            else:
                hi = mid - 1
        return lo + 1




@dataclass
class ParsedAst:
    """Top-level declarations of the analysed files, with resolved locations."""

    decls: list[dict]
    ops_fields: list[str]
    main_file: str
    files: dict[str, SourceFile]


def _first_explicit(data: bytes, needle: bytes) -> int:
    """First ``needle`` occurrence that is a location's own file key.

    ``includedFrom`` objects carry a ``file`` too, but without a trailing
    comma; bytes.find keeps this fast on a ~200 MB dump (a regex is seconds).
    """
    pos = data.find(needle)
    while pos >= 0:
        q = data.find(b'"', pos + len(needle))
        if q < 0:
            return -1
        if data[q + 1:q + 2] == b",":
            return pos
        pos = data.find(needle, q)
    return -1


def _is_analysed(path: str, main_name: str, project_dirs: Sequence[str]) -> bool:
    return Path(path).name == main_name or any(path.startswith(d) for d in project_dirs)


def _annotate_locations(node: object, state: list[str | None]) -> None:
    """Resolve clang's delta-encoded ``file`` in document order.

    clang writes a location's ``file`` only when it differs from the last
    location written, so every bare location ({"offset": ...}) gets ``_file``
    from a running state; ``includedFrom`` has no offset and does not count.
    """
    if isinstance(node, dict):
        if "offset" in node:
            if "file" in node:
                state[0] = node["file"]
            node["_file"] = state[0]
        for value in node.values():
            if isinstance(value, dict | list):
                _annotate_locations(value, state)
    elif isinstance(node, list):
        for value in node:
            _annotate_locations(value, state)


def parse_ast_json(data: bytes, *, main_file: str, project_dirs: Sequence[str],
                   ops_fields: Sequence[str] | None = None) -> ParsedAst:
    """Extract the analysed declarations from a full ``-ast-dump=json`` output.

    A dump of a scheduler is ~200 MB (vmlinux.h); only the tail from the first
    declaration located in an analysed file is decoded.
    """
    main_name = Path(main_file).name
    first = -1
    # Exact paths (with the closing quote and comma of an explicit key) make
    # each search one memmem over the dump instead of a walk over the millions
    # of includedFrom entries that share a prefix.
    headers = [str(h) for d in project_dirs for h in Path(d).rglob("*.h")]
    for path in (main_file, *headers):
        pos = data.find(b'"file": "' + path.encode() + b'",')
        if pos >= 0 and (first < 0 or pos < first):
            first = pos
    cut = data.rfind(b"\n    {\n", 0, first) if first >= 0 else -1
    if cut < 0:
        raise StaticAnalysisError(f"no declaration of {main_file} found in the AST")
    end = data.rfind(b"\n  ]")
    # The location state at the cut: the nearest explicit file key before it.
    state: list[str | None] = [None]
    pos = cut
    while True:
        pos = data.rfind(b'"file": "', 0, pos)
        if pos < 0:
            break
        q = data.find(b'"', pos + 9)
        if data[q + 1:q + 2] == b",":
            state[0] = data[pos + 9:q].decode(errors="replace")
            break
    decls = json.loads(b"[" + data[cut + 1:end] + b"]")
    _annotate_locations(decls, state)
    kept = []
    files: dict[str, SourceFile] = {}
    for d in decls:
        f = _decl_file(d)
        if f and _is_analysed(f, main_name, project_dirs):
            d["_decl_file"] = f
            kept.append(d)
            if f not in files:
                try:
                    files[f] = SourceFile(f, Path(f).read_bytes())
                except OSError:
                    files[f] = SourceFile(f, b"")
    if not ops_fields:
        ops_fields = _ops_field_order(data)
    return ParsedAst(decls=kept, ops_fields=list(ops_fields), main_file=main_file, files=files)


def _decl_file(decl: dict) -> str | None:
    loc = decl.get("loc") or {}
    loc = loc.get("expansionLoc", loc)
    return loc.get("_file")


def _ops_field_order(data: bytes) -> list[str]:
    """Field names of ``struct sched_ext_ops`` from the header's RecordDecl."""
    for m in re.finditer(rb'\n      "name": "sched_ext_ops",\n', data):
        start = data.rfind(b"\n    {\n", 0, m.start())
        end = data.find(b"\n    }", m.end())
        try:
            rec = json.loads(data[start + 1:end + 6])
        except ValueError:
            continue
        if rec.get("kind") == "RecordDecl" and rec.get("completeDefinition"):
            return [f.get("name", "") for f in rec.get("inner", []) if f.get("kind") == "FieldDecl"]
    return []


def ops_fields_from_header(text: str) -> list[str]:
    """Member names of ``struct sched_ext_ops`` in a bpftool-generated vmlinux.h."""
    m = re.search(r"^struct sched_ext_ops \{\n(.*?)^\};", text, re.S | re.M)
    if not m:
        return []
    names = []
    for line in m.group(1).splitlines():
        line = line.strip()
        fp = re.search(r"\(\*(\w+)\)\s*\(", line)
        if fp:
            names.append(fp.group(1))
            continue
        var = re.search(r"(\w+)\s*(?:\[[^\]]*\])?\s*(?::\s*\d+)?;$", line)
        if var:
            names.append(var.group(1))
    return names


PRELUDE = ('#include "vmlinux.h"\n#include <bpf/bpf_helpers.h>\n'
           "#include <bpf/bpf_tracing.h>\n#include <bpf/bpf_core_read.h>\n")


def dump_ast(source: Path, clang_args: Sequence[str], *, clang: str = "clang-19",
             cwd: Path | None = None, timeout_s: float = 120.0,
             pch: tuple[Path, Path] | None = None) -> bytes:
    """Run clang's JSON AST dump of ``source`` with the build's flags.

    With ``pch`` (prelude header, its precompiled form) the kernel and libbpf
    declarations come from the PCH and are not dumped: ~2 MB instead of
    ~200 MB, 0.3 s instead of 2-6 s.
    """
    extra = ["-include-pch", str(pch[1]), "-include", str(pch[0])] if pch else []
    cmd = [clang, *clang_args, *extra, "-fsyntax-only", "-Wno-everything", "-Xclang",
           "-ast-dump=json", str(source)]
    try:
        proc = subprocess.run(cmd, capture_output=True, cwd=cwd, timeout=timeout_s, check=False)
    except FileNotFoundError as exc:
        raise StaticAnalysisError(f"{clang} not found", hint="run scripts/install-system.sh") from exc
    if proc.returncode != 0 and not proc.stdout:
        raise StaticAnalysisError(
            f"clang could not parse {source.name}: {proc.stderr.decode(errors='replace')[-500:]}"
        )
    return proc.stdout


# ------------------------------------------------------------------ program model


def walk(node: object) -> Iterator[dict]:
    """Every AST node under ``node`` (pre-order)."""
    if isinstance(node, dict):
        yield node
        for child in node.get("inner", ()):
            yield from walk(child)
    elif isinstance(node, list):
        for child in node:
            yield from walk(child)


def strip(node: dict) -> dict:
    """Skip casts and parentheses."""
    while node.get("kind") in ("ImplicitCastExpr", "CStyleCastExpr", "ParenExpr",
                               "ConstantExpr") and node.get("inner"):
        node = node["inner"][0]
    return node


def ref_decl(node: dict) -> dict | None:
    node = strip(node)
    if node.get("kind") == "DeclRefExpr":
        return node.get("referencedDecl")
    return None


def callee_name(call: dict) -> str | None:
    inner = call.get("inner") or []
    if not inner:
        return None
    d = ref_decl(inner[0])
    return d.get("name") if d else None


@dataclass
class Function:
    name: str
    node: dict
    body: dict
    params: list[str]
    file: str
    in_main: bool


@dataclass
class Global:
    name: str
    qual_type: str
    init: dict | None
    in_main: bool
    line: int

    @property
    def is_tunable(self) -> bool:
        return "const" in self.qual_type and "volatile" in self.qual_type

    @property
    def is_const(self) -> bool:
        return self.qual_type.startswith("const ") or " const" in self.qual_type


@dataclass
class Event:
    """A role-bearing argument at a kfunc call (or wrapper call) site."""

    role: str
    expr: dict
    line: int
    function: str
    kfunc: str
    in_main: bool


class Program:
    """The candidate as the rules see it: functions, globals, ops, events."""

    def __init__(self, ast: ParsedAst, tunables: Mapping[str, object] | None = None) -> None:
        self.ast = ast
        self.tunables = dict(tunables or {})
        self.functions: dict[str, Function] = {}
        self.globals: dict[str, Global] = {}
        self.enums: dict[str, int] = dict(SCX_CONSTANTS)
        self.ops: dict[str, str] = {}
        self.ops_line = 0
        self.ops_var: dict | None = None
        for d in ast.decls:
            self._add_decl(d)
        self._summaries: dict[str, dict[int, set[str]]] = {}
        self._must_insert_memo: dict[str, bool] = {}
        self.events: list[Event] = []
        for fn in self.functions.values():
            self._collect_events(fn)

    # -- construction
    def line(self, node: dict) -> int:
        for key in ("range", "loc"):
            loc = node.get(key) or {}
            if key == "range":
                loc = loc.get("begin") or {}
            loc = loc.get("expansionLoc", loc)
            f = loc.get("_file")
            if f in self.ast.files and "offset" in loc:
                return self.ast.files[f].line_of(int(loc["offset"]))
        return 0

    def end_line(self, node: dict) -> int:
        loc = ((node.get("range") or {}).get("end") or {})
        loc = loc.get("expansionLoc", loc)
        f = loc.get("_file")
        if f in self.ast.files and "offset" in loc:
            return self.ast.files[f].line_of(int(loc["offset"]))
        return self.line(node)

    def _add_decl(self, d: dict) -> None:
        kind = d.get("kind")
        in_main = Path(d["_decl_file"]).name == Path(self.ast.main_file).name
        if kind == "FunctionDecl":
            body = next((c for c in d.get("inner", []) if c.get("kind") == "CompoundStmt"), None)
            if body is None:
                return
            params = [c.get("name", "") for c in d.get("inner", []) if c.get("kind") == "ParmVarDecl"]
            self.functions[d["name"]] = Function(d["name"], d, body, params, d["_decl_file"], in_main)
        elif kind == "VarDecl":
            qt = (d.get("type") or {}).get("qualType", "")
            if "struct sched_ext_ops" in qt:
                self.ops_var = d
                self.ops_line = self.line(d)
                return
            init = (d.get("inner") or [None])[0] if d.get("init") else None
            self.globals[d["name"]] = Global(d["name"], qt, init, in_main, self.line(d))
        elif kind == "EnumDecl":
            value = -1
            for c in d.get("inner", []):
                if c.get("kind") != "EnumConstantDecl":
                    continue
                if c.get("inner"):
                    v = self.eval(c["inner"][0])
                    value = v if v is not None else value + 1
                else:
                    value += 1
                self.enums[c["name"]] = value

    def resolve_ops(self) -> None:
        if self.ops_var is None:
            return
        init = next((c for c in self.ops_var.get("inner", []) if c.get("kind") == "InitListExpr"),
                    None)
        if init is None:
            return
        values = init.get("inner", [])
        names = self.ast.ops_fields
        for i, value in enumerate(values):
            fname = names[i] if i < len(names) else self._designator(value)
            if not fname:
                continue
            target = None
            for n in walk(value):
                if n.get("kind") == "DeclRefExpr":
                    rd = n.get("referencedDecl") or {}
                    if rd.get("kind") == "FunctionDecl":
                        target = rd.get("name")
                        break
            if target:
                self.ops[fname] = target

    def _designator(self, value: dict) -> str | None:
        """Fallback: read ``.field =`` from the source text before the value."""
        loc = ((value.get("range") or {}).get("begin") or {})
        loc = loc.get("spellingLoc", loc)
        f = self.ast.files.get(loc.get("_file"))
        if not f or "offset" not in loc:
            return None
        before = f.text[max(0, int(loc["offset"]) - 80):int(loc["offset"])].decode(errors="replace")
        m = re.search(r"\.(\w+)\s*=\s*(?:\([^)]*\)\s*)?$", before)
        return m.group(1) if m else None

    def op_function(self, op: str) -> Function | None:
        """The body of ``ops.<op>`` (BPF_PROG puts it in ``____<name>``)."""
        name = self.ops.get(op)
        if not name:
            return None
        return self.functions.get(f"____{name}") or self.functions.get(name)

    # -- evaluation
    def eval(self, node: dict | None, depth: int = 0) -> int | None:
        """Constant value of an integer expression, with tunables applied."""
        if node is None or depth > 20:
            return None
        kind = node.get("kind")
        if kind == "ConstantExpr" and "value" in node:
            try:
                return int(node["value"])
            except ValueError:
                pass
        if kind in ("ImplicitCastExpr", "ParenExpr", "ConstantExpr", "CStyleCastExpr"):
            inner = node.get("inner") or []
            v = self.eval(inner[0], depth + 1) if inner else None
            if v is not None and kind == "CStyleCastExpr":
                bits = bits_of((node.get("type") or {}).get("qualType", ""))
                if bits and bits < 64:
                    v &= (1 << bits) - 1
            return v
        if kind == "IntegerLiteral":
            return int(node["value"])
        if kind == "CharacterLiteral":
            return int(node["value"])
        if kind == "DeclRefExpr":
            rd = node.get("referencedDecl") or {}
            name = rd.get("name", "")
            if rd.get("kind") == "EnumConstantDecl":
                return self.enums.get(name)
            g = self.globals.get(name)
            if g and (g.is_tunable or g.is_const):
                if g.is_tunable and name in self.tunables:
                    t = self.tunables[name]
                    return int(t) if isinstance(t, bool | int) else None
                return self.eval(g.init, depth + 1) if g.init else (0 if g.is_tunable else None)
            return None
        if kind == "UnaryOperator":
            v = self.eval((node.get("inner") or [None])[0], depth + 1)
            if v is None:
                return None
            op = str(node.get("opcode"))
            return {"-": -v, "~": ~v & U64_MAX, "!": int(not v), "+": v}.get(op)
        if kind == "BinaryOperator":
            a, b = (node.get("inner") or [None, None])[:2]
            x, y = self.eval(a, depth + 1), self.eval(b, depth + 1)
            if x is None or y is None:
                return None
            op = str(node.get("opcode"))
            try:
                r = {"+": lambda: x + y, "-": lambda: x - y, "*": lambda: x * y,
                     "/": lambda: x // y, "%": lambda: x % y, "<<": lambda: x << y,
                     ">>": lambda: x >> y, "|": lambda: x | y, "&": lambda: x & y,
                     "^": lambda: x ^ y}[op]()
            except (KeyError, ZeroDivisionError):
                return None
            return r & U64_MAX if r >= 0 else r
        if kind == "CallExpr":
            # A parameterless helper that returns an expression (slice_ns()).
            fn = self.functions.get(callee_name(node) or "")
            if fn and not fn.params:
                stmts = fn.body.get("inner", [])
                if len(stmts) == 1 and stmts[0].get("kind") == "ReturnStmt" and stmts[0].get("inner"):
                    return self.eval(stmts[0]["inner"][0], depth + 1)
        return None

    def refs(self, node: dict) -> Iterator[dict]:
        for n in walk(node):
            if n.get("kind") == "DeclRefExpr":
                yield n.get("referencedDecl") or {}

    def refs_builtin_dsq(self, node: dict) -> bool:
        return any(r.get("name", "").startswith("SCX_DSQ_") for r in self.refs(node))

    def reads_mutable_global(self, node: dict) -> bool:
        for r in self.refs(node):
            g = self.globals.get(r.get("name", ""))
            if r.get("kind") == "VarDecl" and g and g.in_main and not g.is_const:
                return True
        return False

    # -- events
    def _param_index(self, fn: Function, expr: dict) -> int | None:
        d = ref_decl(expr)
        if d and d.get("kind") == "ParmVarDecl" and d.get("name") in fn.params:
            return fn.params.index(d["name"])
        return None

    def summary(self, name: str, stack: tuple[str, ...] = ()) -> dict[int, set[str]]:
        """Which parameters of a function flow into which kfunc roles."""
        if name in self._summaries:
            return self._summaries[name]
        fn = self.functions.get(name)
        out: dict[int, set[str]] = {}
        if fn is None or name in stack:
            return out
        for call in (n for n in walk(fn.body) if n.get("kind") == "CallExpr"):
            for _idx, role, expr in self._roles_at(call, stack + (name,)):
                p = self._param_index(fn, expr)
                if p is not None:
                    out.setdefault(p, set()).add(role)
        self._summaries[name] = out
        return out

    def _roles_at(self, call: dict, stack: tuple[str, ...] = ()) -> Iterator[tuple[int, str, dict]]:
        cname = callee_name(call) or ""
        args = (call.get("inner") or [])[1:]
        roles = ROLE_ARGS.get(normalize(cname))
        if roles is not None:
            for idx, role in roles.items():
                if idx < len(args):
                    yield idx, role, args[idx]
        elif cname in self.functions:
            for idx, rs in self.summary(cname, stack).items():
                if idx < len(args):
                    for role in rs:
                        yield idx, role, args[idx]

    def _collect_events(self, fn: Function) -> None:
        for node in walk(fn.body):
            kind = node.get("kind")
            if kind == "CallExpr":
                cname = callee_name(node) or ""
                for _idx, role, expr in self._roles_at(node):
                    if self._param_index(fn, expr) is not None and fn.name not in self.ops.values():
                        continue  # parametric: lifted to the callers by summary()
                    self.events.append(Event(role, expr, self.line(node), fn.name, cname, fn.in_main))
            elif kind in ("BinaryOperator", "CompoundAssignOperator") and node.get("opcode", "").endswith("="):
                if node.get("opcode") in ("==", "!=", "<=", ">="):
                    continue
                lhs, rhs = (node.get("inner") or [None, None])[:2]
                field_name = scx_field(lhs)
                if field_name == "slice":
                    self.events.append(Event("direct_slice", rhs, self.line(node), fn.name,
                                             node.get("opcode", "="), fn.in_main))
                elif field_name == "dsq_vtime" or _is_vtime_var(lhs):
                    self.events.append(Event("vtime_assign", node, self.line(node), fn.name,
                                             node.get("opcode", "="), fn.in_main))

    def closure(self, fn: Function) -> list[Function]:
        """``fn`` and every function it calls that has a body here."""
        seen: dict[str, Function] = {}
        todo = [fn]
        while todo:
            f = todo.pop()
            if f.name in seen:
                continue
            seen[f.name] = f
            for n in walk(f.body):
                if n.get("kind") == "CallExpr":
                    c = self.functions.get(callee_name(n) or "")
                    if c and c.name not in seen:
                        todo.append(c)
        return list(seen.values())

    def calls_in(self, fns: Iterable[Function]) -> Iterator[tuple[Function, dict, str]]:
        for f in fns:
            for n in walk(f.body):
                if n.get("kind") == "CallExpr":
                    yield f, n, callee_name(n) or ""


def scx_field(node: dict | None) -> str | None:
    """``slice`` for ``p->scx.slice`` (likewise dsq_vtime), else None."""
    if node is None:
        return None
    node = strip(node)
    if node.get("kind") != "MemberExpr":
        return None
    base = strip((node.get("inner") or [{}])[0])
    if base.get("kind") == "MemberExpr" and base.get("name") == "scx":
        return node.get("name")
    return None


def _is_vtime_var(node: dict | None) -> bool:
    d = ref_decl(node) if node else None
    return bool(d and d.get("kind") == "VarDecl" and "vtime" in d.get("name", "").lower())


# ------------------------------------------------------------------ path analysis


class _InsertFlow:
    """Does every path through a function insert (or abort) the task?"""

    def __init__(self, prog: Program, *, deferred_ok: bool) -> None:
        self.prog = prog
        self.deferred_ok = deferred_ok
        self.bad: list[int] = []
        self._breaks: list[list[bool]] = []
        self._switch_heads: list[bool] = []

    def call_inserts(self, call: dict, stack: tuple[str, ...]) -> bool:
        name = callee_name(call) or ""
        base = normalize(name)
        if base in INSERT or base in TERMINATE:
            return True
        if self.deferred_ok and base == "bpf_map_push_elem":
            return True
        fn = self.prog.functions.get(name)
        if fn and name not in stack:
            sub = _InsertFlow(self.prog, deferred_ok=self.deferred_ok)
            fall = sub.stmt(fn.body, False, stack + (name,))
            return not sub.bad and fall is not False
        return False

    def expr(self, node: dict, stack: tuple[str, ...]) -> bool:
        """True when evaluating ``node`` always inserts."""
        kind = node.get("kind")
        inner = node.get("inner") or []
        if kind == "BinaryOperator" and node.get("opcode") in ("&&", "||"):
            return bool(inner) and self.expr(inner[0], stack)
        if kind == "ConditionalOperator":
            return bool(inner) and (self.expr(inner[0], stack) or (
                len(inner) == 3 and self.expr(inner[1], stack) and self.expr(inner[2], stack)))
        if kind == "StmtExpr":
            sub = _InsertFlow(self.prog, deferred_ok=self.deferred_ok)
            return bool(inner) and sub.stmt(inner[0], False, stack) is True
        if any(self.expr(c, stack) for c in inner):
            return True
        return kind == "CallExpr" and self.call_inserts(node, stack)

    def stmt(self, node: dict, ins: bool | None, stack: tuple[str, ...]) -> bool | None:
        """State after ``node`` on fall-through (None: never falls through).

        ``ins`` None means unreachable (e.g. the top of a switch body before
        its first label); a case label makes it reachable again.
        """
        kind = node.get("kind")
        inner = node.get("inner") or []
        if kind in ("CaseStmt", "DefaultStmt"):
            head = self._switch_heads[-1] if self._switch_heads else False
            entry = head if ins is None else (ins and head)
            return self.stmt(inner[-1], entry, stack) if inner else entry
        if ins is None:
            if kind == "CompoundStmt":  # labels may hide inside
                state: bool | None = None
                for s in inner:
                    state = self.stmt(s, state, stack)
                return state
            return None
        if kind == "CompoundStmt":
            state = ins
            for s in inner:
                state = self.stmt(s, state, stack)
                if state is None and not any(
                        c.get("kind") in ("CaseStmt", "DefaultStmt") for c in inner):
                    return None
            return state
        if kind == "ReturnStmt":
            done = ins or any(self.expr(c, stack) for c in inner)
            if not done:
                self.bad.append(self.prog.line(node))
            return None
        if kind == "IfStmt":
            cond, rest = inner[0], inner[1:]
            ins2 = ins or self.expr(cond, stack)
            then = self.stmt(rest[0], ins2, stack) if rest else ins2
            other = self.stmt(rest[1], ins2, stack) if node.get("hasElse") and len(rest) > 1 else ins2
            if then is None and other is None:
                return None
            return all(s for s in (then, other) if s is not None)
        if kind in ("ForStmt", "WhileStmt", "DoStmt"):
            # The body may run zero times (or its inserts are conditional), so
            # the state after a loop is the state before it; returns inside
            # still count.
            self._breaks.append([])
            body = inner[-1] if kind != "DoStmt" else inner[0]
            if body:
                self.stmt(body, ins, stack)
            self._breaks.pop()
            return ins
        if kind == "SwitchStmt":
            head = ins or self.expr(inner[0], stack)
            body = inner[-1]
            self._switch_heads.append(head)
            self._breaks.append([])
            fall = self.stmt(body, None, stack)
            exits = self._breaks.pop()
            self._switch_heads.pop()
            has_default = any(n.get("kind") == "DefaultStmt" for n in walk(body))
            outs = exits + ([fall] if fall is not None else []) + ([head] if not has_default else [])
            return all(outs) if outs else None
        if kind in ("LabelStmt", "AttributedStmt"):
            return self.stmt(inner[-1], ins, stack) if inner else ins
        if kind == "GotoStmt":
            return None
        if kind == "BreakStmt":
            if self._breaks:
                self._breaks[-1].append(ins)
            return None
        if kind == "ContinueStmt":
            return None
        if kind == "NullStmt":
            return ins
        if kind == "DeclStmt":
            return ins or any(self.expr(c, stack) for d in inner for c in d.get("inner", []))
        return ins or self.expr(node, stack)


# ------------------------------------------------------------------ rules


class Rules:
    """All rules over one :class:`Program`; each returns findings."""

    def __init__(self, prog: Program) -> None:
        self.p = prog

    def f(self, severity: Severity, rule: str, message: str, line: int, hint: str) -> Finding:
        return Finding(severity, rule, message, line, hint, Path(self.p.ast.main_file).name)

    def run(self) -> list[Finding]:
        out: list[Finding] = []
        if self.p.ops_var is None:
            return [self.f(Severity.ERROR, "no-struct-ops",
                           "no `struct sched_ext_ops` variable: nothing to register", 0,
                           'declare one in SEC(".struct_ops.link") with .name and the ops')]
        for rule in (self.enqueue_no_insert, self.dsq_rules, self.slices, self.vtime,
                     self.strict_priority, self.hot_loops, self.kfuncs):
            out.extend(rule())
        out.sort(key=lambda x: (-x.severity, x.line))
        return out

    # 1. enqueue path without insert
    def enqueue_no_insert(self) -> list[Finding]:
        fn = self.p.op_function("enqueue")
        if fn is None:
            return []
        disp = self.p.op_function("dispatch")
        deferred_ok = disp is not None and any(
            normalize(n) in INSERT for _f, _c, n in self.p.calls_in(self.p.closure(disp)))
        flow = _InsertFlow(self.p, deferred_ok=deferred_ok)
        fall = flow.stmt(fn.body, False, (fn.name,))
        lines = list(flow.bad)
        if fall is False:
            lines.append(self.p.end_line(fn.body))
        return [self.f(Severity.ERROR, "enqueue-no-insert",
                       f"a path through ops.enqueue ({self.p.ops['enqueue']}) returns without "
                       "inserting the task into any DSQ; that task is never run, so sched_ext "
                       "stalls and the watchdog ejects the scheduler", line,
                       "end every path of enqueue with scx_bpf_dsq_insert*/sc_dsq_insert* "
                       "(e.g. to SCX_DSQ_GLOBAL as a fallback), or call scx_bpf_error()")
                for line in sorted(set(lines))]

    # 2 + 3. DSQ bookkeeping
    def dsq_rules(self) -> list[Finding]:
        out = []
        filled: dict[int, int] = {}
        consumed: set[int] = set()
        consume_unknown = False
        custom_unknown_line = 0
        for ev in self.p.events:
            if ev.role in ("insert_dsq", "create_dsq"):
                v = self.p.eval(ev.expr)
                if v is None:
                    if not self.p.refs_builtin_dsq(ev.expr) and ev.role == "insert_dsq":
                        custom_unknown_line = custom_unknown_line or ev.line
                    continue
                if v & _DSQ_FLAG_BUILTIN:
                    continue
                filled.setdefault(v, ev.line)
            elif ev.role == "consume_dsq":
                v = self.p.eval(ev.expr)
                if v is None:
                    consume_unknown = True
                else:
                    consumed.add(v)
        if (filled or custom_unknown_line) and self.p.op_function("dispatch") is None:
            line = min(filled.values()) if filled else custom_unknown_line
            out.append(self.f(
                Severity.ERROR, "missing-dispatch",
                "custom DSQs are used but there is no ops.dispatch; the default dispatch only "
                "drains SCX_DSQ_GLOBAL, so tasks in custom DSQs never run", line,
                "add a dispatch op that calls scx_bpf_dsq_move_to_local(<dsq>) for every "
                "custom DSQ"))
        if not consume_unknown:
            for dsq, line in sorted(filled.items()):
                if dsq not in consumed:
                    out.append(self.f(
                        Severity.ERROR, "dsq-never-consumed",
                        f"DSQ {dsq} is created or filled but never moved to a local DSQ; "
                        "its tasks starve", line,
                        f"call scx_bpf_dsq_move_to_local({dsq}) in ops.dispatch, or stop "
                        "inserting into it"))
        return out

    # 4. slices
    def slices(self) -> list[Finding]:
        out = []
        has_preempt_timer = any(
            normalize(n) in ("bpf_timer_start", "scx_bpf_kick_cpu")
            for _f, _c, n in self.p.calls_in(self.p.functions.values()))
        for ev in self.p.events:
            if ev.role not in ("slice", "set_slice", "direct_slice"):
                continue
            v = self.p.eval(ev.expr)
            if v is None:
                continue
            literal = strip(ev.expr).get("kind") == "IntegerLiteral"
            if v == 0:
                if ev.role == "slice" and literal:
                    out.append(self.f(
                        Severity.WARNING, "slice-zero",
                        "slice 0 keeps the task's previous slice; a task that never had one "
                        "gets a 1 ns slice and is preempted every tick", ev.line,
                        "pass an explicit slice such as SCX_SLICE_DFL"))
                else:
                    out.append(self.f(
                        Severity.ERROR, "slice-zero",
                        "time slice evaluates to 0 (with the given tunables): every task is "
                        "preempted at once, the CPU thrashes in the scheduler", ev.line,
                        "use a slice between ~100 us and 1 s, e.g. SCX_SLICE_DFL (20 ms); check "
                        "the slice tunable"))
            elif v == U64_MAX:
                sev = Severity.WARNING if has_preempt_timer else Severity.ERROR
                out.append(self.f(
                    sev, "slice-infinite",
                    "SCX_SLICE_INF: the task runs until it blocks; a CPU hog holds its CPU "
                    "forever unless something preempts it", ev.line,
                    "use a finite slice, or preempt with a bpf_timer + scx_bpf_kick_cpu"))
            elif v > MAX_SLICE_NS:
                out.append(self.f(
                    Severity.ERROR, "slice-too-long",
                    f"time slice is {v / 1e9:.3g} s (> {MAX_SLICE_NS / 1e9:g} s): one task "
                    "can hold a CPU long enough to starve interactive work", ev.line,
                    "keep slices in the 100 us .. 100 ms range (tunables are in their own units:"
                    " check *_us vs *_ns)"))
        return out

    # 5. vtime
    def vtime(self) -> list[Finding]:
        out = []
        # 32-bit vtime storage.
        for d in self._main_decls():
            if d.get("kind") in ("VarDecl", "FieldDecl", "ParmVarDecl") and \
                    "vtime" in d.get("name", "").lower():
                bits = bits_of((d.get("type") or {}).get("qualType", ""))
                if bits is not None and bits < 64:
                    out.append(self.f(
                        Severity.ERROR, "vtime-truncation",
                        f"`{d['name']}` holds a vtime in {bits} bits; vtime is in ns and "
                        "wraps after ~4 s, after which ordering inverts and tasks starve",
                        self.p.line(d), "store vtimes as u64"))
        for ev in self.p.events:
            if not ev.in_main or ev.role not in ("vtime", "queue_vtime", "vtime_assign"):
                continue
            expr = ev.expr
            if ev.role == "vtime_assign":
                if expr.get("opcode") == "-=":
                    rhs = (expr.get("inner") or [None, None])[1]
                    if self.p.eval(rhs) is None:
                        out.append(self._backwards(ev.line))
                    continue
                expr = (expr.get("inner") or [None, None])[1]
            if expr is None:
                continue
            if self._narrows(expr):
                out.append(self.f(
                    Severity.ERROR, "vtime-truncation",
                    "vtime passes through a 32-bit value here; it wraps after ~4 s of "
                    "runtime and ordering inverts", ev.line, "keep vtime arithmetic in u64"))
            top = strip(expr)
            if top.get("kind") == "BinaryOperator" and top.get("opcode") == "-":
                rhs = top["inner"][1]
                if self.p.eval(rhs) is None:
                    out.append(self._backwards(ev.line))
        out.extend(self._unclamped())
        return out

    def _backwards(self, line: int) -> Finding:
        return self.f(
            Severity.ERROR, "vtime-backwards",
            "vtime is decreased by a run-time amount: it can go backwards or underflow "
            "(u64 wrap to ~2^64), putting the task behind everyone forever or ahead of "
            "everyone", line,
            "only advance vtime (vtime += used * 100 / weight) and clamp a waking task with "
            "`if (time_before(v, vtime_now - slice)) v = vtime_now - slice`")

    def _narrows(self, expr: dict) -> bool:
        for n in walk(expr):
            if n.get("kind") in ("CStyleCastExpr", "ImplicitCastExpr") and n.get("inner"):
                to = bits_of((n.get("type") or {}).get("qualType", ""))
                frm = bits_of(((n["inner"][0]).get("type") or {}).get("qualType", ""))
                if to is not None and frm is not None and 1 < to < 64 <= frm:
                    return True
        return False

    def _unclamped(self) -> list[Finding]:
        out = []
        for ev in self.p.events:
            if ev.role != "queue_vtime":
                continue
            if not ev.in_main or self.p.reads_mutable_global(ev.expr):
                continue
            fn = self.p.functions.get(ev.function)
            if fn is None or self.p._param_index(fn, ev.expr) is not None:
                continue
            scope = self.p.closure(fn)
            reads_clock = any(self.p.reads_mutable_global(f.body) for f in scope)
            compares = any(self._is_comparison(n) for f in scope for n in walk(f.body))
            if not (reads_clock and compares):
                out.append(self.f(
                    Severity.ERROR, "vtime-unclamped",
                    "the task is queued with its own stored vtime and nothing clamps it "
                    "against the global clock: a task that slept for long comes back far "
                    "ahead and monopolises the CPUs until others catch up (starvation)",
                    ev.line,
                    "keep a global vtime_now (advanced in ops.running) and clamp: "
                    "`if (time_before(v, vtime_now - slice)) v = vtime_now - slice`"))
        return out

    @staticmethod
    def _is_comparison(n: dict) -> bool:
        if n.get("kind") == "BinaryOperator" and n.get("opcode") in ("<", ">", "<=", ">="):
            return True
        if n.get("kind") == "CallExpr":
            name = (callee_name(n) or "").lower()
            return any(k in name for k in ("before", "after", "min", "max", "clamp"))
        return False

    # 6. strict priority
    def strict_priority(self) -> list[Finding]:
        fn = self.p.op_function("dispatch")
        if fn is None:
            return []
        scope = self.p.closure(fn)
        consumes = [ev for ev in self.p.events
                    if ev.role == "consume_dsq" and ev.function in {f.name for f in scope}]
        ids = []
        for ev in consumes:
            v = self.p.eval(ev.expr)
            if v is None:
                return []
            if v not in ids:
                ids.append(v)
        if len(ids) < 2:
            return []
        aging = any(normalize(n) in TIME_SOURCES or n in ("sc_now",)
                    for _f, _c, n in self.p.calls_in(scope))
        aging = aging or any(self._writes_global(f) for f in scope)
        if aging:
            return []
        # The first DSQ is drained first unconditionally: `if (consume(A)) return;`.
        first = fn.body.get("inner", [])
        for s in first:
            if s.get("kind") == "IfStmt":
                cond = s["inner"][0]
                calls = [n for n in walk(cond) if n.get("kind") == "CallExpr"]
                roles = [r for c in calls for r in self.p._roles_at(c) if r[1] == "consume_dsq"]
                then = s["inner"][1] if len(s.get("inner", [])) > 1 else {}
                returns = then.get("kind") == "ReturnStmt" or any(
                    c.get("kind") == "ReturnStmt" for c in then.get("inner", []))
                if roles and returns and strip(cond).get("kind") in ("CallExpr",):
                    hi = self.p.eval(roles[0][2])
                    lo = [i for i in ids if i != hi]
                    return [self.f(
                        Severity.ERROR, "strict-priority-starvation",
                        f"ops.dispatch always drains DSQ {hi} before {lo}, with no aging: "
                        f"while DSQ {hi} keeps getting work, tasks in {lo} never run",
                        self.p.line(s),
                        "age the lower class (e.g. serve it when its head waited > N ms, "
                        "or every Nth dispatch), or use one vtime-ordered DSQ with weights")]
            if s.get("kind") not in ("DeclStmt", "NullStmt"):
                break
        return []

    def _writes_global(self, fn: Function) -> bool:
        for n in walk(fn.body):
            if n.get("kind") in ("BinaryOperator", "CompoundAssignOperator", "UnaryOperator"):
                op = n.get("opcode", "")
                if op in ("=", "+=", "-=", "++", "--", "|=", "^=", "&="):
                    target = (n.get("inner") or [{}])[0]
                    d = ref_decl(target)
                    if d and d.get("name") in self.p.globals and \
                            not self.p.globals[d["name"]].is_const:
                        return True
        return False

    # 7. unbounded work in hot ops
    def hot_loops(self) -> list[Finding]:
        out = []
        seen: set[tuple[str, int]] = set()
        for op in HOT_OPS:
            fn = self.p.op_function(op)
            if fn is None:
                continue
            for f in self.p.closure(fn):
                for n in walk(f.body):
                    finding = self._loop_finding(op, n)
                    if finding and (finding.rule, finding.line) not in seen:
                        seen.add((finding.rule, finding.line))
                        out.append(finding)
        return out

    def _loop_finding(self, op: str, n: dict) -> Finding | None:
        kind = n.get("kind")
        line = self.p.line(n)
        if kind == "CallExpr":
            name = normalize(callee_name(n) or "")
            args = (n.get("inner") or [])[1:]
            count = None
            if name == "bpf_loop" and args:
                count = self.p.eval(args[0])
            elif name == "bpf_iter_num_new" and len(args) >= 3:
                a, b = self.p.eval(args[1]), self.p.eval(args[2])
                count = b - a if a is not None and b is not None else None
            elif name in ("bpf_iter_task_new", "bpf_iter_css_task_new", "bpf_iter_css_new"):
                return self.f(Severity.ERROR, "unbounded-loop",
                              f"ops.{op} iterates over all tasks: O(tasks) work on every "
                              "scheduling event", line,
                              "keep per-task state in task storage and update it incrementally")
            return self._count_finding(op, count, line)
        if kind in ("ForStmt", "WhileStmt", "DoStmt"):
            cond = self._loop_cond(n)
            if cond is None:
                return self.f(Severity.WARNING, "unbounded-loop",
                              f"loop without a condition in hot op ops.{op}", line,
                              "bound it with a small constant (bpf_for(i, 0, N))")
            c = strip(cond)
            if c.get("kind") == "BinaryOperator" and c.get("opcode") in ("<", "<=", ">", ">=", "!="):
                a, b = c["inner"][:2]
                count = self.p.eval(b) if self.p.eval(b) is not None else self.p.eval(a)
                if count is None:
                    names = {r.get("name", "") for r in self.p.refs(c)}
                    if any("nr_cpu" in x for x in names) or any(
                            "nr_cpu" in (callee_name(x) or "") for x in walk(c)
                            if x.get("kind") == "CallExpr"):
                        return self.f(Severity.WARNING, "unbounded-loop",
                                      f"ops.{op} loops over every CPU on each call", line,
                                      "track idle CPUs with the kernel's idle mask "
                                      "(scx_bpf_pick_idle_cpu) instead of scanning")
                    return None
                return self._count_finding(op, count, line)
        return None

    @staticmethod
    def _loop_cond(n: dict) -> dict | None:
        inner = n.get("inner") or []
        if n.get("kind") == "ForStmt":
            # ForStmt inner: init, condVar, cond, inc, body ({} for absent parts).
            return inner[2] if len(inner) > 2 and inner[2] else None
        if n.get("kind") == "WhileStmt":
            return inner[0] if inner else None
        return inner[1] if len(inner) > 1 else None

    def _count_finding(self, op: str, count: int | None, line: int) -> Finding | None:
        if count is None or count <= LOOP_WARN:
            return None
        sev = Severity.ERROR if count > LOOP_ERROR else Severity.WARNING
        return self.f(sev, "unbounded-loop",
                      f"ops.{op} runs a loop of {count} iterations on every call; hot ops run "
                      "per wakeup/context switch and such work stalls the CPU", line,
                      f"bound the loop to <= {LOOP_WARN} iterations or move the work to a "
                      "timer/sleepable op")

    # 8. removed / deprecated kfuncs
    def kfuncs(self) -> list[Finding]:
        out = []
        for f, call, name in self.p.calls_in(self.p.functions.values()):
            if not f.in_main:
                continue
            base = normalize(name)
            if base in REMOVED:
                weak = "___" in name
                out.append(self.f(
                    Severity.WARNING if weak else Severity.ERROR, "removed-kfunc",
                    f"{base} was renamed in 6.13 and removed in 6.17; kernels >= 6.17 "
                    "refuse to load this program", self.p.line(call),
                    f"call {REMOVED[base]} (or the sc_* wrapper from schedcp/compat.bpf.h)"))
        for ev in self.p.events:
            if ev.in_main and (ev.role == "direct_slice" or (
                    ev.role == "vtime_assign" and scx_field(ev.expr["inner"][0]) == "dsq_vtime")):
                which = "slice" if ev.role == "direct_slice" else "dsq_vtime"
                setter = "scx_bpf_task_set_slice" if which == "slice" else \
                    "scx_bpf_task_set_dsq_vtime"
                out.append(self.f(
                    Severity.WARNING, "deprecated-field-write",
                    f"direct write to p->scx.{which} is deprecated (the kernel warns)",
                    ev.line, f"use {setter}() or the sc_task_set_* wrapper"))
        return out

    def _main_decls(self) -> Iterator[dict]:
        main = Path(self.p.ast.main_file).name
        for d in self.p.ast.decls:
            if Path(d["_decl_file"]).name == main:
                yield from walk(d)


# ------------------------------------------------------------------ entry point


@dataclass
class StaticReport:
    findings: list[Finding]
    ops: dict[str, str]
    duration_s: float

    @property
    def passed(self) -> bool:
        return not any(f.severity is Severity.ERROR for f in self.findings)


class StaticAnalyzer:
    """Runs clang's AST dump of a candidate and the rules over it.

    ``clang_args`` are the build's flags (target, defines, include paths)
    without the source and output; ``project_include_dirs`` are the headers
    whose bodies are analysed too (the compat wrappers).
    """

    def __init__(self, *, clang_args: Sequence[str], project_include_dirs: Sequence[Path],
                 clang: str = "clang-19", cache_dir: Path | None = None) -> None:
        self.clang_args = list(clang_args)
        self.project_dirs = [str(Path(d).resolve()) for d in project_include_dirs]
        self.clang = clang
        self.cache_dir = Path(cache_dir) if cache_dir else None

    def _vmlinux_h(self) -> Path | None:
        args = self.clang_args
        for i, a in enumerate(args[:-1]):
            if a in ("-isystem", "-I") and (Path(args[i + 1]) / "vmlinux.h").is_file():
                return Path(args[i + 1]) / "vmlinux.h"
        return None

    def _pch(self) -> tuple[Path, Path] | None:
        """Build (once per flags + headers) a PCH of vmlinux.h and libbpf's headers."""
        header = self._vmlinux_h()
        if self.cache_dir is None or header is None:
            return None
        import hashlib

        st = header.stat()
        key = hashlib.sha256(json.dumps([self.clang, self.clang_args, str(header), st.st_size,
                                         st.st_mtime_ns, PRELUDE]).encode()).hexdigest()[:24]
        d = self.cache_dir / "pch" / key
        prelude, pch = d / "prelude.h", d / "prelude.h.pch"
        if pch.is_file():
            return prelude, pch
        d.mkdir(parents=True, exist_ok=True)
        prelude.write_text(PRELUDE)
        tmp = d / f".prelude.{os.getpid()}.{threading.get_ident()}.pch"
        proc = subprocess.run([self.clang, *self.clang_args, "-Wno-everything", "-x", "c-header",
                               str(prelude), "-o", str(tmp)], capture_output=True, check=False)
        if proc.returncode != 0 or not tmp.is_file():
            tmp.unlink(missing_ok=True)
            return None
        os.replace(tmp, pch)
        return prelude, pch

    def _ops_fields(self) -> list[str]:
        header = self._vmlinux_h()
        if header is None:
            return []
        key = str(header)
        if key not in _OPS_FIELDS_CACHE:
            _OPS_FIELDS_CACHE[key] = ops_fields_from_header(header.read_text(errors="replace"))
        return _OPS_FIELDS_CACHE[key]

    def analyze_file(self, source: Path, *, tunables: Mapping[str, object] | None = None,
                     cwd: Path | None = None) -> StaticReport:
        t0 = time.monotonic()
        pch = self._pch()
        data = b""
        if pch is not None:
            try:
                data = dump_ast(source, self.clang_args, clang=self.clang, cwd=cwd, pch=pch)
            except StaticAnalysisError:
                data = b""  # a stale or incompatible PCH: fall back to the full dump
        if not data:
            data = dump_ast(source, self.clang_args, clang=self.clang, cwd=cwd)
        ast = parse_ast_json(data, main_file=str(source), project_dirs=self.project_dirs,
                             ops_fields=self._ops_fields())
        del data
        return analyze_parsed(ast, tunables=tunables, started=t0)


_OPS_FIELDS_CACHE: dict[str, list[str]] = {}


def analyze_parsed(ast: ParsedAst, *, tunables: Mapping[str, object] | None = None,
                   started: float | None = None) -> StaticReport:
    """Run every rule over an already parsed AST."""
    t0 = started if started is not None else time.monotonic()
    prog = Program(ast, tunables)
    prog.resolve_ops()
    findings = Rules(prog).run()
    return StaticReport(findings=findings, ops=dict(prog.ops), duration_s=time.monotonic() - t0)
