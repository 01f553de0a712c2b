"""Speed and memory of vanilla answering vs FOCUS and the baselines, per model family, stage by stage.

For each family a random-weight checkpoint of the real architecture is written, loaded through
`focus_eval.model_wrappers.load_adapter` and answered through `Pipeline` with
`load_config(family, "vstar", n_steps=n, overrun=False, method=...)`: vanilla, then FOCUS with
n_steps = 1, 4, 8 (overrun off, so the pass count is fixed), then the baselines (`BASELINES`:
ZoomEye at its official depth 5, ViCrop rel-att and grad-att, each with the family's official
settings). Each configuration runs in its own
subprocess (honest peak memory: CUDA's max_memory_allocated, or the process's VmHWM reset per
question, both through `focus_eval.counters.Meter`), answers one warm-up question, then the
median of --repeats questions is reported. Wall time per stage is the pipeline's
Counters.seconds; TFLOPs are the adapters' analytic counts.

Sizes (all dimensions in ARCHITECTURES below):
- 7b: the real 7B dimensions, bf16; for a GPU (`--size 7b --device cuda`). Needs about 16 GB of
  disk and host memory per family for the random checkpoint, written and deleted in turn.
- small: the real token geometry (the real image processors, so the sequence lengths are those
  of the 7B models for the chosen image) with width / 16 and depth / 8: for CPUs.
- tiny: tiny.py's test dimensions with the real image processors (smoke test).

The question is V*Bench-style about a small object in a synthetic high-resolution image. Random
weights cannot write a meaningful reply, so greedy decoding is scripted (`ScriptedReplies`):
the model runs every decoding step as usual and the chosen token is forced to a realistic
reply, so target extraction runs as in real use (the in-context prompt, decoding until the
newline that ends the one-line answer, the reply parsed by focus_eval.targets) and the answer
is one letter and end-of-sequence, as from a real model. The proposals and existence
confidences come from the random weights, and so do the baselines' confidences and attention:
how far ZoomEye's search goes (the number of its passes) is what these random weights make of
it, not what a trained model's would be; a ViCrop map costs the same passes whatever it shows.

FOCUS's fixed-cost speed-ups (issue 18: target extraction's kept prefix cache and prompt-lookup
drafts, target_fast_decoding; the existence checks' token budget, max_batch_tokens) are on in
every FOCUS row; one more row runs the largest n_steps with both off ("plain", as before them),
and the report checks that answers, counters (time, memory and model calls aside), maps, ROIs,
confidences (to 1e-5) and crops are the same, and gives target extraction's model calls and
tokens per question (after the first, which builds the prefix cache: the warm-up).

Usage:
  python benchmarks/adapters.py --size 7b --device cuda    # GPU, real size
  python benchmarks/adapters.py --size small               # CPU, reduced size (benchmarks/README.md)
  python benchmarks/adapters.py --baselines                  # FOCUS and vanilla only (no baseline rows)
"""

from __future__ import annotations

import argparse
import gc
import inspect
import json
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw
from transformers import LogitsProcessor, LogitsProcessorList
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
from transformers.utils.logging import disable_progress_bar

from focus_eval.config import load_config
from focus_eval.counters import Meter
from focus_eval.model_wrappers import load_adapter
from focus_eval.model_wrappers.tiny import TEXT, VISION, tiny_parts, with_dimensions
from focus_eval.pipeline import Pipeline

FAMILIES = ("llava_1_5", "llava_onevision", "qwen2_5_vl")
SIZES = ("7b", "small", "tiny")
# The baselines measured beside FOCUS (--baselines): name -> (label, model arguments); every other
# option is the family's official setting (configs/<family>.yaml).
BASELINES = {
    "zoomeye": ("ZoomEye Depth-5 (4 crops)", {"method": "zoomeye"}),
    "vicrop-rel": ("ViCrop rel-att", {"method": "vicrop", "vicrop_map": "rel_att"}),
    "vicrop-grad": ("ViCrop grad-att", {"method": "vicrop", "vicrop_map": "grad_att"}),
}
STEPS = (1, 4, 8)
TIME_TARGET, MEMORY_TARGET = 3.0, 1.15  # FOCUS at n_steps = 8 over vanilla (the targets)
# issue 18: target extraction per question once the prefix cache is built
TARGET_CALLS, TARGET_PREFILL = 12, 100

