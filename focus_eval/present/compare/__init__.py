"""`focus-eval compare`: evaluation runs next to each other and next to the paper's numbers.

- names.py: one vocabulary for benchmarks, metrics, models and methods across frameworks
- settings.py: the paper's setting names <-> FOCUS options
- published.py + published.csv: the paper's Tables 2, 3, 5, 10, 13, 14, 15 as data
- runs.py: reading runs (one `RunReader` per framework: lmms-eval, VLMEvalKit)
- stats.py: Wilson intervals, Pareto fronts, A.2's efficiency ratio
- report.py: the tables; plots.py: the accuracy-vs-cost plots (matplotlib, imported on use)
- command.py: the command; reproduce.py: docs/reproduce.md

Reads files only: imports neither torch nor lmms-eval.
"""
