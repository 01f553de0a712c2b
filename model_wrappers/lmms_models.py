"""lmms-eval models that answer with FOCUS: registration, `--model_args`, the model classes.

lmms-eval imports this module through the `lmms_eval.models` entry point declared in
pyproject.toml and calls `manifests()`, which also makes lmms-eval index focus-eval's tasks
(`focus_eval.tasks.discovery`; ours replace built-ins of the same name for these models).

Models: `llava_ov_focus` (LLaVA-OneVision), `llava_1_5_focus` (alias `llava15_focus`),
`qwen2_5_vl_focus`; one class each, all `FocusModel`. Their `--model_args` are checked by
`focus_eval.model_wrappers.model_args.parse_model_args` (shared with the VLMEvalKit models)
before any weights are loaded; an unknown name or a bad value raises ValueError naming it.

How a `FocusModel` answers one `generate_until` request (the contract of
`focus_eval/tasks/record.py`): the document of a focus-eval task gives a `FocusQuestion`; a
defective row or an image that does not decode becomes a failure record without running the
model; otherwise `Pipeline.answer` runs with the configuration of the document's
benchmark and the answer, counters and a few details go back as a `DocRecord`. A document of
any other task is answered from its prompt and first image with the family's configuration
(no benchmark rules), as plain text, which that task's own scoring reads.

Choices made here:
- Decoding is greedy. From lmms-eval's gen_kwargs, `until` becomes the stop strings and
  `max_new_tokens` (or `max_gen_toks`) the length limit, 1024 when the task gives none (the
  default of lmms-eval's llava and llava_onevision models). Sampling (do_sample, temperature
  > 0), beam search and unknown keys are ignored with one warning each.
- Weights load at the first request: lmms-eval builds the model before the tasks, and a bad
  dataset must be reported before minutes of loading.
- One question at a time: batch_size > 1 is accepted and ignored with a warning (FOCUS
  batches its own existence checks, `check_batch_size`).
- Device: `focus_eval.model_wrappers.model_args.resolve_device` with lmms-eval's LOCAL_RANK.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from lmms_eval.api.model import lmms
from loguru import logger
from tqdm import tqdm

from focus_eval import __version__
from focus_eval.config import DATASETS, FocusConfig
from focus_eval.images import ImageLoadError
from focus_eval.model_specs import MODEL_SPECS, FocusModelSpec, is_focus_model, model_spec
from focus_eval.model_wrappers.model_args import DEFAULT_MAX_NEW_TOKENS, parse_model_args, positive_int, resolve_device
from focus_eval.pipeline import Pipeline, PipelineError
from focus_eval.recall import add_recall
from focus_eval.tasks.record import DocRecord, FocusQuestion
from focus_eval.tasks.schemas import SCHEMAS
from focus_eval.tasks.sources import register_local_dataset
from focus_eval.present.visualize import save_explanation


def manifests():
    """Entry point `lmms_eval.models`: register the tasks, then describe the models."""
    from lmms_eval.models.registry_v2 import ModelManifest

    from focus_eval.tasks.discovery import register_focus_tasks

    register_focus_tasks(is_focus_model)
    return [ModelManifest(model_id=spec.model_id, simple_class_path=f"{__name__}.{spec.class_name}",
                          aliases=spec.aliases) for spec in MODEL_SPECS]


# ---- decoding --------------------------------------------------------------------------


@dataclass(frozen=True)
class Decoding:
    """What FOCUS takes from lmms-eval's gen_kwargs (module docstring)."""

    max_new_tokens: int
    stop: tuple[str, ...]
    ignored: tuple[str, ...]  # settings greedy decoding does not follow, for the warning

    @classmethod
    def from_gen_kwargs(cls, gen_kwargs: dict[str, Any] | None) -> "Decoding":
        kwargs = dict(gen_kwargs or {})
        until = kwargs.pop("until", None)
        stop = (until,) if isinstance(until, str) else tuple(until or ())
        limit, alias = kwargs.pop("max_new_tokens", None), kwargs.pop("max_gen_toks", None)
        limit = alias if limit is None else limit
        max_new_tokens = DEFAULT_MAX_NEW_TOKENS if limit is None else positive_int("gen_kwargs", "max_new_tokens",
                                                                                    limit)
        ignored = []
        do_sample, temperature = kwargs.pop("do_sample", False), kwargs.pop("temperature", 0)
        if do_sample or float(temperature or 0) > 0:
            ignored.append("sampling (do_sample / temperature > 0)")
        if (kwargs.pop("num_beams", 1) or 1) != 1:
            ignored.append("beam search (num_beams > 1)")
        for key in ("top_p", "top_k"):  # no effect on greedy decoding
            kwargs.pop(key, None)
        ignored.extend(f"{key}={value!r}" for key, value in sorted(kwargs.items()))
        return cls(max_new_tokens=max_new_tokens, stop=tuple(s for s in stop if s), ignored=tuple(ignored))


