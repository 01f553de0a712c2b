"""Runs and the paper's numbers side by side: one table per benchmark, efficiency ratios.

`build_report(runs, paper)` puts run rows (`runs.read_runs`) and the paper's rows of the
selected models together per benchmark, in the order the runs were given, then the paper's.
Tables show the benchmark's headline metrics (`names.BENCHMARKS`); the CSV written by
--out holds every accuracy metric. Columns:
- source (run label, or the paper), runner (lmms-eval --model), model, method (FOCUS, vanilla,
  ZoomEye, ViCrop, ...), setting (the paper's names, `settings.py`), options (those that differ
  between the table's runs of the row's model and method and are not part of the setting, e.g.
  k=20 or zoomeye_bias=0.6: neither a FOCUS option that differs between FOCUS runs on ZoomEye's
  rows, nor the family defaults that differ between models);
- n, accuracy and its 95% Wilson interval (`stats.wilson`; the paper's rows use the full
  benchmark's question count), fp, fp_total, bp (backward passes: ViCrop's grad-att), tflops,
  seconds, failed, recall (V*Bench's ROI recall in percent, `RECALL_NOTE`; a Markdown table has
  the column where one of its rows has a recall) ("n/a" where a run does not report it);
- with the paper: for each run row the paper's number for the same model, method, setting,
  benchmark and metric (for a FOCUS or ZoomEye setting the paper leaves unstated, Tables 2 and
  5, that method's number, marked "*"), its recall where the paper gives one (Table 3), the
  difference run - paper in points, and whether the paper's number lies in the run's interval.
Efficiency (A.2, `Report.efficiency`): each method's points form curves over its search
budget (`_curves`), the runs' apart from the paper's; FOCUS's curve is read against every other
search method's curve of the same model and source, where both answer by the same scheme or
each by its own (`settings.own_scheme`: the paper's own comparison pits FOCUS's generation
against ZoomEye's logits matching on V*Bench).
A paper number printed by several tables is one row listing them; its fp, tflops, seconds and
recall are each taken from the first of those tables that prints one (Table 13's 2.19 s, Table
14's 2.27 s for the same FOCUS run: the first wins).
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass, field

from focus_eval.present.compare import settings
from focus_eval.present.compare.names import BENCHMARKS, METHOD_TITLES
from focus_eval.present.compare.published import published_rows
from focus_eval.present.compare.runs import Row, RunData
from focus_eval.present.compare.stats import Efficiency, efficiency_ratio, wilson

PAPER = "paper"
# FocusConfig fields the setting name already states, or that are the same for every question of a benchmark.
_IN_SETTING = {"method", "n_steps", "overrun", "relevance", "ranking", "layer_start", "layer_end", "answer_scheme",
               "dataset", "zoomeye_depth", "zoomeye_split", "vicrop_map", "vicrop_high"}
# The paper's numbers that are columns of its accuracy rows (of the same table and configuration), not rows.
_ROW_EXTRAS = ("seconds", "tflops", "recall")
_NOT_ACCURACY = ("peak_mem_gb", *_ROW_EXTRAS)
CSV_COLUMNS = ("source", "table", "runner", "model", "method", "setting", "options", "benchmark", "metric", "n",
               "accuracy", "ci_low", "ci_high", "fp", "fp_total", "bp", "tflops", "seconds", "failed", "recall", "paper",
               "paper_recall", "paper_table", "diff", "in_ci")
RECALL_NOTE = ("recall: ROI recall in %, the mean over questions of the share of their GT boxes that an ROI covers "
               "by at least 50 %; ours counts the searched ROIs (given an existence check, or chosen; "
               "focus_eval/recall.py), the paper (Table 3) 'whether one of the proposed ROIs overlaps with the GT "
               "region by at least 50%'")


def paper_rows(models: set[str] | None = None) -> list[Row]:
    """The paper's accuracies as rows (of `models` only, when given), one per distinct number."""
    extras: dict[tuple, dict[str, float]] = defaultdict(dict)
    for row in published_rows():
        if row.metric in _ROW_EXTRAS:
            extras[(row.table, row.model, row.method, row.setting, row.benchmark)][row.metric] = row.number
    merged: dict[tuple, Row] = {}
    tables: dict[tuple, list[str]] = defaultdict(list)
    for row in published_rows():
        if row.metric in _NOT_ACCURACY or (models is not None and row.model not in models):
            continue
        key = (row.model, row.method, row.setting, row.benchmark, row.metric, row.value)
        found = merged.setdefault(key, Row(
            source=PAPER, table="", runner="", model=row.model, method=row.method, setting=row.setting,
            benchmark=row.benchmark, metric=row.metric, value=row.number,
            n=BENCHMARKS[row.benchmark].questions.get(row.metric)))
        tables[key].append(row.table.removeprefix("Table "))
        found.fp = row.fp_number if found.fp is None else found.fp
        extra = extras.get((row.table, row.model, row.method, row.setting, row.benchmark), {})
        for name in _ROW_EXTRAS:
            if getattr(found, name) is None:
                setattr(found, name, extra.get(name))
    for key, row in merged.items():
        row.table = f"Table {', '.join(tables[key])}"
    methods = list(METHOD_TITLES)
    return sorted(merged.values(), key=lambda row: (not row.model, row.model, methods.index(row.method)))


