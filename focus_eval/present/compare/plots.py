"""Accuracy-vs-cost plots of a report: per benchmark, one PNG against search FPs and one against
TFLOPs, a panel per headline metric.

Every row of the benchmark's table is one marker: colour = method, shape = model, filled =
runs (ours: FOCUS and the baselines alike), open = the paper's printed numbers. The points of
one curve (`report.curve_key`: source, model, method, search variant, answer scheme; they differ
in their search budget, e.g. FOCUS's n_steps or ZoomEye's depth) are joined (solid: runs,
dotted: the paper); a point off its method's published search or scheme (an ablation, another
answer scheme, a ViCrop map, `settings.variant`) is named beside it. The Pareto front over all
markers of a panel (less cost, more accuracy) is a dashed black staircase with rings on its
points. Vanilla rows without an FP count sit at 0 FPs (no search); rows without the axis'
number (the paper's rows outside Table 14 on the TFLOPs axis, runs without counters) are not
drawn, and the report's notes say how many. Drawn with matplotlib's Agg canvas (no display, no
pyplot state); PNG metadata carries no version or date, so the same numbers give the same file.

`draw` returns what was drawn, read back from the plot's markers (`Point`); `--out` writes it
beside each PNG as `<name>.points.csv`, and the tests compare it with the table.
"""

from __future__ import annotations

import csv
import textwrap
from dataclasses import dataclass
from pathlib import Path

from focus_eval.present.compare import settings
from focus_eval.present.compare.names import BENCHMARKS, METHOD_TITLES
from focus_eval.present.compare.report import PAPER, Report, curve_key
from focus_eval.present.compare.runs import Row
from focus_eval.present.compare.stats import pareto_front

AXES = {"fp": "search forward passes (FP) per question", "tflops": "TFLOPs per question"}
METHOD_COLOURS = {"focus": "#7b3fbf", "vanilla": "#555555", "zoomeye": "#f28e2b", "vicrop": "#59a14f", "dc2": "#9c755f",
                  "seal": "#e15759", "chance": "#000000"}
MODEL_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
POINT_COLUMNS = ("source", "model", "method", "setting", "metric", "x", "y")


@dataclass(frozen=True)
class Point:
    source: str
    model: str
    method: str
    setting: str
    metric: str
    x: float
    y: float


def x_value(row: Row, axis: str) -> float | None:
    value = getattr(row, axis)
    if value is None and axis == "fp" and row.method == "vanilla":
        return 0.0
    return value


def draw(report: Report, benchmark: str, axis: str, path: Path, title_note: str = "") -> tuple[list[Point], int]:
    """Write the PNG; return the points drawn and the number of rows left out (no x value)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    rows = report.headline_rows(benchmark)
    metrics = list(dict.fromkeys(row.metric for row in rows))
    figure = Figure(figsize=(6.4 * len(metrics) + 1.0, 6.6), layout="constrained")
    FigureCanvasAgg(figure)
    shapes: dict[str, str] = {}
    handles: dict[str, Line2D] = {}
    drawn: list[tuple[object, Row, str]] = []  # (marker artist, row, metric)
    left_out = 0
    for index, metric in enumerate(metrics):
        ax = figure.add_subplot(1, len(metrics), index + 1)
        curves: dict[tuple, list[tuple[float, float]]] = {}
        for row in (r for r in rows if r.metric == metric):
            x = x_value(row, axis)
            if x is None:
                left_out += 1
                continue
            paper = row.source == PAPER
            colour = METHOD_COLOURS.get(row.method, "#76b7b2")
            shape = shapes.setdefault(row.model, MODEL_MARKERS[len(shapes) % len(MODEL_MARKERS)])
            marker = ax.scatter([x], [row.value], s=48, marker=shape, zorder=3, linewidths=1.6,
                                facecolors="none" if paper else colour, edgecolors=colour)
            drawn.append((marker, row, metric))
            variant = settings.variant(row.method, row.setting)
            if variant:  # an ablation, another answer scheme, a ViCrop map: named at the point
                ax.annotate(variant, (x, row.value), xytext=(5, 4), textcoords="offset points", fontsize=7,
                            color=colour)
            if row.method != "vanilla":
                curves.setdefault(curve_key(row), []).append((x, row.value))
            label = f"{'paper' if paper else 'runs'}: {row.model} {METHOD_TITLES.get(row.method, row.method)}"
            handles.setdefault(label, Line2D([], [], color=colour, marker=shape, linestyle="none", markersize=7,
                                             markerfacecolor="none" if paper else colour, label=label))
        for (kind, _, method, _, _), points in curves.items():
            if len(points) > 1:
                xs, ys = zip(*sorted(points))
                ax.plot(xs, ys, color=METHOD_COLOURS.get(method, "#76b7b2"), linewidth=1.0,
                        linestyle=":" if kind == PAPER else "-", alpha=0.7, zorder=2)
        everything = [(x_value(r, axis), r.value) for r in rows if r.metric == metric and x_value(r, axis) is not None]
        front = pareto_front(everything)
        if front:
            xs, ys = zip(*front)
            ax.step(xs, ys, where="post", color="black", linestyle="--", linewidth=1.0, zorder=1)
            ax.scatter(xs, ys, s=190, facecolors="none", edgecolors="black", linewidths=0.8, zorder=4)
            if axis == "tflops" and min(xs) > 0 and max(x for x, _ in everything) / min(xs) > 100:
                ax.set_xscale("log")
        ax.set_title(f"{metric} accuracy", fontsize=11)
        ax.set_xlabel(AXES[axis])
        ax.set_ylabel("accuracy [%]")
        ax.grid(True, alpha=0.3)
    handles["front"] = Line2D([], [], color="black", linestyle="--", marker="o", markerfacecolor="none",
                              markersize=11, label="Pareto front (less cost, more accuracy)")
    handles["source"] = Line2D([], [], color="none", label="filled: runs, open: the paper's printed numbers")
    title = f"{BENCHMARKS[benchmark].title}: accuracy vs {AXES[axis].split(' per')[0]}"
    note = textwrap.fill(title_note, width=int(11 * figure.get_figwidth()))
    figure.suptitle(f"{title}\n{note}" if note else title, fontsize=13)
    figure.legend(handles=list(handles.values()), loc="outside lower center", ncol=2 if len(metrics) == 1 else 3,
                  fontsize=9, frameon=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110, metadata={"Software": None})
    points = []
    for marker, row, metric in drawn:  # what the plot holds, read back from its markers
        (x, y), = marker.get_offsets()
        points.append(Point(row.source, row.model, row.method, row.setting, metric, float(x), float(y)))
    return points, left_out


def write_points(points: list[Point], path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(POINT_COLUMNS)
        writer.writerows([p.source, p.model, p.method, p.setting, p.metric, repr(p.x), repr(p.y)] for p in points)
