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
  recall (V*Bench's ROI recall in percent; our tasks' `roi_recall`, a fraction), seconds,
  tflops, peak_mem_gb.
- model: the paper's model names (LLaVA-1.5-7B, LLaVA-OV-7B, Qwen-2.5-VL-7B); a checkpoint
  (hub id or local folder) gets one when its id or folder name is one of `PAPER_MODELS`',
  otherwise its folder name.
- method: focus, vanilla, zoomeye, vicrop, dc2, seal, chance (random guess). lmms-eval's own
  models answer from the full image: method vanilla.

VLMEvalKit's dataset names are aliases in TASKS; its metric names are in VLMEVAL_METRICS, the
numbers it reports beside them that compare leaves out in VLMEVAL_PARTS, the metrics a question
of each `category` counts in in VLMEVAL_CATEGORIES.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from focus_eval.model_specs import DEFAULT_CHECKPOINTS, MODEL_SPECS, is_focus_model, model_spec


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

# MME-RealWorld-Lite's domains (VLMEvalKit's names) per subset; the Lite set has no reasoning question on
# remote sensing.
_MME_DOMAINS = {"ocr": "OCR with Complex Context", "rs": "Remote Sensing", "dt": "Diagram and Table", "mo": "Monitoring",
                "ad": "Autonomous_Driving"}
_MME_SUBSETS = {"perception": ("ocr", "rs", "dt", "mo", "ad"), "reasoning": ("ocr", "dt", "mo", "ad")}
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
        **{f"{subset}_{domain}": (f"{subset}_{domain}", 100.0) for subset, domains in _MME_SUBSETS.items()
           for domain in domains}},
}
# VLMEvalKit's metric names (status.json; all fractions) -> (our metric, factor to percent), per benchmark.
_VLMEVAL_HRBENCH = {f"cycle=Average|type={kind}|accuracy": (metric, 100.0)
                    for kind, metric in (("all", "overall"), ("single", "fsp"), ("cross", "fcp"))}
VLMEVAL_METRICS = {
    "vstar": {"split=none|Overall": ("overall", 100.0), "split=none|direct_attributes": ("attribute", 100.0),
              "split=none|relative_position": ("spatial", 100.0)},
    "hrbench4k": _VLMEVAL_HRBENCH,
    "hrbench8k": _VLMEVAL_HRBENCH,
    "mme_realworld_lite": {
        "Overall": ("overall", 100.0), "Perception|Avg": ("perception", 100.0), "Reasoning|Avg": ("reasoning", 100.0),
        **{f"{subset.title()}|{_MME_DOMAINS[domain]}|Avg": (f"{subset}_{domain}", 100.0)
           for subset, domains in _MME_SUBSETS.items() for domain in domains}},
}
# VLMEvalKit's numbers that are parts of those, left out: HRBench's accuracy per cycle (averaged into
# cycle=Average) and MME-RealWorld's per task (averaged into their domain's Avg), and the domain MME-RealWorld-Lite
# has no question of (VLMEvalKit prints 0 for it).
_VLMEVAL_CYCLES = re.compile(r"cycle=cycle_\d+\|type=(all|single|cross)\|accuracy")
VLMEVAL_PARTS = {
    "hrbench4k": _VLMEVAL_CYCLES,
    "hrbench8k": _VLMEVAL_CYCLES,
    "mme_realworld_lite": re.compile(r"(Perception|Reasoning)\|[^|]+\|(?!Avg$)[^|]+|Reasoning\|Remote Sensing\|Avg"),
}
# The metrics a question of a VLMEvalKit `category` counts in, besides overall (its prediction files' column).
_MME_CATEGORIES = {f"{subset.title()}/{_MME_DOMAINS[domain]}": (subset, f"{subset}_{domain}")
                   for subset, domains in _MME_SUBSETS.items() for domain in domains}
_HRBENCH_CATEGORIES = {"single": ("fsp",), "cross": ("fcp",)}
VLMEVAL_CATEGORIES = {
    "vstar": {"direct_attributes": ("attribute",), "relative_position": ("spatial",)},
    "hrbench4k": _HRBENCH_CATEGORIES,
    "hrbench8k": _HRBENCH_CATEGORIES,
    "mme_realworld_lite": _MME_CATEGORIES,
}
# Per-question counters of our tasks (means) and the failure count and rate of a run.
COUNTERS = ("fp", "fp_total", "bp", "tflops", "seconds", "peak_mem_gb")
FAILURES = ("failed", "failed_rate")
# ROI recall of our vstar tasks (focus_eval.recall): mean over the questions with GT boxes, a fraction.
LMMS_EVAL_RECALL = "roi_recall"

PAPER_MODELS = {
    "LLaVA-1.5-7B": ("llava-hf/llava-1.5-7b-hf", "liuhaotian/llava-v1.5-7b"),
    "LLaVA-OV-7B": ("llava-hf/llava-onevision-qwen2-7b-ov-hf", "lmms-lab/llava-onevision-qwen2-7b-ov"),
    "Qwen-2.5-VL-7B": ("Qwen/Qwen2.5-VL-7B-Instruct",),
}

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


# The paper's model of each family: the family's default checkpoint.
FAMILY_MODELS = {family: model_name(checkpoint) for family, checkpoint in DEFAULT_CHECKPOINTS.items()}


def focus_family(runner: str) -> str | None:
    """The model family of one of our FOCUS models (a framework's model name); None for others."""
    return model_spec(runner).family if is_focus_model(runner) else None


def focus_model_id(model: str) -> str | None:
    """Our model for a paper model name (the first of its family)."""
    family = next((f for f, m in FAMILY_MODELS.items() if m == model), None)
    return next((spec.model_id for spec in MODEL_SPECS if spec.family == family), None)