@dataclass
class Match:
    paper: Row
    stated: bool  # False: the paper states no setting for this number


@dataclass
class Series:
    """Points of one method's accuracy-FP curve over its search budget: one source kind (runs
    or the paper), model, method, search variant and answer scheme (`curve_key`)."""

    name: str
    kind: str
    model: str
    method: str
    variant: str  # settings.search_variant: FOCUS's ablations, ViCrop's map; "" for the published search
    scheme: str  # "generate" or "logits"
    own: bool  # the method's own scheme on the benchmark (settings.own_scheme)
    points: list[tuple[float, float]] = field(default_factory=list)


@dataclass
class Ratio:
    benchmark: str
    metric: str
    ours: Series
    reference: Series
    efficiency: Efficiency


@dataclass
class Report:
    rows: list[Row]  # every accuracy row: runs first, then the paper's
    matches: dict[int, Match]  # id(run row) -> the paper's number for it
    notes: list[str]
    with_paper: bool

    def benchmarks(self) -> list[str]:
        present = {row.benchmark for row in self.rows}
        return [key for key in BENCHMARKS if key in present]

    def headline_rows(self, benchmark: str) -> list[Row]:
        headline = BENCHMARKS[benchmark].headline
        rows = [row for row in self.rows if row.benchmark == benchmark and row.metric in headline]
        return sorted(rows, key=lambda row: headline.index(row.metric))

    def options_text(self, benchmark: str) -> dict[int, str]:
        """id(row) -> the options that differ between the benchmark's runs of the row's model and method."""
        groups = defaultdict(list)
        for row in self.rows:
            if row.benchmark == benchmark and row.options:
                groups[(row.model, row.method)].append(row)
        texts = {}
        for runs in groups.values():
            differing = sorted(name for name in set().union(*(row.options for row in runs)) - _IN_SETTING
                               if len({repr(row.options.get(name)) for row in runs}) > 1)
            texts.update({id(row): ", ".join(f"{name}={row.options.get(name)}" for name in differing) for row in runs})
        return texts

    def efficiency(self) -> list[Ratio]:
        """A.2's ratio for every FOCUS curve of the published search against every other search
        method's curve of the same source kind, model, benchmark and headline metric that answers
        by the same scheme (or each by its own, as the paper compares), where the curves overlap."""
        ratios = []
        for benchmark in self.benchmarks():
            for metric in BENCHMARKS[benchmark].headline:
                curves = _curves([r for r in self.rows if r.benchmark == benchmark and r.metric == metric])
                for ours in (c for c in curves if c.method == "focus" and not c.variant):
                    for reference in curves:
                        if ((reference.kind, reference.model) != (ours.kind, ours.model)
                                or reference.method in ("focus", "vanilla", "chance")
                                or not (reference.scheme == ours.scheme or reference.own and ours.own)):
                            continue
                        found = efficiency_ratio(ours.points, reference.points)
                        if found is not None:
                            ratios.append(Ratio(benchmark, metric, ours, reference, found))
        return ratios

    # ---- output -----------------------------------------------------------------------

    def markdown(self) -> str:
        parts = []
        for benchmark in self.benchmarks():
            info = BENCHMARKS[benchmark]
            rows = self.headline_rows(benchmark)
            title = f"## {info.title} ({benchmark})"
            if not rows:
                parts.append(f"{title}\n\nNo {', '.join(info.headline)} accuracy; other metrics in the CSV (--out).")
                continue
            table = self._table(benchmark, rows)
            recall = f"; {RECALL_NOTE}" if _has_recall(rows) else ""
            parts.append(f"{title}\n\naccuracy in %, 95% Wilson interval over n questions; fp: search forward "
                         f"passes per question; bp: backward passes per question (ViCrop's grad-att map, not "
                         f"counted in fp){recall}\n\n{table}")
            others = sorted({r.metric for r in self.rows if r.benchmark == benchmark} - set(info.headline))
            if others:
                parts.append(f"Other metrics ({', '.join(others)}): in {benchmark}.csv (--out).")
        ratios = self.efficiency()
        parts.append("## Efficiency (paper A.2: FP of a reference method over FOCUS at the lower of their top "
                      "accuracies)\n\n" + ("\n".join(_ratio_line(r) for r in ratios) if ratios else
                                            "No FOCUS curve overlaps another search method's curve of the same model."))
        if self.notes:
            parts.append("## Notes\n\n" + "\n".join(f"- {note}" for note in self.notes))
        return "\n\n".join(parts) + "\n"

    def _table(self, benchmark: str, rows: list[Row]) -> str:
        options = self.options_text(benchmark)
        header = ["source", "runner", "model", "method", "setting"]
        if any(options.values()):
            header.append("options")
        if len({row.metric for row in rows}) > 1:
            header.append("metric")
        header += ["n", "accuracy", "95% CI", "fp", "fp_total", "bp", "tflops", "seconds", "failed"]
        if _has_recall(rows):
            header.append("recall")
        if self.with_paper:
            paper_recall = any(m.paper.recall is not None for m in map(self.matches.get, map(id, rows)) if m)
            header += ["paper", *(["paper recall"] if paper_recall else []), "diff", "in CI"]
        lines = [header, ["---"] * len(header)]
        for row in rows:
            cells = dict(self.cells(row), options=options.get(id(row), ""))
            cells["source"] = f"paper ({cells['table']})" if row.source == PAPER else cells["source"]
            cells["95% CI"] = "" if cells["ci_low"] == "" else f"[{cells['ci_low']}, {cells['ci_high']}]"
            cells["in CI"], cells["paper recall"] = cells["in_ci"], cells["paper_recall"]
            lines.append([cells[name].replace("|", "/") for name in header])
        return "\n".join("| " + " | ".join(line) + " |" for line in lines)

    def cells(self, row: Row) -> dict[str, str]:
        """The text of every CSV column for a row."""
        low, high = wilson(row.value, row.n) if row.n else ("", "")
        match = self.matches.get(id(row))
        paper = paper_recall = diff = in_ci = paper_table = ""
        if match is not None:
            paper = _fixed(match.paper.value) + ("" if match.stated else "*")
            paper_recall = _value(match.paper.recall, False)
            paper_table = match.paper.table
            diff = f"{row.value - match.paper.value:+.2f}"
            in_ci = "" if not row.n else ("yes" if low <= match.paper.value <= high else "no")
        runs_only = row.source != PAPER
        return {
            "source": row.source, "table": row.table, "runner": row.runner, "model": row.model,
            "method": METHOD_TITLES.get(row.method, row.method), "setting": row.setting,
            "options": "", "benchmark": row.benchmark, "metric": row.metric,
            "n": "" if row.n is None else str(row.n), "accuracy": _fixed(row.value),
            "ci_low": "" if low == "" else _fixed(low), "ci_high": "" if high == "" else _fixed(high),
            "fp": _value(row.fp, runs_only), "fp_total": _value(row.fp_total, runs_only), "bp": _value(row.bp, runs_only),
            "tflops": _value(row.tflops, runs_only, "{:.4g}"), "seconds": _value(row.seconds, runs_only, "{:.3g}"),
            "failed": _value(row.failed, runs_only, "{:.0f}"), "recall": _value(row.recall, runs_only),
            "paper": paper, "paper_recall": paper_recall, "paper_table": paper_table, "diff": diff, "in_ci": in_ci,
        }

    def csv(self, benchmark: str) -> str:
        """Every accuracy row of the benchmark, all metrics."""
        options = self.options_text(benchmark)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for row in (r for r in self.rows if r.benchmark == benchmark):
            cells = dict(self.cells(row), options=options.get(id(row), ""))
            writer.writerow([cells[name] for name in CSV_COLUMNS])
        return out.getvalue()


