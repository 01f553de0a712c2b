"""VLMEvalKit models that answer with FOCUS: `llava_ov_focus`, `llava_1_5_focus`, `qwen2_5_vl_focus`.

VLMEvalKit has no plug-in mechanism: `focus_eval.model_wrappers.vlmeval_run` puts these
models into its model registry (`vlmeval.config.supported_VLM`) for the run it starts. Each is
a `FocusVLM` (VLMEvalKit's `BaseModel`) built from the model's `FocusModelArgs` (the
lmms-eval models' parser, `parse_vlmeval_model_args`).

How a question is answered:
- VStarBench, HRBench4K, HRBench8K, MME-RealWorld-Lite: `use_custom_prompt` is true, so
  VLMEvalKit hands `build_prompt` the whole row. The row becomes the document of our lmms-eval
  task (`vlmeval_benchmarks.question`): the task's prompt, question, options, defect and
  decoding, and the configuration of that benchmark (Table 7). The message carries them in
  its text item under the key "focus" (VLMEvalKit passes message items through unchanged).
  The image is decoded from the row's own base64 string by `focus_eval.images.load_image`, as
  in lmms-eval, rather than from the PNG copy VLMEvalKit would write (its copy drops the EXIF
  orientation and flattens RGBA differently).
- Any other dataset: VLMEvalKit's own prompt; its one image and its text joined by newlines,
  answered with the family's configuration (no benchmark rules).
- The response is VLMEvalKit's structured record `{"prediction": answer, "extra_records":
  DocRecord JSON}`: the answer goes to VLMEvalKit's scoring, the record (answer, counters,
  error, details) is checkpointed with the answer and becomes the prediction file's counter
  columns (`vlmeval_run`). A failed question (a defective row, an image that does not decode,
  a failure of the model) answers VLMEvalKit's failure text "Failed to obtain answer", which
  its report counts as an inference failure and its matchers read as no option.
- Decoding is greedy; the length limit is the task's (or `max_new_tokens` from the model
  arguments).
- Device: chosen at the first question (VLMEvalKit hides WORLD_SIZE while it builds models):
  under torchrun VLMEvalKit gives each rank its own slice of CUDA_VISIBLE_DEVICES, so a rank
  uses the first visible GPU of its slice (`resolve_device(..., local_rank=0)`); one process:
  `device`, `device_map`, else cuda when available, else cpu.
"""

from __future__ import annotations

import hashlib
import os
from functools import partial
from typing import Any

import torch
from vlmeval.smp import get_logger
from vlmeval.vlm.base import BaseModel

from focus_eval.images import ImageLoadError, load_image
from focus_eval.model_wrappers.model_args import DEFAULT_MAX_NEW_TOKENS, FocusModelArgs, resolve_device
from focus_eval.model_wrappers.vlmeval_benchmarks import VLMEVAL_DATASETS, VLMEvalQuestion, question
from focus_eval.pipeline import Pipeline, PipelineError
from focus_eval.tasks.record import DocRecord
from focus_eval.present.visualize import save_explanation

FAILED = "Failed to obtain answer"  # VLMEvalKit's INFER_FAIL_MSG
logger = get_logger("focus_eval")  # under VLMEvalKit's logger: its console and log file


