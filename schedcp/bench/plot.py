"""A PNG of an A/B result: one panel per metric, EEVDF beside the candidate.

Each panel shows every repetition as a dot over a box of the distribution,
and the headline ratio in its title, so a reader sees at a glance both the
effect and whether the runs overlap.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

from schedcp.bench.engine import ABResult
from schedcp.bench.stats import format_ratio

BASELINE_COLOUR = "#7f7f7f"
CANDIDATE_COLOUR = "#1f77b4"
BETTER_COLOUR = "#2ca02c"
WORSE_COLOUR = "#d62728"


def plot_result(result: ABResult, path: Path) -> Path:
    """Write the plot of ``result`` to ``path`` (PNG) and return the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = result.metrics
    cols = min(3, len(metrics))
    rows = math.ceil(len(metrics) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.9 * rows + 0.6), squeeze=False,
                             layout="constrained")
    for ax in axes.flat[len(metrics):]:
        ax.axis("off")
    labels = ["EEVDF"] if result.baseline_only else ["EEVDF", result.scheduler]
    for ax, m in zip(axes.flat, metrics, strict=False):
        groups = [list(m.baseline_values)] if result.baseline_only else \
            [list(m.baseline_values), list(m.candidate_values)]
        colours = [BASELINE_COLOUR, CANDIDATE_COLOUR][:len(groups)]
        box = ax.boxplot(groups, widths=0.5, patch_artist=True, showfliers=False,
                         medianprops={"color": "black", "linewidth": 1.5})
        for patch, colour in zip(box["boxes"], colours, strict=True):
            patch.set_facecolor(colour)
            patch.set_alpha(0.35)
        for i, (values, colour) in enumerate(zip(groups, colours, strict=True), 1):
            # Deterministic jitter keeps overlapping repetitions visible.
            xs = [i + (j - (len(values) - 1) / 2) * 0.06 for j in range(len(values))]
            ax.scatter(xs, values, color=colour, zorder=3, s=22, edgecolor="black", linewidth=0.4)
        ax.set_xticks(range(1, len(labels) + 1), labels)
        direction = "higher is better" if m.higher_is_better else "lower is better"
        ax.set_ylabel(f"{m.unit} ({direction})")
        if result.baseline_only:
            ax.set_title(f"{m.metric}\nmedian {m.baseline:.4g} {m.unit}", fontsize=10)
        else:
            colour = BETTER_COLOUR if m.ratio >= 1 else WORSE_COLOUR
            rng = f"\nrun pairings {m.ratio_min:.2f}..{m.ratio_max:.2f}" \
                if math.isfinite(m.ratio_min) and math.isfinite(m.ratio_max) else ""
            ax.set_title(f"{m.metric}\n{format_ratio(m.ratio)} vs EEVDF{rng}", fontsize=10, color=colour)
        ax.grid(axis="y", alpha=0.3)
    tunables = ", ".join(f"{k}={v}" for k, v in sorted(result.tunables.items()))
    if result.baseline_only:
        title = f"{result.workload} on {result.node}: EEVDF only, {result.repetitions} repetitions"
    else:
        title = f"{result.workload} on {result.node}: {result.scheduler}"
        if tunables:
            title += f" ({tunables})"
        title += f" vs EEVDF, {result.repetitions} interleaved repetitions (box: quartiles, dots: runs)"
    # Wrapped to the figure's width: one metric's figure is narrow, and an
    # unwrapped title lost its workload and its legend off both edges.
    lines = textwrap.wrap(title, width=max(30, int(4.2 * cols * 11)))
    fig.set_figheight(fig.get_figheight() + 0.17 * (len(lines) - 1))
    fig.suptitle("\n".join(lines), fontsize=10)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)
    return path