# Real architectures, random weights. Sources (the checkpoints' config.json):
# - llava_1_5: llava-hf/llava-1.5-7b-hf = Llama-2-7B (4096 wide, 32 layers, 32 heads, no GQA,
#   MLP 11008, vocab 32064) + CLIP ViT-L/14-336 (1024 wide, 24 layers, 16 heads, MLP 4096).
# - llava_onevision: llava-hf/llava-onevision-qwen2-7b-ov-hf = Qwen2-7B (3584 wide, 28 layers,
#   28 heads, 4 kv heads, MLP 18944, vocab 152064, rope theta 1e6) + SigLIP so400m-patch14-384
#   (1152 wide, 26 layers as OneVision uses it, 16 heads, MLP 4304, no pooling head); the real
#   anyres pinpoints (384 x {1..6} squared) and anyres_max_9 come from tiny.py's processor at 384.
# - qwen2_5_vl: Qwen/Qwen2.5-VL-7B-Instruct = Qwen2.5-7B text (as Qwen2-7B, mRoPE sections
#   16/24/24) + its ViT (1280 wide, 32 blocks, 16 heads, gated MLP 3420, windows of 112 px, full
#   attention in blocks 7, 15, 23, 31, merger to 3584); processor min/max pixels 3136 / 12845056.
# small: width / 16, depth / 8, the same token geometry.
ARCHITECTURES: dict[str, dict[str, dict[str, Any]]] = {
    "7b": {
        "llava_1_5": dict(
            text=dict(vocab_size=32064, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                      num_attention_heads=32, num_key_value_heads=32, head_dim=128, max_position_embeddings=4096,
                      rms_norm_eps=1e-5),
            vision=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                        projection_dim=768),
            image_size=336),
        "llava_onevision": dict(
            text=dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                      num_attention_heads=28, num_key_value_heads=4, head_dim=128, max_position_embeddings=32768,
                      rope_parameters={"rope_type": "default", "rope_theta": 1e6}),
            vision=dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=26, num_attention_heads=16,
                        vision_use_head=False),
            image_size=384),
        "qwen2_5_vl": dict(
            text=dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                      num_attention_heads=28, num_key_value_heads=4, head_dim=128, max_position_embeddings=128000,
                      rope_parameters={"rope_type": "default", "type": "mrope", "mrope_section": [16, 24, 24],
                                       "rope_theta": 1e6}),
            vision=dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=3584,
                        window_size=112, fullatt_block_indexes=[7, 15, 23, 31]),
            pixels=(3136, 12845056)),
    },
    "small": {  # width / 16 (heads of 32-64), depth / 8
        "llava_1_5": dict(
            text=dict(vocab_size=2004, hidden_size=256, intermediate_size=688, num_hidden_layers=4,
                      num_attention_heads=4, num_key_value_heads=4, head_dim=64, max_position_embeddings=4096,
                      rms_norm_eps=1e-5),
            vision=dict(hidden_size=64, intermediate_size=256, num_hidden_layers=3, num_attention_heads=2,
                        projection_dim=48),
            image_size=336),
        "llava_onevision": dict(
            text=dict(vocab_size=9504, hidden_size=224, intermediate_size=1184, num_hidden_layers=4,
                      num_attention_heads=7, num_key_value_heads=1, head_dim=32, max_position_embeddings=32768,
                      rope_parameters={"rope_type": "default", "rope_theta": 1e6}),
            vision=dict(hidden_size=72, intermediate_size=269, num_hidden_layers=3, num_attention_heads=2,
                        vision_use_head=False),
            image_size=384),
        "qwen2_5_vl": dict(
            text=dict(vocab_size=9504, hidden_size=224, intermediate_size=1184, num_hidden_layers=4,
                      num_attention_heads=7, num_key_value_heads=1, head_dim=32, max_position_embeddings=128000,
                      rope_parameters={"rope_type": "default", "type": "mrope", "mrope_section": [4, 6, 6],
                                       "rope_theta": 1e6}),
            vision=dict(depth=4, hidden_size=80, intermediate_size=214, num_heads=2, out_hidden_size=224,
                        window_size=112, fullatt_block_indexes=[3]),
            pixels=(3136, 12845056)),
    },
    "tiny": {  # tiny.py's own dimensions, the real image processors
        "llava_1_5": dict(image_size=336),
        "llava_onevision": dict(image_size=384),
        "qwen2_5_vl": dict(pixels=(3136, 12845056)),
    },
}
FAMILY_NAMES = {"llava_1_5": "LLaVA-1.5-7B", "llava_onevision": "LLaVA-OneVision-7B", "qwen2_5_vl": "Qwen2.5-VL-7B"}
DEFAULT_DTYPE = {"7b": "bfloat16", "small": "float32", "tiny": "float32"}