def build_report(runs: RunData, paper: list[Row] | None) -> Report:
    """Runs next to the paper's rows (None: without the paper)."""
    notes = [f"not compared: {line}" for line in runs.not_compared] + runs.notes
    matches = {}
    if paper is not None:
        by_key = defaultdict(list)
        for row in paper:
            by_key[row.key].append(row)
        for row in runs.rows:
            found = by_key.get(row.key)
            stated = True
            if not found and row.method in ("focus", "zoomeye"):
                found, stated = by_key.get((row.model, row.method, "", row.benchmark, row.metric)), False
            if found:
                matches[id(row)] = Match(found[0], stated)
    notes += _repeated_runs(runs.rows)
    return Report(rows=[*runs.rows, *(paper or [])], matches=matches, notes=notes, with_paper=bool(paper))


def _repeated_runs(rows: list[Row]) -> list[str]:
    groups = defaultdict(list)
    for row in rows:
        groups[(row.model, row.method, row.setting, repr(sorted(row.options.items())), row.benchmark,
                row.metric)].append(row.source)
    notes = []
    for (model, method, setting, _, benchmark, metric), sources in groups.items():
        if len(sources) > 1 and metric in BENCHMARKS[benchmark].headline:
            what = " ".join(filter(None, [model, METHOD_TITLES.get(method, method), setting]))
            notes.append(f"{len(sources)} runs of {what} on "
                         f"{benchmark} ({metric}) with the same settings, each shown with its source: "
                         + ", ".join(sources))
    return notes