class FocusVLM(BaseModel):
    """A VLMEvalKit model answering with FOCUS (module docstring), the model `args` name."""

    INTERLEAVE = False

    def __init__(self, args: FocusModelArgs, **vlmeval_kwargs: Any) -> None:
        # vlmeval_kwargs: what VLMEvalKit passes some models by name (use_vllm); nothing for FOCUS
        super().__init__()
        self.args = args
        self.spec = args.spec
        self._pipeline: Pipeline | None = None
        self.device: torch.device | None = None

    def use_custom_prompt(self, dataset: str) -> bool:
        return dataset in VLMEVAL_DATASETS

    def build_prompt(self, line, dataset: str) -> list[dict]:
        asked = question(dataset, line)
        return [dict(type="text", value=asked.task.prompt, focus=asked)]

    def generate_inner(self, message: list[dict], dataset: str | None = None) -> dict[str, str]:
        asked = next((item["focus"] for item in message if "focus" in item), None)
        record = self._answer_row(asked) if asked is not None else self._answer_message(message, dataset)
        return {"prediction": FAILED if record.failed else record.answer, "extra_records": record.to_response()}

    # --- one question ---------------------------------------------------------------------

    def _answer_row(self, asked: VLMEvalQuestion) -> DocRecord:
        task, focus_question = asked.task, asked.task.question
        if focus_question.error:
            return DocRecord.failure(focus_question.error)
        try:
            image = self._one_image(asked.image)
        except ImageLoadError as error:
            return DocRecord.failure(error)
        return self._answer(image, task.prompt, f"{asked.dataset}_{asked.index}", self.args.config(focus_question.dataset),
                            self.args.max_new_tokens or task.max_new_tokens, task.stop,
                            question=focus_question.question, options=focus_question.lettered_options)

    def _answer_message(self, message: list[dict], dataset: str | None) -> DocRecord:
        prompt = "\n".join(item["value"] for item in message if item["type"] == "text")
        try:
            image = self._one_image([item["value"] for item in message if item["type"] == "image"])
        except ImageLoadError as error:
            return DocRecord.failure(error)
        name = f"{dataset}_{hashlib.sha256(prompt.encode()).hexdigest()[:12]}"  # the message has no row index
        return self._answer(image, prompt, name, self.args.config(None),
                            self.args.max_new_tokens or DEFAULT_MAX_NEW_TOKENS, ())

    def _answer(self, image, prompt: str, name: str, config, max_new_tokens: int, stop: tuple[str, ...],
                **question_kwargs: Any) -> DocRecord:
        try:
            result = self.pipeline().answer(image, prompt, max_new_tokens=max_new_tokens,
                                            gen_kwargs={"stop": list(stop)}, config=config, **question_kwargs)
        except PipelineError as error:
            self._save_maps(name, error.trace, image, [])
            return DocRecord.failure(error, error.trace.counters)
        trace = result.trace
        self._save_maps(name, trace, image, result.final_images)
        return DocRecord.success(result.answer, trace.counters, targets=[t.name for t in trace.targets],
                                 final_layout=trace.final_layout, final_boxes=trace.final_boxes)

    @staticmethod
    def _one_image(source: Any):
        sources = source if isinstance(source, list) else [source]
        if len(sources) != 1:
            raise ImageLoadError(f"FOCUS answers about one image, the question has {len(sources)}")
        return load_image(sources[0])

    def _save_maps(self, name: str, trace, image, final_images) -> None:
        """A picture that cannot be written (a full disk) costs a warning, not the run (as in lmms-eval)."""
        if self.args.save_maps is None:
            return
        try:
            save_explanation(trace, image, final_images, self.args.save_maps, name)
        except OSError as error:
            logger.warning(f"{name}: picture and trace not saved in {self.args.save_maps}: {error}")

    # --- the model ------------------------------------------------------------------------

    def pipeline(self) -> Pipeline:
        """The FOCUS pipeline, loading the weights at the first question."""
        if self._pipeline is None:
            args = self.args
            self.device = resolve_device(args.device, args.device_map, int(os.environ.get("WORLD_SIZE", 1)), 0)
            adapter = args.load_adapter(self.device)
            self._pipeline = Pipeline(adapter, args.config(None))
            logger.info(f"{self.spec.model_id}: loaded {self.spec.family} checkpoint {args.pretrained} (dtype "
                        f"{adapter.dtype}, device {adapter.device}, device_map {args.device_map}, attention "
                        f"{args.attn_implementation})")
        return self._pipeline


def model_entry(args: FocusModelArgs) -> partial:
    """The `supported_VLM` entry of the FOCUS model `args` were parsed for."""
    return partial(FocusVLM, args=args)
