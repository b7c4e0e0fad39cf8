"""Pure helpers of tier 2: histograms, wakeup edges, perf output."""

from services.observer.tier2 import histogram_from_slots, parse_perf_csv, top_edges


def test_histogram_bounds_and_percentiles() -> None:
    counts = [0] * 40
    counts[3] = 90  # [4, 8) us
    counts[10] = 9  # [512, 1024) us
    counts[20] = 1  # [~0.5 s, ~1 s)
    h = histogram_from_slots(counts)
    assert h.samples == 100 and len(h.bounds) == 39 and len(h.counts) == 40
    assert h.bounds[3] == 8.0
    assert h.p50 == 8.0 and h.p99 == 1024.0 and h.p999 == float(1 << 20)


def test_empty_histogram_has_zero_percentiles() -> None:
    h = histogram_from_slots([0] * 40)
    assert h.samples == 0 and h.p99 == 0.0


def test_top_edges_bounded_sorted_and_cleaned() -> None:
    edges = {("a", "b"): 5, ("c", "d"): 50, ("evil\nline", "x\x1b"): 7}
    out = top_edges(edges, 2)
    assert [(e.waker, e.count) for e in out] == [("c", 50), ("evil\\x0aline", 7)]
    assert out[1].wakee == "x\\x1b"


def test_perf_csv_supported_and_not() -> None:
    text = ("<not supported>,,instructions,0,100.00,,\n"
            "412,,context-switches,408836,100.00,0.000,/sec\n"
            "0.41,msec,task-clock,408836,100.00,0.528,CPUs utilized\n"
            "# comment\n")
    values, unsupported = parse_perf_csv(text)
    assert values == {"context-switches": 412.0, "task-clock": 0.41}
    assert unsupported == ["instructions"]
