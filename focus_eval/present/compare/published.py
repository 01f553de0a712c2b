"""The paper's numbers as data: `published.csv`, shipped in the package, one row per number.

Columns (`COLUMNS`, the CSV header): source (`focus-paper`: Zhong, Rosenthal et al., NeurIPS
2025), table ("Table 10"), model, method, setting, benchmark, metric, value, fp, in the
vocabulary of `focus_eval.present.compare.names` and `focus_eval.present.compare.settings`. `value` is the
number as the paper prints it ("46.5", "81.60"): accuracy and recall in percent, `seconds`
per question, `tflops` per question, `peak_mem_gb`. `fp` is the FP count of the row's
configuration as the same table prints it ("" where it prints "-" or has no FP column; Table 2
prints one per subset, on the `perception` and `reasoning` rows).

Every accuracy, recall, time, TFLOPs, memory and FP number of Tables 2, 3, 5, 10, 13, 14 and 15
(365 rows). Where a table leaves a row's configuration implicit:
- Table 3: ablations of LLaVA-1.5 with n_steps = 8 and overrun (Sec. 4.3), so its "original
  design choice" is Steps-8 (overrun); "Random guess" is method `chance` with no model.
- Tables 13 and 15 (LLaVA-1.5, V*Bench): FOCUS's 13.28 FPs and ZoomEye's 48.63 are Table 10's
  Steps-8 (overrun) and Depth-5 (4 crops), ZoomEye's default; Table 13's ZoomEye row equals
  Table 15's logits-matching row (C.5: ZoomEye keeps its own scheme on V*Bench), its ViCrop
  row Table 10's rel-att-high.
- Tables 2 and 5 name no FOCUS or ZoomEye setting: "" (the reproduction recipe uses our
  defaults, n_steps = 8 with overrun).
- SEAL runs its own LLaVA-7B-based models (A.1, footnote): model "LLaVA-7B (SEAL)".
tests/test_published.py compares every row with the paper's text.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

COLUMNS = ("source", "table", "model", "method", "setting", "benchmark", "metric", "value", "fp")
DATA_FILE = "published.csv"


@dataclass(frozen=True)
class Published:
    source: str
    table: str
    model: str
    method: str
    setting: str
    benchmark: str
    metric: str
    value: str
    fp: str

    @property
    def number(self) -> float:
        return float(self.value)

    @property
    def fp_number(self) -> float | None:
        return float(self.fp) if self.fp else None


def published_text() -> str:
    return resources.files("focus_eval.present.compare").joinpath(DATA_FILE).read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def published_rows() -> tuple[Published, ...]:
    reader = csv.reader(io.StringIO(published_text()))
    header = tuple(next(reader))
    if header != COLUMNS:
        raise ValueError(f"{DATA_FILE}: header {header} is not {COLUMNS}")
    return tuple(Published(*row) for row in reader)


def paper_models() -> list[str]:
    return sorted({row.model for row in published_rows() if row.model})
