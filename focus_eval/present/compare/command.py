"""`focus-eval compare`: runs next to each other and next to the paper.

    focus-eval compare --published [--paper-models MODELS]     # the paper's numbers as CSV
    focus-eval compare RUN [RUN ...] [--published] [--paper-models MODELS] [--out DIR] [--title TEXT]

RUN: an lmms-eval output folder (every `*_results.json` under it) or one results file, of
our FOCUS models (FOCUS or method=vanilla) or of any other lmms-eval model; or a VLMEvalKit
work dir (every run under it) or one run's `focus_summary.json` (`focus-eval vlmeval`) or
`status.json` (any VLMEvalKit model: accuracy only). Prints one
Markdown table per benchmark (report.py), the efficiency ratios of A.2 and notes on whatever
was not compared. --published adds the paper's numbers for the runs' models and benchmarks;
--paper-models (implies --published) chooses the models: `all`, or comma-separated paper names
(e.g. LLaVA-OV-7B; for runs of another checkpoint, such as a tiny test model). --out DIR
writes compare.md (what is printed), <benchmark>.csv (all accuracy metrics), and per
benchmark <benchmark>_fp.png and <benchmark>_tflops.png with <name>.points.csv (plots.py).
--title adds a line to every plot title.

Exit status: 0 everything compared; 1 compared, but something in the runs was not (a task of
no known benchmark, an unknown metric, a dataset VLMEvalKit did not finish, a number that is not
a number, not finite or outside its field's range, a missing question count: runs.py; listed on
stderr and in the notes); 2 bad usage or input, one line on stderr: a RUN without results, an
unreadable or malformed results file, an unknown MODELS name, an --out that is not a writable
folder (checked before any run is read, and nothing is created then).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from focus_eval.outputs import check_writable_dir
from focus_eval.present.compare.names import BENCHMARKS
from focus_eval.present.compare.published import COLUMNS, paper_models, published_rows, published_text
from focus_eval.present.compare.runs import CompareError, read_runs

HELP = "runs next to each other and to the paper: tables, plots, efficiency ratios"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="*", metavar="RUN",
                        help="lmms-eval output folder or results JSON file; VLMEvalKit work dir, focus_summary.json "
                             "or status.json")
    parser.add_argument("--published", action="store_true",
                        help="add the paper's numbers for the runs' models; without RUN: print them as CSV")
    parser.add_argument("--paper-models", metavar="MODELS",
                        help=f"the paper's models to show (implies --published): all, or comma-separated from "
                             f"{', '.join(paper_models())}")
    parser.add_argument("--out", metavar="DIR", help="write compare.md, <benchmark>.csv and the plots here")
    parser.add_argument("--title", default="", help="a line added to every plot title")


def run(args: argparse.Namespace) -> int:
    """The compare command; CompareError for bad input (the caller prints it, exit status 2)."""
    published = args.published or args.paper_models is not None
    if not args.runs:
        if not published:
            raise CompareError("give RUN folders or results files, or --published")
        if args.out:
            raise CompareError("--out needs RUN arguments")
        models = _selected_models(args.paper_models, set())
        if models is None:
            sys.stdout.write(published_text())
        else:
            writer = csv.writer(sys.stdout, lineterminator="\n")
            writer.writerow(COLUMNS)
            writer.writerows([getattr(row, name) for name in COLUMNS] for row in published_rows() if row.model in models)
        return 0

    from focus_eval.present.compare.report import build_report, paper_rows

    if args.out:
        try:
            check_writable_dir(args.out)
        except ValueError as error:
            raise CompareError(f"--out: {error}") from None
    data = read_runs(args.runs)
    if not data.rows:
        raise CompareError("nothing to compare: " + "; ".join(data.not_compared or ["the runs hold no accuracy"]))
    paper = None
    if published:
        run_models = {row.model for row in data.rows}
        models = _selected_models(args.paper_models, run_models)
        benchmarks = {row.benchmark for row in data.rows}
        paper = [row for row in paper_rows(models) if row.benchmark in benchmarks]
        if not paper:
            data.notes.append(f"the paper has no numbers for {', '.join(sorted(models or run_models))} on "
                              f"{', '.join(sorted(benchmarks))}; choose its models with --paper-models "
                              f"({', '.join(paper_models())}, or all)")
    report = build_report(data, paper)
    text = report.markdown()
    print(text, end="")
    if args.out:
        try:
            _write(report, text, Path(args.out), args.title)
        except OSError as error:  # checked writable above; a full disk, say
            raise CompareError(f"--out: cannot write {error.filename or args.out}: {error.strerror or error}") from None
    for line in data.not_compared:
        print(f"focus-eval compare: not compared: {line}", file=sys.stderr)
    return 1 if data.not_compared else 0


def _selected_models(value: str | None, run_models: set[str]) -> set[str] | None:
    """The paper models to show (--paper-models, else the runs' models); None for all."""
    if value is None:
        return (run_models & set(paper_models())) if run_models else None
    if value.strip().lower() == "all":
        return None
    known = {model.lower(): model for model in paper_models()}
    wanted = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in wanted if name.lower() not in known]
    if unknown or not wanted:
        raise CompareError(f"--paper-models: unknown model(s) {', '.join(unknown) or repr(value)}; the paper's models: "
                           f"{', '.join(paper_models())} (or all)")
    return {known[name.lower()] for name in wanted}


def _write(report, markdown: str, out: Path, title_note: str) -> None:
    from focus_eval.present.compare.plots import AXES, draw, write_points, x_value

    out.mkdir(parents=True, exist_ok=True)
    written = []
    notes = []
    for benchmark in report.benchmarks():
        table = out / f"{benchmark}.csv"
        table.write_text(report.csv(benchmark))
        written.append(table)
        if not report.headline_rows(benchmark):
            continue
        for axis in AXES:
            png = out / f"{benchmark}_{axis}.png"
            if not any(x_value(row, axis) is not None for row in report.headline_rows(benchmark)):
                notes.append(f"{png.name}: not drawn, no row has {axis}")
                continue
            points, left_out = draw(report, benchmark, axis, png, title_note)
            write_points(points, png.with_suffix(".points.csv"))
            written.append(png)
            if left_out:
                notes.append(f"{png.name}: {left_out} of {left_out + len(points)} rows have no {axis} and are not drawn")
    if notes:
        markdown += "\n## Plots\n\n" + "\n".join(f"- {note}" for note in notes) + "\n"
    (out / "compare.md").write_text(markdown)
    for note in notes:
        print(f"focus-eval compare: {note}", file=sys.stderr)
    print(f"focus-eval compare: wrote {out / 'compare.md'} and {len(written)} tables and plots in {out} "
          f"({', '.join(BENCHMARKS[b].title for b in report.benchmarks())})", file=sys.stderr)
