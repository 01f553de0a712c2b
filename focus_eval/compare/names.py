"""One vocabulary for results from different places: benchmarks, metrics, models, methods.

Every row `focus-eval compare` handles, read from a run or from the paper, is put into these
names:
- benchmark: the FocusConfig dataset keys `vstar`, `hrbench4k`, `hrbench8k`,
  `mme_realworld_lite`. A framework's task or dataset name is looked up in `TASKS` after
  `normalized` (lower case, letters and digits only), so vstar / vstar_bench / VStarBench /
  V*Bench, hrbench4k / HRBench4K / HR-Bench 4K and mme_realworld_lite / mmerealworld_lite /
  MME-RealWorld-Lite are one benchmark each.
- metric: accuracies in percent, named per benchmark (`overall`, V*Bench `attribute` and
  `spatial`, HRBench `fsp` and `fcp`, MME-RealWorld-Lite `perception`, `reasoning` and
  `<subset>_<domain>`); `LMMS_EVAL_METRICS` maps lmms-eval's metric names (ours and the
  built-in tasks' are the same) and their scale. Non-accuracy numbers keep their names:
  recall, seconds, tflops, peak_mem_gb.
- model: the paper's model names (LLaVA-1.5-7B, LLaVA-OV-7B, Qwen-2.5-VL-7B); a checkpoint
  (hub id or local folder) gets one when its id or folder name is one of `PAPER_MODELS`',
  otherwise its folder name.
- method: focus, vanilla, zoomeye, vicrop, dc2, seal, chance (random guess). lmms-eval's own
  models answer from the full image: method vanilla.

A second framework (VLMEvalKit) adds its metric table next to LMMS_EVAL_METRICS; its dataset
names are already aliases in TASKS.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath


@dataclass(frozen=True)
class Benchmark:
    key: str
    title: str
    headline: tuple[str, ...]  # the metrics of the tables, plots and efficiency ratios
    # Questions of the full benchmark per metric (paper Tables 8 and 9; V*Bench's 115 + 76 from
    # its official release): the number behind a published accuracy's interval.
    questions: dict[str, int] = field(default_factory=dict)


BENCHMARKS = {b.key: b for b in (
    Benchmark("vstar", "V*Bench", ("overall",), {"overall": 191, "attribute": 115, "spatial": 76}),
    Benchmark("hrbench4k", "HRBench-4K", ("overall",), {"overall": 800}),
    Benchmark("hrbench8k", "HRBench-8K", ("overall",), {"overall": 800}),
    Benchmark("mme_realworld_lite", "MME-RealWorld-Lite", ("overall", "perception", "reasoning"), {
        "perception": 1169, "reasoning": 750, "perception_ocr": 250, "perception_rs": 150, "perception_dt": 100,
        "perception_mo": 319, "perception_ad": 350, "reasoning_ocr": 100, "reasoning_dt": 100, "reasoning_mo": 150,
        "reasoning_ad": 400}),
)}


@dataclass(frozen=True)
class Task:
    benchmark: str
    answer_scheme: str = "generate"  # vstar_logits: logits matching (C.5)


def normalized(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


# Task and dataset names of lmms-eval (ours and the built-ins), VLMEvalKit and the paper.
TASKS = {normalized(alias): task for aliases, task in (
    (("vstar", "vstar_bench", "VStarBench", "V*Bench", "vstar_bench_direct_attributes",
      "vstar_bench_relative_position"), Task("vstar")),
    (("vstar_logits",), Task("vstar", "logits")),
    (("hrbench4k", "HRBench4K", "HR-Bench 4K"), Task("hrbench4k")),
    (("hrbench8k", "HRBench8K", "HR-Bench 8K"), Task("hrbench8k")),
    (("mme_realworld_lite", "mmerealworld_lite", "MME-RealWorld-Lite"), Task("mme_realworld_lite")),
) for alias in aliases}

_HRBENCH = {"average": ("overall", 100.0), "single": ("fsp", 100.0), "cross": ("fcp", 100.0)}
# lmms-eval metric -> (our metric, factor to percent), per benchmark
LMMS_EVAL_METRICS = {
    "vstar": {"vstar_overall_acc": ("overall", 1.0), "vstar_direct_attributes_acc": ("attribute", 1.0),
              "vstar_relative_position_acc": ("spatial", 1.0)},
    "hrbench4k": _HRBENCH,
    "hrbench8k": _HRBENCH,
    "mme_realworld_lite": {
        "mme_realworld_score": ("overall", 100.0), "perception_avg": ("perception", 100.0),
        "reasoning_avg": ("reasoning", 100.0),
        **{f"{subset}_{domain}": (f"{subset}_{domain}", 100.0)
           for subset, domains in (("perception", ("ocr", "rs", "dt", "mo", "ad")), ("reasoning", ("ocr", "dt", "mo", "ad")))
           for domain in domains}},
}
# Per-question counters of our tasks (means) and the failure count and rate of a run.
COUNTERS = ("fp", "fp_total", "tflops", "seconds", "peak_mem_gb")
FAILURES = ("failed", "failed_rate")

PAPER_MODELS = {
    "LLaVA-1.5-7B": ("llava-hf/llava-1.5-7b-hf", "liuhaotian/llava-v1.5-7b"),
    "LLaVA-OV-7B": ("llava-hf/llava-onevision-qwen2-7b-ov-hf", "lmms-lab/llava-onevision-qwen2-7b-ov"),
    "Qwen-2.5-VL-7B": ("Qwen/Qwen2.5-VL-7B-Instruct",),
}
# lmms-eval model names of our FOCUS models -> model family (the same table as
# focus_eval.model_wrappers.lmms_models.MODEL_SPECS, which imports torch; a test keeps them equal).
FOCUS_MODELS = {"llava_ov_focus": "llava_onevision", "llava_1_5_focus": "llava_1_5", "llava15_focus": "llava_1_5",
                "qwen2_5_vl_focus": "qwen2_5_vl"}
# The paper's model of each family: its default checkpoint (a test checks).
FAMILY_MODELS = {"llava_1_5": "LLaVA-1.5-7B", "llava_onevision": "LLaVA-OV-7B", "qwen2_5_vl": "Qwen-2.5-VL-7B"}

METHOD_TITLES = {"vanilla": "vanilla", "focus": "FOCUS", "zoomeye": "ZoomEye", "vicrop": "ViCrop", "dc2": "DC²",
                 "seal": "SEAL", "chance": "random guess"}


def task_of(name: str) -> Task | None:
    return TASKS.get(normalized(name))


def model_name(checkpoint: str) -> str:
    """The paper's name of a checkpoint (hub id or local folder), else the folder's name."""
    leaf = PurePosixPath(checkpoint.rstrip("/")).name.lower()
    for model, ids in PAPER_MODELS.items():
        if any(checkpoint.lower() == hub_id.lower() or leaf == hub_id.split("/")[-1].lower() for hub_id in ids):
            return model
    return PurePosixPath(checkpoint.rstrip("/")).name or checkpoint


def focus_model_id(model: str) -> str | None:
    """Our lmms-eval model for a paper model name (the first name of its family)."""
    family = next((f for f, m in FAMILY_MODELS.items() if m == model), None)
    return next((name for name, f in FOCUS_MODELS.items() if f == family), None)
