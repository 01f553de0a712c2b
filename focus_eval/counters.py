"""Per-question cost accounting: forward passes, FLOPs, wall time per stage, peak memory."""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from focus_eval.protocol import PassCost

# FOCUS's stages, then "search" (a baseline's search that is not split into those, ZoomEye's tree),
# then the final answer. A method books each model call to the stage that makes it.
STAGES = ("targets", "relevance", "proposals", "ranking", "search", "answer")
# Which counter a stage's forward passes go to; the others are the visual search (`fp`).
_PASS_BUCKET = {"targets": "fp_targets", "answer": "fp_answer"}


@dataclass
class Counters:
    """Per-question cost record.

    fp: forward passes of the visual search as the paper reports them (A.2): for FOCUS the
        relevance-map prefills plus existence checks, overrun and type-2 checks included; for
        a baseline every pass of its search (what each counts: focus_eval/methods/__init__.py).
        Target extraction (fp_targets) and the final answer (fp_answer) are excluded: the
        paper's 1.47 FPs at Steps-1 (no overrun) on V*Bench, with about 1.4 targets per
        question, only add up that way.
    bp: backward passes (ViCrop's grad-att map), counted apart from every fp; their FLOPs
        are in `flops` (input gradients only, focus_eval.model_wrappers.flops.attention_backward_flops).
    batches: model calls actually made; a batched existence check is one call, n passes.
    seconds, passes, stage_flops: wall time, forward passes and FLOPs per stage (keys of STAGES),
        so every stage's cost is visible in the record.
    peak_mem_gb: peak accelerator memory (torch.cuda.max_memory_allocated / 1024**3) on
        CUDA, else the process's peak resident memory during the question.
    """

    fp: int = 0
    fp_targets: int = 0
    fp_answer: int = 0
    bp: int = 0
    batches: int = 0
    flops: float = 0.0
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    passes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STAGES, 0))
    stage_flops: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    peak_mem_gb: float = 0.0

    @property
    def fp_total(self) -> int:
        return self.fp + self.fp_targets + self.fp_answer

    @property
    def tflops(self) -> float:
        return self.flops / 1e12

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values())

    def add(self, stage: str, cost: PassCost) -> None:
        bucket = _PASS_BUCKET.get(stage, "fp")
        setattr(self, bucket, getattr(self, bucket) + cost.passes)
        self.bp += cost.backward
        self.batches += cost.batches
        self.flops += cost.flops
        self.passes[stage] += cost.passes
        self.stage_flops[stage] += cost.flops

    def to_dict(self) -> dict:
        out = asdict(self)
        out.update(fp_total=self.fp_total, tflops=self.tflops, total_seconds=self.total_seconds)
        return out


class Meter:
    """Collects one question's counters: `with meter.stage(name):` times a stage and
    `meter.add(cost)` books an adapter call to the stage that is running."""

    def __init__(self, device: torch.device | str | None = None):
        self.counters = Counters()
        self._stage: str | None = None
        self._device = torch.device(device) if device is not None else None
        self._peak = _PeakMemory(self._device)

    @contextmanager
    def stage(self, name: str):
        if name not in STAGES:
            raise ValueError(f"unknown stage {name!r}; stages are {STAGES}")
        outer, self._stage = self._stage, name
        start = time.perf_counter()
        try:
            yield
        finally:
            self.counters.seconds[name] += time.perf_counter() - start
            self._stage = outer

    def add(self, cost: PassCost) -> None:
        if self._stage is None:
            raise RuntimeError("adapter call booked outside a stage")
        self.counters.add(self._stage, cost)

    def finish(self) -> Counters:
        self.counters.peak_mem_gb = self._peak.read_gb()
        return self.counters


class _PeakMemory:
    """Peak memory since construction: CUDA allocator stats, or Linux VmHWM reset via
    /proc/self/clear_refs (value 5 resets the high-water mark)."""

    def __init__(self, device: torch.device | None):
        self._cuda = device is not None and device.type == "cuda" and torch.cuda.is_available()
        if self._cuda:
            torch.cuda.reset_peak_memory_stats(device)
            self._device = device
        else:
            _reset_rss_high_water_mark()

    def read_gb(self) -> float:
        if self._cuda:
            return torch.cuda.max_memory_allocated(self._device) / 1024**3
        return _rss_high_water_mark_bytes() / 1024**3


def _reset_rss_high_water_mark() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:  # not Linux: the peak then covers the whole process lifetime
        pass


def _rss_high_water_mark_bytes() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