# V*Bench style: one small object, the lmms-eval vstar_bench prompt format.
PROMPT = ("What is the color of the flag? (A) red (B) blue (C) green (D) white\n"
          "Answer with the option's letter from the given choices directly.")
# What a real model writes: the in-context answer format of focus_eval.targets (one line), and a letter.
TARGET_REPLY = "I need the color of the flag. So I need the information about the following objects: flag.\n"
ANSWER_REPLY = "A"


# ---------------------------------------------------------------------------------------------
# checkpoints


def model_parts(family: str, size: str) -> tuple[type, Any, Any]:
    """(model class, config, processor) of `family` at `size` (ARCHITECTURES): tiny.py's
    tokenizer, chat template and processor, the architecture's dimensions."""
    spec = ARCHITECTURES[size][family]
    model_class, config, processor = tiny_parts(family, image_size=spec.get("image_size", 56))
    config = with_dimensions(config, spec.get("text"), spec.get("vision"))
    if "pixels" in spec:
        min_pixels, max_pixels = spec["pixels"]
        image_processor = processor.image_processor
        processor.image_processor = Qwen2VLImageProcessorPil(
            min_pixels=min_pixels, max_pixels=max_pixels, patch_size=image_processor.patch_size,
            merge_size=image_processor.merge_size, temporal_patch_size=image_processor.temporal_patch_size)
    return model_class, config, processor


def build_checkpoint(family: str, size: str, path: Path, dtype: torch.dtype, device: str, seed: int = 0) -> Path:
    """Write a random checkpoint of `family` at `size` to `path` (weights created on `device`)."""
    model_class, config, processor = model_parts(family, size)
    with torch.random.fork_rng(devices=[]), torch.device(device):
        torch.manual_seed(seed)
        model = model_class._from_config(config, dtype=dtype)
    model.generation_config.pad_token_id = processor.tokenizer.pad_token_id
    model.generation_config.eos_token_id = processor.tokenizer.eos_token_id
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    del model
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()  # the workers need the GPU memory
    return path


def describe(family: str, size: str) -> str:
    spec = ARCHITECTURES[size][family]
    text, vision = {**TEXT, **spec.get("text", {})}, {**VISION, **spec.get("vision", {})}
    depth = vision.get("depth", vision.get("num_hidden_layers", 2))
    return (f"text {text['hidden_size']} wide x {text['num_hidden_layers']} layers, "
            f"vision {vision['hidden_size']} wide x {depth} layers")


# ---------------------------------------------------------------------------------------------
# the question