def curve_key(row: Row) -> tuple[str, str, str, str, str]:
    """The curve a row's point lies on: (source kind, model, method, search variant, answer
    scheme); the points of one key differ only in their search budget."""
    return (PAPER if row.source == PAPER else "runs", row.model, row.method,
            settings.search_variant(row.method, row.setting), settings.answer_scheme(row.method, row.setting, row.benchmark))


def _curves(rows: list[Row]) -> list[Series]:
    """Accuracy-FP curves (`curve_key`) of the rows with a positive FP count."""
    curves: dict[tuple, Series] = {}
    for row in rows:
        if row.fp is None or row.fp <= 0:
            continue
        key = curve_key(row)
        kind, model, method, variant, scheme = key
        own = scheme == settings.own_scheme(method, row.benchmark)
        label = "; ".join(filter(None, [variant, "" if own else settings.SCHEME_LABELS[scheme]]))
        name = f"{kind}: {model} {METHOD_TITLES.get(method, method)}" + (f" ({label})" if label else "")
        series = curves.setdefault(key, Series(name, kind, model, method, variant, scheme, own))
        series.points.append((row.fp, row.value))
    return list(curves.values())


def _ratio_line(ratio: Ratio) -> str:
    e = ratio.efficiency
    return (f"- {BENCHMARKS[ratio.benchmark].title} {ratio.metric}: {ratio.ours.name} vs {ratio.reference.name}: "
            f"reference accuracy {e.reference_accuracy:.2f}; FP {e.cost_reference:.2f} / {e.cost_ours:.2f} = "
            f"{e.ratio:.2f}x")


def _has_recall(rows: list[Row]) -> bool:
    return any(row.recall is not None for row in rows)


def _fixed(value: float) -> str:
    return f"{value:.2f}"


def _value(value: float | None, from_run: bool, spec: str = "{:.2f}") -> str:
    """A number; for a run that does not report it "n/a", for the paper "" (not printed)."""
    if value is None:
        return "n/a" if from_run else ""
    return spec.format(value)
