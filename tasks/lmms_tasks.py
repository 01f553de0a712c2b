"""The lmms-eval task classes of focus-eval's tasks, named by `class:` in each task's YAML.

They are kept apart from the benchmarks themselves (prompts, answer rules, metrics: `common.py`
and each `<benchmark>/utils.py`), which import no lmms-eval: the VLMEvalKit models build the
same prompts from them in an environment without lmms-eval.
"""

from __future__ import annotations

from typing import ClassVar

import datasets
from lmms_eval.api.task import ConfigurableTask
from loguru import logger

from focus_eval.tasks.common import Benchmark
from focus_eval.tasks.hrbench.utils import HRBENCH_4K, HRBENCH_8K
from focus_eval.tasks.mme_realworld_lite.utils import MME_REALWORLD_LITE
from focus_eval.tasks.sources import load_split, resolve_source
from focus_eval.tasks.vstar.utils import VSTAR


class FocusTask(ConfigurableTask):
    """An lmms-eval task whose data comes through `focus_eval.tasks.sources`."""

    benchmark: ClassVar[Benchmark]
    answer_scheme: ClassVar[str] = "generate"

    def __init__(self, config: dict) -> None:
        # lmms-eval passes the YAML with its `class` entry, which TaskConfig does not know.
        super().__init__(config={k: v for k, v in config.items() if k != "class"})

    def download(self, dataset_kwargs: dict | None = None) -> None:
        key, split = self.benchmark.key, self.config.test_split
        source = resolve_source(key, self.config.dataset_path, self.config.dataset_name)
        logger.info(f"{self.config.task}: reading {source.describe()} split {split}")
        data = self.benchmark.prepare(load_split(key, source, split), self.answer_scheme)
        self.dataset = datasets.DatasetDict({split: data})
        self.dataset_no_image = datasets.DatasetDict({split: data.remove_columns(self.benchmark.schema.image_column)})


class VStarTask(FocusTask):
    benchmark = VSTAR


class VStarLogitsTask(FocusTask):
    benchmark = VSTAR
    answer_scheme = "logits"


class HRBench4KTask(FocusTask):
    benchmark = HRBENCH_4K


class HRBench8KTask(FocusTask):
    benchmark = HRBENCH_8K


class MMERealWorldLiteTask(FocusTask):
    benchmark = MME_REALWORLD_LITE
