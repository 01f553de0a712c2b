"""One ViCrop map two ways: the official way (the whole model with eager attention and
output_attentions=True, every layer's [heads, seq, seq] weights returned) against ours (sdpa
everywhere, the one-layer probe of model_wrappers/attention_probe.py). Peak memory and time.

For each family a random-weight checkpoint of the real architecture at reduced size
(adapters.py's ARCHITECTURES; `small`: width / 16, depth / 8, the real image processors, so the
sequence is the 7B model's for the image) is written once; every (way, map) then runs in its own
process: load, encode the question's image and prompts, one warm-up map, then --repeats maps.
`work GB` is the peak resident memory during the timed maps (VmHWM, reset after the warm-up,
through focus_eval.counters.Meter; CUDA: max_memory_allocated) minus the memory in use before
them; `seconds` the median time of one map (rel_att: two forward passes; grad_att: one forward
and one backward). `max |diff|`: the largest difference of the official map from ours computed
in the same process (same inputs), relative to the map's largest value. Both ways keep one logit
row (the official code computes the logits of every position, which adds to its memory).

The official grad-att keeps the parameters trainable as loaded and calls autograd.grad on the
returned attention with retain_graph=True, as its llava_methods.py does; ours freezes them.

Usage:
  python benchmarks/vicrop_attention.py --size small --threads 1              # CPU (benchmarks/README.md)
  python benchmarks/vicrop_attention.py --size 7b --device cuda --dtype bfloat16
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers.utils.logging import disable_progress_bar

from adapters import ARCHITECTURES, DEFAULT_DTYPE, FAMILIES, FAMILY_NAMES, build_checkpoint, current_memory_gb, \
    describe, parse_image, synthetic_image
from focus_eval.config import load_config
from focus_eval.counters import Meter
from focus_eval.model_wrappers import load_adapter

WAYS = ("official", "probe")
MAPS = ("rel_att", "grad_att")
QUESTION = "What is the color of the flag? Answer the question using a single word or phrase."
GENERIC = "Write a general description of the image. Answer the question using a single word or phrase."


def official_map(adapter, image, layer: int, vicrop_map: str) -> torch.Tensor:
    """[h * w] map from the whole eager model's output_attentions (official llava_methods.py)."""
    def row(prompt: str, grad: bool) -> torch.Tensor:
        inputs = adapter.encode([adapter.chat_text(prompt, 1)], [image])
        positions, _ = adapter.visual_layout(inputs, image)
        with torch.set_grad_enabled(grad):
            out = adapter.model(**inputs, position_ids=adapter.position_ids(inputs), output_attentions=True,
                                logits_to_keep=1)
        attention = out.attentions[layer]  # [1, heads, seq, seq]
        if grad:
            loss = torch.log_softmax(out.logits[0, -1].float(), dim=-1).max()
            (gradient,) = torch.autograd.grad(loss, attention, retain_graph=True)
            attention = attention * gradient.relu()
        return attention[0, :, -1, positions.to(attention.device)].mean(0).detach().float()

    if vicrop_map == "grad_att":
        return row(QUESTION, True)
    return row(QUESTION, False) / row(GENERIC, False)


def probe_map(adapter, image, layer: int, vicrop_map: str) -> torch.Tensor:
    if vicrop_map == "grad_att":
        return adapter.last_token_attention(image, QUESTION, layer, gradient=True).weights.mean(0)
    question = adapter.last_token_attention(image, QUESTION, layer).weights.mean(0)
    return question / adapter.last_token_attention(image, GENERIC, layer).weights.mean(0)


def worker(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    disable_progress_bar()
    implementation = "eager" if args.way == "official" else "sdpa"
    adapter = load_adapter(args.checkpoint, dtype=args.dtype, device=args.device, attn_implementation=implementation)
    layer = load_config(adapter.family).vicrop_layer_index(adapter.num_layers)
    image = synthetic_image(*parse_image(args.image))
    compute = official_map if args.way == "official" else probe_map
    reference = probe_map(adapter, image, layer, args.vicrop_map) if args.way == "official" else None
    compute(adapter, image, layer, args.vicrop_map)  # warm-up
    idle = current_memory_gb(adapter.device)
    meter, seconds = Meter(adapter.device), []
    for _ in range(args.repeats):
        start = time.perf_counter()
        result = compute(adapter, image, layer, args.vicrop_map)
        if adapter.device.type == "cuda":
            torch.cuda.synchronize(adapter.device)
        seconds.append(time.perf_counter() - start)
    peak = meter.finish().peak_mem_gb
    inputs = adapter.encode([adapter.chat_text(QUESTION, 1)], [image])
    diff = None if reference is None else float((result - reference).abs().max() / reference.abs().max())
    print("RESULT " + json.dumps(dict(seconds=statistics.median(seconds), peak_gb=peak, work_gb=peak - idle,
                                      tokens=int(inputs["input_ids"].shape[1]), layer=layer,
                                      layers=adapter.num_layers, diff=diff)), flush=True)


def run_worker(checkpoint: Path, way: str, vicrop_map: str, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--worker", way, "--vicrop-map", vicrop_map, "--checkpoint", str(checkpoint),
               "--image", args.image, "--device", args.device, "--dtype", args.dtype, "--threads", str(args.threads),
               "--repeats", str(args.repeats)]
    done = subprocess.run(command, capture_output=True, text=True)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"{way} {vicrop_map} exited with {done.returncode}:\n{done.stderr[-4000:]}")


def main(argv: list[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=tuple(ARCHITECTURES), default="small")
    parser.add_argument("--families", nargs="+", choices=FAMILIES, default=list(FAMILIES))
    parser.add_argument("--maps", nargs="+", choices=MAPS, default=list(MAPS))
    parser.add_argument("--image", default="1024x768", help="WIDTHxHEIGHT of the synthetic image")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", choices=WAYS, help=argparse.SUPPRESS)
    parser.add_argument("--vicrop-map", choices=MAPS, help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.dtype = args.dtype or DEFAULT_DTYPE[args.size]
    if args.worker:
        args.way = args.worker
        worker(args)
        return []
    lines = [f"ViCrop map, official (whole model eager, output_attentions) vs probe (sdpa, one layer): size {args.size}, "
             f"{args.dtype}, {args.device}, {args.threads} torch thread(s), {args.image} image, median of {args.repeats}"]
    root = Path(tempfile.mkdtemp(prefix="vicrop-attention-"))
    try:
        for family in args.families:
            checkpoint = build_checkpoint(family, args.size, root / family, getattr(torch, args.dtype), args.device)
            rows = {(way, vicrop_map): run_worker(checkpoint, way, vicrop_map, args)
                    for vicrop_map in args.maps for way in WAYS}
            first = next(iter(rows.values()))
            lines.append(f"{family} ({FAMILY_NAMES[family]} architecture; {describe(family, args.size)}; "
                         f"{first['tokens']} tokens, map layer {first['layer']} of {first['layers']})")
            lines.append(f"  {'map':9} {'way':9} {'seconds':>8} {'work GB':>8} {'peak GB':>8} {'max |diff|':>10}")
            for (way, vicrop_map), row in rows.items():
                diff = "-" if row["diff"] is None else f"{row['diff']:.1e}"
                lines.append(f"  {vicrop_map:9} {way:9} {row['seconds']:8.3f} {row['work_gb']:8.3f} "
                             f"{row['peak_gb']:8.3f} {diff:>10}")
            shutil.rmtree(checkpoint)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print("\n".join(lines))
    return lines


if __name__ == "__main__":
    main()