def synthetic_image(width: int, height: int) -> Image.Image:
    """A textured high-resolution scene (sky, ground, blocks) with a small red flag on a pole."""
    rng = np.random.default_rng(0)
    rows = np.linspace(0.0, 1.0, height)[:, None, None]
    sky, ground = np.array([135, 180, 230]), np.array([90, 120, 70])
    horizon = 0.55
    base = np.where(rows < horizon, sky, ground) * (0.85 + 0.15 * rows)
    pixels = np.clip(base + rng.normal(0, 12, (height, width, 3)), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    for _ in range(40):  # buildings and clutter
        x, w = rng.integers(0, width), rng.integers(width // 40, width // 10)
        h = rng.integers(height // 20, height // 4)
        top = int(horizon * height) - h
        draw.rectangle([x, top, x + w, int(horizon * height)], fill=tuple(int(c) for c in rng.integers(60, 200, 3)))
    # the flag: about 1.5% of the image width, right of centre
    pole_x, pole_top = int(0.68 * width), int(0.42 * height)
    flag_w, flag_h = max(6, width // 64), max(4, width // 96)
    draw.rectangle([pole_x, pole_top, pole_x + max(1, width // 800), int(horizon * height)], fill=(60, 60, 60))
    draw.rectangle([pole_x, pole_top, pole_x + flag_w, pole_top + flag_h], fill=(220, 30, 30))
    return image


class ScriptedReplies(LogitsProcessor):
    """Greedy decoding writes `token_ids` (then keeps repeating the last one): every decoding
    step still runs the model; only the argmax is fixed."""

    def __init__(self, token_ids: list[int], prompt_length: int):
        self.token_ids = token_ids
        self.prompt_length = prompt_length

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        step = min(input_ids.shape[1] - self.prompt_length, len(self.token_ids) - 1)
        forced = torch.full_like(scores, -math.inf)
        forced[:, self.token_ids[step]] = 0.0
        return forced


def script_replies(adapter) -> None:
    """Text-only generation (target extraction) writes TARGET_REPLY, generation with images (the
    answer) ANSWER_REPLY and end-of-sequence."""
    generate, tokenizer = adapter.model.generate, adapter.tokenizer

    def scripted_generate(**kwargs):
        reply = TARGET_REPLY if "pixel_values" not in kwargs else ANSWER_REPLY
        token_ids = tokenizer(reply, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        processor = ScriptedReplies(token_ids, kwargs["input_ids"].shape[1])
        return generate(**kwargs, logits_processor=LogitsProcessorList([processor]))

    adapter.model.generate = scripted_generate


class LoggedAdapter:
    """Delegates to an adapter and logs every call of its methods that reports a cost (prefill,
    yes_no_logits, generate, option_scores, ViCrop's last_token_attention...): (call, passes,
    tokens, model calls, tokens each model call ran, peak memory GB during the call). The peak of
    each call is measured from a reset at its start (the question's peak is then the largest of
    them and of what the pipeline's meter reads after the last reset: `Session.ask`)."""

    def __init__(self, adapter):
        self._adapter = adapter
        self.calls: list[tuple[str, int, int, int, list[int], float]] = []
        self.model_calls: list[int] = []  # tokens of every model forward (rows x sequence)
        adapter.model.register_forward_pre_hook(self._count, with_kwargs=True)

    def _count(self, module, args, kwargs) -> None:
        self.model_calls.append(int(kwargs["input_ids"].numel()))

    def __getattr__(self, name: str):
        found = getattr(self._adapter, name)
        if not inspect.ismethod(found):  # the model, the tokenizer, the device...
            return found

        def logged(*args, **kwargs):
            before, meter = len(self.model_calls), Meter(self._adapter.device)
            result = found(*args, **kwargs)
            cost = getattr(result, "cost", None)
            if cost is not None:
                ran = self.model_calls[before:]
                self.calls.append((name, cost.passes, cost.tokens, len(ran), ran, meter.finish().peak_mem_gb))
            return result
        return logged


# ---------------------------------------------------------------------------------------------
# one configuration (runs in its own process)


@dataclass(frozen=True)
class Run:
    family: str
    method: str  # "vanilla", "focus" or a BASELINES key
    n_steps: int  # FOCUS's budget; ignored by the others
    plain: bool = False  # FOCUS without issue 18's speed-ups (target_fast_decoding, max_batch_tokens)

    @property
    def label(self) -> str:
        if self.method in BASELINES:
            return BASELINES[self.method][0]
        label = "vanilla" if self.method == "vanilla" else f"FOCUS n={self.n_steps}"
        return label + (" plain" if self.plain else "")

    @property
    def options(self) -> dict[str, Any]:
        """The model arguments of this configuration beyond the family's defaults."""
        if self.method in BASELINES:
            return dict(BASELINES[self.method][1])
        return {"method": self.method, "n_steps": self.n_steps, "overrun": False, "target_fast_decoding": not self.plain}


def current_memory_gb(device: torch.device) -> float:
    """Memory in use now: right after Meter's reset its peak is the current size."""
    return Meter(device).finish().peak_mem_gb


class Session:
    """One configuration's adapter and pipeline, answering the benchmark question on demand."""

    def __init__(self, run: Run, checkpoint: Path, image_size: tuple[int, int], device: str, dtype: str):
        self.adapter = load_adapter(checkpoint, dtype=dtype, device=device, max_batch_tokens=0 if run.plain else None)
        script_replies(self.adapter)
        self.logged = LoggedAdapter(self.adapter)
        config = load_config(run.family, "vstar", **run.options)
        self.pipeline = Pipeline(self.logged, config)
        self.image = synthetic_image(*image_size)

    def ask(self) -> dict:
        self.logged.calls.clear()
        self.logged.model_calls.clear()
        device = self.adapter.device
        idle_gb = current_memory_gb(device)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start, start_cpu = time.perf_counter(), time.process_time()
        result = self.pipeline.answer(self.image, PROMPT)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
        trace = result.trace
        counters = trace.counters.to_dict()
        counters["peak_mem_gb"] = max([counters["peak_mem_gb"], *(call[5] for call in self.logged.calls)])
        # what a speed-up must not change: everything the trace holds but its config, time, memory and model calls
        outcome = {key: value for key, value in trace.to_dict().items() if key not in ("counters", "config")}
        outcome["counters"] = {key: value for key, value in counters.items()
                               if key not in ("seconds", "total_seconds", "peak_mem_gb", "batches")}
        outcome["final_images"] = [image.size for image in result.final_images]
        return dict(wall=wall, cpu=cpu, idle_gb=idle_gb, counters=counters, answer=result.answer,
                    target_source=trace.target_source, targets=[t.name for t in trace.targets],
                    final_layout=trace.final_layout, calls=list(self.logged.calls),
                    model_calls=len(self.logged.model_calls), outcome=outcome)


def serve(run: Run, checkpoint: Path, image_size: tuple[int, int], device: str, dtype: str) -> None:
    """Worker loop: answer one question per "ask" line on stdin, one RESULT line each."""
    session = Session(run, checkpoint, image_size, device, dtype)
    print("READY", flush=True)
    for line in sys.stdin:
        if line.strip() != "ask":
            break
        print("RESULT " + json.dumps(session.ask()), flush=True)


class Worker:
    """A configuration in its own process (so that its peak memory is its own)."""

    def __init__(self, run: Run, checkpoint: Path, image: str, device: str, dtype: str, log: Path):
        self.run, self.log = run, log
        command = [sys.executable, __file__, "--worker", json.dumps(run.__dict__), "--checkpoint", str(checkpoint),
                   "--image", image, "--device", device, "--dtype", dtype, "--threads", str(torch.get_num_threads())]
        with log.open("w") as stderr:
            self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
                                            text=True)

    def wait_ready(self) -> None:
        self._read("READY")

    def ask(self) -> dict:
        self.process.stdin.write("ask\n")
        self.process.stdin.flush()
        return json.loads(self._read("RESULT "))

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait()

    def _read(self, tag: str) -> str:
        for line in self.process.stdout:
            if line.startswith(tag):
                return line[len(tag):]
        self.process.wait()
        raise RuntimeError(f"{self.run.label} of {self.run.family} exited with {self.process.returncode}:\n"
                           + self.log.read_text()[-4000:])


def measure_family(runs: list[Run], checkpoint: Path, args: argparse.Namespace, logs: Path) -> list[list[dict]]:
    """Questions per configuration: warm-up first. Interleaved: all workers live, one question
    each in turn (load changes on a shared machine hit every configuration alike)."""
    questions = args.warmup + args.repeats

    def start(run: Run) -> Worker:
        return Worker(run, checkpoint, args.image, args.device, args.dtype,
                      logs / f"{run.family}-{run.label.replace(' ', '_').replace('=', '')}.log")
    if not args.interleave:
        results = []
        for run in runs:
            worker = start(run)
            try:
                worker.wait_ready()
                results.append([worker.ask() for _ in range(questions)])
            finally:
                worker.close()
        return results
    workers = [start(run) for run in runs]
    try:
        for worker in workers:
            worker.wait_ready()
        results = [[] for _ in runs]
        for _ in range(questions):
            for answers, worker in zip(results, workers):
                answers.append(worker.ask())
        return results
    finally:
        for worker in workers:
            worker.close()


# ---------------------------------------------------------------------------------------------
# report


def summarize(run: Run, questions: list[dict], warmup: int) -> dict:
    """Medians over the timed questions (peak memory: their maximum); calls of the last one;
    target extraction's model calls and tokens of the first question and of the timed ones."""
    timed = questions[warmup:]

    def median(key) -> float:
        return statistics.median(key(q) for q in timed)

    last = timed[-1]
    calls: dict[str, list[tuple[int, int, int, list[int]]]] = {}
    for name, passes, tokens, model_calls, ran, _ in last["calls"]:
        calls.setdefault(name, []).append((passes, tokens, model_calls, ran))
    return dict(
        run=run, wall=median(lambda q: q["wall"]), cpu=median(lambda q: q["cpu"]),
        spread={key: (min(q[key] for q in timed), max(q[key] for q in timed)) for key in ("wall", "cpu")},
        stages={stage: median(lambda q, s=stage: q["counters"]["seconds"][s]) for stage in last["counters"]["seconds"]},
        fp=last["counters"]["fp"], fp_total=last["counters"]["fp_total"], bp=last["counters"]["bp"],
        tflops=last["counters"]["tflops"],
        model_calls=last["model_calls"], peak=max(q["counters"]["peak_mem_gb"] for q in timed),
        idle=max(q["idle_gb"] for q in timed), answer=last["answer"], source=last["target_source"],
        targets=last["targets"], layout=last["final_layout"], calls=calls,
        target_runs=[target_extraction(q) for q in timed], first_target_run=target_extraction(questions[0]),
        call_peaks=call_peaks(timed), outcomes=[q["outcome"] for q in timed])


def call_peaks(questions: list[dict]) -> dict[str, float]:
    """Peak memory GB of each kind of call, the largest over `questions`: which stage sets the peak."""
    peaks: dict[str, float] = {}
    for question in questions:
        generations, extracted = 0, sum(call[0] == "generate" for call in question["calls"]) == 2
        for name, *_, peak in question["calls"]:
            if name == "generate":
                generations += 1
                kind = "target extraction" if generations == 1 and extracted else "answer"
            else:
                kind = {"prefill": "relevance prefill", "yes_no_logits": "existence checks"}.get(name, name)
            peaks[kind] = max(peaks.get(kind, 0.0), peak)
    return peaks


def target_extraction(question: dict) -> list[int] | None:
    """Tokens of every model forward of target extraction (the first generate call of FOCUS)."""
    generations = [ran for name, _, _, _, ran, _ in question["calls"] if name == "generate"]
    return generations[0] if len(generations) == 2 else None


def same_outcome(a: Any, b: Any, tolerance: float = 1e-5) -> bool:
    """Equal, floats to `tolerance` (confidences from differently batched checks differ in rounding)."""
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and abs(a - b) <= tolerance
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same_outcome(a[k], b[k], tolerance) for k in a)
    if isinstance(a, (list, tuple)):
        return (isinstance(b, (list, tuple)) and len(a) == len(b)
                and all(same_outcome(x, y, tolerance) for x, y in zip(a, b)))
    return a == b


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def token_lines(vanilla: dict, focus: dict) -> list[str]:
    """Where the tokens go: the full-image prompt, existence-check crops, the final answer input."""
    (_, tokens, _, _), = vanilla["calls"]["generate"]
    lines = [f"  tokens: vanilla answer {tokens:,} (full image prompt + reply)"]
    generations = focus["calls"].get("generate", [])
    if len(generations) == 2:
        (_, targets, _, _), (_, answer, _, _) = generations
        lines.append(f"          {focus['run'].label}: target extraction {targets:,} (text-only in-context prompt "
                     f"+ reply), answer {answer:,} ({focus['layout']})")
    for _, tokens, _, _ in focus["calls"].get("prefill", []):
        lines.append(f"          relevance prefill {tokens:,} (full image + existence prompt)")
    for passes, tokens, model_calls, ran in focus["calls"].get("yes_no_logits", []):
        lines.append(f"          existence checks: {passes} crops, {tokens:,} tokens ({tokens / passes:,.0f} per crop) "
                     f"in {model_calls} model call(s) of at most {max(ran):,} tokens with padding")
    return lines


def target_line(focus: dict, plain: dict | None) -> str:
    """Target extraction per question once the prefix cache is built (issue 18's targets)."""
    def numbers(runs: list[list[int]]) -> tuple[float, float, float]:
        return (statistics.median(len(r) for r in runs), statistics.median(r[0] for r in runs),
                statistics.median(sum(r) for r in runs))

    calls, prefill, total = numbers(focus["target_runs"])
    first = focus["first_target_run"]
    line = (f"  target extraction per question after the first, {focus['run'].label}: {calls:g} model calls, "
            f"{prefill:g} prefill tokens, {total:g} tokens run")
    if plain is not None:
        line += " (plain: {:g}, {:g}, {:g})".format(*numbers(plain["target_runs"]))
    return (line + f"; first question {len(first)} calls, {first[0]} + {sum(first) - first[0]} tokens (builds the "
            f"prefix cache); target <= {TARGET_CALLS} calls: {verdict(calls <= TARGET_CALLS)}, <= {TARGET_PREFILL} "
            f"prefill tokens: {verdict(prefill <= TARGET_PREFILL)}")


STAGE_COLUMNS = {"targets": "targets", "relevance": "relev.", "proposals": "propos.", "ranking": "ranking",
                 "search": "search", "answer": "answer"}


def report(rows: list[dict]) -> list[str]:
    """The table of one family: rows[0] is vanilla; the targets are checked on the FOCUS row with
    the largest n_steps, which the plain row (speed-ups off), when there is one, is compared with;
    each baseline row gets a line of its adapter calls."""
    vanilla = rows[0]
    fast = {row["run"].n_steps: row for row in rows[1:] if row["run"].method == "focus" and not row["run"].plain}
    focus = fast[max(fast)]
    plain = next((row for row in rows if row["run"].plain), None)
    baselines = [row for row in rows if row["run"].method in BASELINES]
    lines = [f"  {'configuration':28s} {'wall s':>7s} {'x van':>6s} {'CPU s':>7s} {'x van':>6s} "
             + " ".join(f"{title:>7s}" for title in STAGE_COLUMNS.values())
             + f" {'FP':>4s} {'FP all':>6s} {'BP':>3s} {'calls':>5s} {'TFLOPs':>7s} {'peak GB':>7s} {'x van':>6s} "
               f"{'work GB':>7s}  dominant stage"]
    for row in rows:
        stages = row["stages"]
        dominant = max(stages, key=stages.get)
        share = stages[dominant] / max(sum(stages.values()), 1e-12)
        lines.append(
            f"  {row['run'].label:28s} {row['wall']:7.3f} {row['wall'] / vanilla['wall']:6.2f} {row['cpu']:7.3f} "
            f"{row['cpu'] / vanilla['cpu']:6.2f} "
            + " ".join(f"{stages[s]:7.3f}" for s in STAGE_COLUMNS)
            + f" {row['fp']:4d} {row['fp_total']:6d} {row['bp']:3d} {row['model_calls']:5d} {row['tflops']:7.3f} "
              f"{row['peak']:7.3f} {row['peak'] / vanilla['peak']:6.3f} {row['peak'] - row['idle']:7.3f}  "
              f"{dominant} {share:.0%}")
    time_ratio, memory_ratio = focus["wall"] / vanilla["wall"], focus["peak"] / vanilla["peak"]
    lines.append(f"  target, {focus['run'].label} vs vanilla: wall time < {TIME_TARGET}x: {time_ratio:.2f}x "
                 f"{verdict(time_ratio < TIME_TARGET)}; peak memory <= {MEMORY_TARGET}x: {memory_ratio:.3f}x "
                 f"{verdict(memory_ratio <= MEMORY_TARGET)}")
    lines.append(target_line(focus, plain))
    if plain is not None:
        same = all(same_outcome(outcome, plain["outcomes"][0]) for outcome in focus["outcomes"] + plain["outcomes"])
        plain_time, plain_memory = plain["wall"] / vanilla["wall"], plain["peak"] / vanilla["peak"]
        lines.append(f"  speed-ups on vs off ({focus['run'].label} vs {plain['run'].label}): wall {time_ratio:.2f}x vs "
                     f"{plain_time:.2f}x vanilla ({time_ratio / plain_time - 1:+.1%}), CPU "
                     f"{focus['cpu'] / plain['cpu'] - 1:+.1%}, peak memory {memory_ratio:.3f}x vs {plain_memory:.3f}x "
                     f"vanilla, model calls {focus['model_calls']} vs {plain['model_calls']}; answers, counters (model "
                     f"calls aside), maps, ROIs, confidences and crops {'identical' if same else 'DIFFERENT'}")
    lines.append("  peak GB by call (largest over the timed questions): " + "; ".join(
        f"{row['run'].label} " + ", ".join(f"{kind} {peak:.3f}" for kind, peak in row["call_peaks"].items())
        for row in (vanilla, focus, *([plain] if plain else []), *baselines)))
    for key in ("wall", "cpu"):
        lines.append(f"  {key} spread (min-max): " + ", ".join(
            f"{row['run'].label} {row['spread'][key][0]:.3f}-{row['spread'][key][1]:.3f}" for row in rows))
    lines.extend(token_lines(vanilla, focus))
    for row in baselines:
        calls = ", ".join(f"{name} {len(made)} x / {sum(passes for passes, *_ in made)} passes / "
                          f"{sum(tokens for _, tokens, *_ in made):,} tokens" for name, made in row["calls"].items())
        lines.append(f"  {row['run'].label}: {calls} ({row['layout']}, answer {row['answer']!r})")
    lines.append(f"  replies: {focus['run'].label} targets {focus['targets']} ({focus['source']}), "
                 f"answer {focus['answer']!r}; vanilla answer {vanilla['answer']!r}")
    return lines


# ---------------------------------------------------------------------------------------------
# driver


def parse_image(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--image {text!r}: expected WIDTHxHEIGHT, e.g. 2048x1536") from None
    if width < 64 or height < 64:
        raise ValueError(f"--image {text!r}: at least 64x64")
    return width, height


def main(argv: list[str] | None = None) -> list[str]:
    """Run the benchmark; returns the printed lines."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=SIZES, default="small")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--dtype", choices=("bfloat16", "float16", "float32"),
                        help="default: bfloat16 for 7b, float32 otherwise")
    parser.add_argument("--families", nargs="+", choices=FAMILIES, default=list(FAMILIES))
    parser.add_argument("--steps", nargs="+", type=int, default=list(STEPS), help="FOCUS n_steps values")
    parser.add_argument("--image", default="2048x1536", help="synthetic image WIDTHxHEIGHT")
    parser.add_argument("--threads", type=int, help="torch threads per configuration (default: torch's)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--plain", action=argparse.BooleanOptionalAction, default=True,
                        help="also run the largest n_steps without issue 18's speed-ups and compare (default on)")
    parser.add_argument("--baselines", nargs="*", choices=list(BASELINES), default=list(BASELINES),
                        help="the baselines measured beside FOCUS (default: all; none with an empty list)")
    parser.add_argument("--interleave", action=argparse.BooleanOptionalAction,
                        help="keep all configurations of a family loaded and ask them in turn (default for small "
                             "and tiny on CPU; otherwise they run one after another, one model in memory at a time)")
    parser.add_argument("--workdir", type=Path, help="where checkpoints are written (default: a temporary folder)")
    parser.add_argument("--json", type=Path, help="also write the raw measurements here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        image_size = parse_image(args.image)
    except ValueError as error:
        parser.error(str(error))
    args.dtype = args.dtype or DEFAULT_DTYPE[args.size]
    cuda = args.device.startswith("cuda")
    if args.interleave is None:  # several 7B models at once do not fit
        args.interleave = not cuda and args.size != "7b"
    if args.repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be >= 1 and --warmup >= 0")
    if any(n < 1 for n in args.steps):
        parser.error("--steps: every n_steps must be >= 1")
    if cuda and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: CUDA is not available here")
    if args.threads is not None:
        if args.threads < 1:
            parser.error("--threads must be >= 1")
        torch.set_num_threads(args.threads)
    if args.worker:
        serve(Run(**json.loads(args.worker)), args.checkpoint, image_size, args.device, args.dtype)
        return []
    disable_progress_bar()

    where = torch.cuda.get_device_name(args.device) if cuda else f"CPU, {torch.get_num_threads()} torch threads"
    lines = [f"FOCUS and the baselines vs vanilla: size {args.size}, {args.dtype}, {where}; synthetic "
             f"{image_size[0]}x{image_size[1]} image with one small flag; load_config(family, 'vstar', n_steps=n, "
             f"overrun=False), the baselines {', '.join(args.baselines) or 'none'} with the family's settings; warm-up "
             f"{args.warmup}, median of {args.repeats}{', configurations interleaved' if args.interleave else ''}"]
    print(lines[0], flush=True)
    raw = {}
    workdir = Path(tempfile.mkdtemp(prefix="focus-bench-", dir=args.workdir))
    try:
        for family in args.families:
            checkpoint = build_checkpoint(family, args.size, workdir / family, getattr(torch, args.dtype),
                                          "cuda" if cuda else "cpu")
            runs = [Run(family, "vanilla", 1), *(Run(family, "focus", n) for n in args.steps),
                    *([Run(family, "focus", max(args.steps), plain=True)] if args.plain else []),
                    *(Run(family, baseline, 1) for baseline in args.baselines)]
            results = measure_family(runs, checkpoint, args, workdir)
            shutil.rmtree(checkpoint)
            raw[family] = {run.label: questions for run, questions in zip(runs, results)}
            rows = [summarize(run, questions, args.warmup) for run, questions in zip(runs, results)]
            block = [f"{family} ({FAMILY_NAMES[family]} architecture; {describe(family, args.size)})", *report(rows)]
            print("\n".join(block), flush=True)
            lines.extend(block)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(raw, indent=1))
    return lines


if __name__ == "__main__":
    main()
