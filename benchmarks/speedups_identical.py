"""Issue 18's speed-ups leave the proving ground's results as they were (its "done when").

On the proving ground's held-out test questions (`scenes.build_questions`, seed 1 and 500 questions
as `python -m focus_eval.proving_ground.evaluate`) with the committed checkpoint, through the Python
API (`Pipeline`), FOCUS at n_steps 4 with the proving ground's options
(configs/proving_ground/llava_1_5.yaml, the README table's FOCUS row) runs twice per question:
- before: target_fast_decoding false, max_batch_tokens 0 (one forward for all checks);
- after: the defaults (prefix cache and prompt-lookup drafts; checks within one image's tokens).
It compares everything the trace holds (answers, targets, maps, ROIs, order, chosen ROIs, final
boxes, the paper's FP counts, FLOPs) but time, memory, model calls and the config; confidences to
1e-5. The proving ground's options extract targets with the rules (its language model cannot follow
the in-context prompt), so the in-context extraction is compared apart: each question's
`icl_prompt` decoded plainly and with the prefix cache and drafts (text, `truncated`, cost).

    python benchmarks/speedups_identical.py [--questions 500] [--seed 1] [--checkpoint DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import sys
import time
from pathlib import Path

import torch
from PIL import Image

from focus_eval.config import load_config
from focus_eval.methods.base import TARGET_DRAFT_TOKENS
from focus_eval.model_wrappers import load_adapter
from focus_eval.pipeline import Pipeline
from focus_eval.proving_ground import evaluate, scenes
from focus_eval.proving_ground.train import vstar_prompt
from focus_eval.targets import icl_prefix, icl_prompt

CHECKPOINT = Path(__file__).resolve().parents[1] / "proving_ground" / "checkpoint"


def same_outcome():
    """benchmarks/adapters.py's comparison (floats to a tolerance, the rest exactly)."""
    spec = importlib.util.spec_from_file_location("benchmark_adapters", Path(__file__).with_name("adapters.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.same_outcome


def outcome(result) -> dict:
    trace = {key: value for key, value in result.trace.to_dict().items() if key != "config"}
    trace["counters"] = {key: value for key, value in trace["counters"].items()
                         if key not in ("seconds", "total_seconds", "peak_mem_gb", "batches")}
    trace["final_images"] = [image.size for image in result.final_images]
    return trace


def main(argv: list[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--checkpoint", type=Path, default=CHECKPOINT)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    compare = same_outcome()
    adapter = load_adapter(args.checkpoint, device="cpu")
    options = {**evaluate.focus_options(), "n_steps": evaluate.MAIN_STEPS}
    configs = {"before": load_config(adapter.family, "vstar", **options, target_fast_decoding=False),
               "after": load_config(adapter.family, "vstar", **options)}
    budgets = {"before": 0, "after": None}
    differ, icl_differ, checks, calls, seconds = [], [], 0, {"before": 0, "after": 0}, {"before": 0.0, "after": 0.0}
    icl_calls = {"before": 0, "after": 0}
    forwards = [0]
    adapter.model.register_forward_pre_hook(lambda module, args_: forwards.__setitem__(0, forwards[0] + 1))
    for index, (_, row) in enumerate(scenes.build_questions(args.questions, args.seed)):
        image, prompt = Image.open(io.BytesIO(row["image"]["bytes"])), vstar_prompt(row["text"])
        results = {}
        for name in ("before", "after"):
            adapter.max_batch_tokens = budgets[name]
            start, forwards[0] = time.perf_counter(), 0
            results[name] = Pipeline(adapter, configs[name]).answer(image, prompt, max_new_tokens=16)
            seconds[name] += time.perf_counter() - start
            calls[name] += forwards[0]
        if not compare(outcome(results["after"]), outcome(results["before"])):
            differ.append(index)
        checks += sum(roi.confidence is not None for target in results["before"].trace.targets for roi in target.rois)
        question, replies = results["before"].trace.question, {}
        for name, fast in (("before", {}), ("after", {"shared_prefix": icl_prefix("vstar"),
                                                       "draft_tokens": TARGET_DRAFT_TOKENS})):
            forwards[0] = 0
            generation = adapter.generate([], icl_prompt(question, "vstar"), configs[name].target_max_new_tokens,
                                          stop=["\n"], **fast)
            replies[name] = (generation.text, generation.truncated, generation.cost)
            icl_calls[name] += forwards[0]
        if replies["before"] != replies["after"]:
            icl_differ.append(index)
    n = args.questions
    lines = [
        f"proving ground, {n} test questions (seed {args.seed}), checkpoint {args.checkpoint.name}, FOCUS n_steps "
        f"{evaluate.MAIN_STEPS} with the proving-ground options, float32 on CPU",
        f"  FOCUS before vs after: {n - len(differ)} of {n} identical (answers, targets, maps, ROIs, order, chosen, "
        f"final boxes, FP counts, FLOPs; {checks} existence confidences to 1e-5); different: {differ or 'none'}",
        f"  model calls per question: {calls['before'] / n:.2f} before, {calls['after'] / n:.2f} after; seconds per "
        f"question {seconds['before'] / n:.3f} before, {seconds['after'] / n:.3f} after",
        f"  in-context target extraction, plain vs prefix cache + drafts: {n - len(icl_differ)} of {n} identical "
        f"(text, truncated, cost); different: {icl_differ or 'none'}; model calls per question "
        f"{icl_calls['before'] / n:.1f} vs {icl_calls['after'] / n:.1f}",
    ]
    print("\n".join(lines))
    return lines


if __name__ == "__main__":
    main()
