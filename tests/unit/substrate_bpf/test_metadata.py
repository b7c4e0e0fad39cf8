"""Scheduler metadata validation (the format in docs/bpf.md)."""

import json
import re
from pathlib import Path

import pytest

from schedcp.substrate.sched_metadata import MetadataError, TunableError, parse_metadata

BPF_DIR = Path(__file__).resolve().parents[3] / "bpf"


def _good() -> dict:
    return {"name": "demo", "description": "a demo", "target_workloads": ["CPU_THROUGHPUT"],
            "tags": ["x"], "tunables": [
                {"name": "slice_us", "type": "uint", "default": 10, "min": 1, "max": 100,
                 "description": "slice", "unit": "us"},
                {"name": "flag", "type": "bool", "default": False}]}


@pytest.mark.parametrize("name", ["fifo", "wvtime"])
def test_shipped_metadata_is_valid_and_matches_the_source(name: str) -> None:
    meta = parse_metadata(json.loads((BPF_DIR / f"{name}.json").read_text()))
    assert meta.name == name
    src = (BPF_DIR / f"{name}.bpf.c").read_text()
    assert f'.name\t\t= "{name}"' in src
    for t in meta.tunables:  # every tunable is a const volatile global of the program
        assert re.search(rf"const volatile \w+ {t.name} = ", src), t.name


def test_good_document_round_trips() -> None:
    meta = parse_metadata(_good())
    assert meta.tunable("slice_us").max == 100
    assert parse_metadata(meta.to_dict()) == meta
    assert meta.resolve({"slice_us": "7", "flag": "true"}) == {"slice_us": 7, "flag": True}


@pytest.mark.parametrize(("mutate", "match"), [
    (lambda d: d.update(name="Bad Name"), "name must match"),
    (lambda d: d.update(description=""), "description"),
    (lambda d: d.update(target_workloads=["FAST_STUFF"]), "unknown workload class"),
    (lambda d: d.update(extra=1), "unknown field"),
    (lambda d: d["tunables"][0].update(type="float"), "type must be one of"),
    (lambda d: d["tunables"][0].update(default=1000), "default must be an integer in"),
    (lambda d: d["tunables"][0].update(min=50, max=10), "min 50 > max 10"),
    (lambda d: d["tunables"][0].pop("max"), "need min and max"),
    (lambda d: d["tunables"][1].update(min=0), "a bool has no min/max"),
    (lambda d: d["tunables"][1].update(default=0), "default of a bool"),
    (lambda d: d["tunables"].append(dict(d["tunables"][0])), "duplicate tunable"),
    (lambda d: d["tunables"][0].update(name="1abc"), "C identifier"),
    (lambda d: d["tunables"][0].update(min=-1, default=0), "negative min"),
])
def test_bad_documents_name_the_problem(mutate, match: str) -> None:  # type: ignore[no-untyped-def]
    doc = _good()
    mutate(doc)
    with pytest.raises(MetadataError, match=match):
        parse_metadata(doc)


def test_unknown_tunable_lists_the_known_ones() -> None:
    with pytest.raises(TunableError, match="known tunables: slice_us, flag"):
        parse_metadata(_good()).resolve({"slice": 1})