# ---- resume --------------------------------------------------------------------------------


class ResponseStore:
    """Responses of finished questions, so that a restarted run does not recompute them.

    lmms-eval's `--use_cache` does not resume an interrupted run (0.7.3): it calls the model
    once with all uncached requests and stores the responses only when that call returns, under
    a run directory a new run does not read before a finished run has merged it. This store
    does, with `resume_dir=DIR`: every rank appends each response as one JSON line to
    `DIR/responses.rank<r>.jsonl` (flushed and fsynced) and, when it starts, reads every
    `responses.rank*.jsonl` in DIR, so a restart with another number of processes finds them
    too; a line cut short by a kill is skipped (and ended, so the next one is whole). Without a directory it only remembers the
    responses of this run (lmms-eval pads the ranks to equal length with copies of their last
    request, which are then not recomputed).

    A key (`FocusRequest.key`) covers everything the answer depends on, so records of other
    settings in the same directory are never replayed.
    """

    def __init__(self, directory: str | None, rank: int):
        self.responses: dict[str, str] = {}
        self._path = None
        self._write_failed = False
        if directory is None:
            return
        folder = Path(directory).expanduser()
        folder.mkdir(parents=True, exist_ok=True)
        for path in sorted(folder.glob("responses.rank*.jsonl")):
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                    self.responses[entry["key"]] = entry["response"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue
        self._path = folder / f"responses.rank{rank}.jsonl"
        if self._path.exists() and not self._path.read_bytes().endswith(b"\n"):
            with open(self._path, "a", encoding="utf-8") as handle:  # end a line cut short by a kill
                handle.write("\n")

    def get(self, key: str) -> str | None:
        return self.responses.get(key)

    def put(self, key: str, response: str, persist: bool = True) -> None:
        """Remember `response`; write it to the directory unless persist is False. A record
        that cannot be written (a full disk) is a warning: the run goes on, and a restart
        recomputes that question."""
        self.responses[key] = response
        if self._path is None or not persist:
            return
        try:
            with open(self._path, "a", encoding="utf-8") as handle:
                # after a failed write, a new line: the record written partly is skipped when read
                handle.write("\n" * self._write_failed + json.dumps({"key": key, "response": response}) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            self._write_failed = False
        except OSError as error:
            self._write_failed = True
            logger.warning(f"resume_dir: answer not stored in {self._path} (a restart recomputes it): {error}")


# ---- the model classes ---------------------------------------------------------------------


@dataclass(frozen=True)
class FocusRequest:
    """One `generate_until` request, with what the document says about it."""

    context: str
    doc: dict[str, Any]
    doc_to_visual: Any
    doc_id: int
    task: str
    split: str
    question: FocusQuestion | None  # None: a document of another task
    config: FocusConfig  # the document's benchmark configuration and answer scheme
    decoding: Decoding

    def key(self, model_fingerprint: str) -> str:
        """Everything the response depends on (ResponseStore)."""
        payload = {"model": model_fingerprint, "task": self.task, "split": self.split, "doc_id": self.doc_id,
                   "context": self.context, "config": self.config.to_dict(),
                   "decoding": [self.decoding.max_new_tokens, self.decoding.stop]}
        if self.question is not None:
            payload.update(question=[self.question.question, self.question.options, self.question.error,
                                     self.question.gt_boxes],
                           image=_digest(self.doc[SCHEMAS[self.question.dataset].image_column]))
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class FocusModel(lmms):
    """An lmms-eval simple model answering with FOCUS (module docstring); a subclass names its spec."""

    spec: ClassVar[FocusModelSpec]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        self.args = parse_model_args(self.spec.model_id, **kwargs)
        for key, path in self.args.local_datasets.items():
            register_local_dataset(key, path)
        world_size, local_rank = int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))
        self._device = resolve_device(self.args.device, self.args.device_map, world_size, local_rank)
        if world_size > 1 and self.args.device not in (None, str(self._device)):
            logger.info(f"{self.spec.model_id}: device={self.args.device} ignored; rank {local_rank} of "
                        f"{world_size} uses {self._device}")
        if self.args.batch_size > 1:
            logger.warning(f"{self.spec.model_id}: batch_size={self.args.batch_size} ignored; FOCUS answers one "
                           f"question at a time and batches its existence checks (check_batch_size)")
        self._pipeline: Pipeline | None = None  # built at the first request
        self._store: ResponseStore | None = None
        self._warned: set[str] = set()
        self._fingerprint = json.dumps(
            {"focus_eval": __version__, "family": self.spec.family, "pretrained": self.args.pretrained,
             "dtype": self.args.dtype, "attn_implementation": self.args.attn_implementation,
             "processor": self.args.processor_kwargs}, sort_keys=True)

    def __repr__(self) -> str:  # lmms-eval's logs name the model by it
        return f"{type(self).__name__}({self.args.pretrained})"

    @property
    def device(self) -> torch.device:
        return self._device

    # --- lmms-eval's request types ----------------------------------------------------------

    def generate_until(self, requests) -> list[str]:
        if self._store is None:
            self._store = ResponseStore(self.args.resume_dir, self.rank)
        responses, replayed = [], 0
        for instance in tqdm(requests, total=len(requests), disable=self.rank != 0, desc="FOCUS answering"):
            request = self.request(*instance.args)
            key = request.key(self._fingerprint)
            response = self._store.get(key)
            if response is None:
                response, persist = self.answer(request)
                self._store.put(key, response, persist)
            else:
                replayed += 1
            responses.append(response)
        if replayed:
            source = f" in {self.args.resume_dir}" if self.args.resume_dir else ""
            logger.info(f"{self.spec.model_id}: {replayed} of {len(requests)} requests on rank {self.rank} answered "
                        f"from earlier responses{source}")
        return responses

    def loglikelihood(self, requests):
        raise NotImplementedError(
            f"{self.spec.model_id} answers generate_until requests only; loglikelihood requests (tasks with "
            "output_type multiple_choice or loglikelihood) are not supported. Option scoring runs inside the "
            "model instead: use task vstar_logits")

    def generate_until_multi_round(self, requests):
        raise NotImplementedError(
            f"{self.spec.model_id} answers generate_until requests only; generate_until_multi_round requests "
            "(multi-round tasks) are not supported")

    def clean(self) -> None:
        """lmms-eval frees the model after generation (e.g. for a judge); a later request reloads it."""
        self._pipeline = None
        super().clean()

    # --- one request --------------------------------------------------------------------------

    def request(self, context: str, gen_kwargs: dict, doc_to_visual, doc_id: int, task: str,
                split: str) -> FocusRequest:
        doc = self.task_dict[task][split][doc_id]
        question = FocusQuestion.from_doc(doc)
        config = (self.args.config(None) if question is None
                  else self.args.config(question.dataset).replace(answer_scheme=question.answer_scheme))
        return FocusRequest(context=context, doc=doc, doc_to_visual=doc_to_visual, doc_id=doc_id, task=task,
                            split=split, question=question, config=config,
                            decoding=Decoding.from_gen_kwargs(gen_kwargs))

    def answer(self, request: FocusRequest) -> tuple[str, bool]:
        """(response, whether a restart may replay it): a failure of the model itself (out of
        memory, ...) need not repeat, so a restart recomputes it; a defective row is final.

        The response is a DocRecord for focus-eval's tasks, the plain answer for other tasks."""
        question = request.question
        self._warn_once(request.decoding.ignored)
        if question is not None and question.error:
            return DocRecord.failure(question.error).to_response(), True
        try:
            visuals = request.doc_to_visual(request.doc)
            if len(visuals) != 1:
                raise ImageLoadError(f"FOCUS answers about one image, the document has {len(visuals)}")
        except ImageLoadError as error:
            return self._failure(request, error), True
        image = visuals[0]
        try:
            result = self.pipeline().answer(
                image, request.context, question=None if question is None else question.question,
                options=None if question is None else question.lettered_options,
                max_new_tokens=request.decoding.max_new_tokens, gen_kwargs={"stop": list(request.decoding.stop)},
                config=request.config)
        except PipelineError as error:
            recall = _recall(question, error.trace)
            self._save_maps(request, error.trace, image, [])
            return self._failure(request, error, error.trace.counters, recall), False
        recall = _recall(question, result.trace)
        self._save_maps(request, result.trace, image, result.final_images)
        if question is None:
            return result.answer, True
        trace = result.trace
        return DocRecord.success(result.answer, trace.counters, targets=[t.name for t in trace.targets],
                                 final_layout=trace.final_layout, final_boxes=trace.final_boxes,
                                 **recall).to_response(), True

    def pipeline(self) -> Pipeline:
        """The FOCUS pipeline, loading the weights at the first call."""
        if self._pipeline is None:
            args = self.args
            adapter = args.load_adapter(self._device)
            self._pipeline = Pipeline(adapter, args.config(None))
            processor = "".join(f", {k}={v}" for k, v in args.processor_kwargs.items())
            logger.info(f"{self.spec.model_id}: loaded {self.spec.family} checkpoint {args.pretrained} (dtype "
                        f"{adapter.dtype}, device {adapter.device}, device_map {args.device_map}, attention "
                        f"{args.attn_implementation}{processor}); FOCUS config {self._describe_configs()}")
        return self._pipeline

    # --- helpers ------------------------------------------------------------------------------

    def _failure(self, request: FocusRequest, error: Exception, counters=None, details: dict | None = None) -> str:
        if request.question is not None:
            return DocRecord.failure(error, counters, **(details or {})).to_response()
        logger.error(f"{request.task} doc {request.doc_id} failed and answers nothing: {error}")
        return ""

    def _save_maps(self, request: FocusRequest, trace, image, final_images) -> None:
        """A picture that cannot be written (a full disk) costs a warning, not the run."""
        if self.args.save_maps is None:
            return
        try:
            save_explanation(trace, image, final_images, self.args.save_maps, f"{request.task}_{request.doc_id}")
        except OSError as error:
            logger.warning(f"{request.task} doc {request.doc_id}: picture and trace not saved in "
                           f"{self.args.save_maps}: {error}")

    def _warn_once(self, ignored: tuple[str, ...]) -> None:
        for setting in ignored:
            if setting not in self._warned:
                self._warned.add(setting)
                logger.warning(f"{self.spec.model_id}: decoding is greedy; gen_kwargs setting ignored: {setting}")

    def _describe_configs(self) -> str:
        """The resolved configuration of every benchmark in this run: the first in full, the
        others by their differences from it."""
        found = {docs[0]["focus_dataset"] for data in self.task_dict.values() for docs in data.values()
                 if len(docs) and "focus_dataset" in docs[0]}
        configs = [(name, self.args.config(name).to_dict()) for name in sorted(found, key=DATASETS.index) or [None]]
        first_name, first = configs[0]
        parts = [f"{first_name or 'other tasks'}: " + ", ".join(f"{k}={v!r}" for k, v in first.items() if k != "dataset")]
        for name, config in configs[1:]:
            changed = [f"{k}={v!r}" for k, v in config.items() if k != "dataset" and first[k] != v]
            parts.append(f"{name}: as {first_name}" + (f" but {', '.join(changed)}" if changed else ""))
        return "; ".join(parts)


def _recall(question: FocusQuestion | None, trace) -> dict[str, float | None]:
    """The question's ROI recall readings, recorded in the trace too; {} without GT boxes."""
    if question is None or not question.gt_boxes:
        return {}
    return add_recall(trace, question.gt_boxes, question.gt_names)


def _digest(value: Any) -> str:
    """sha256 of an image column's raw value: bytes, a base64 string or an `Image(decode=False)` dict."""
    if isinstance(value, dict):
        value = value.get("bytes") or value.get("path")
    return hashlib.sha256(value if isinstance(value, bytes) else str(value).encode()).hexdigest()


class LlavaOneVisionFocus(FocusModel):
    spec = model_spec("llava_ov_focus")


class Llava15Focus(FocusModel):
    spec = model_spec("llava_1_5_focus")


class Qwen25VLFocus(FocusModel):
    spec = model_spec("qwen2_5_vl_focus")
