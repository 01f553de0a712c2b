"""lmms-eval finds focus-eval's tasks with no --include_path and no environment variable,
and for FOCUS models hrbench4k / hrbench8k resolve to ours (focus_eval/tasks/discovery.py).

These run in fresh interpreters, importing lmms-eval the way its console script does, so
they fail if a future lmms-eval builds its task index before it loads model entry points."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from focus_eval.tasks import tiny_data
from focus_eval.tasks.discovery import TASKS_DIR

LMMS_EVAL = Path(sys.executable).with_name("lmms-eval")
OURS = ("vstar", "vstar_logits", "hrbench4k", "hrbench8k", "mme_realworld_lite")


@pytest.fixture
def env(tmp_path):
    environment = dict(os.environ, HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    environment.pop("LMMS_EVAL_PLUGINS", None)
    return environment


def run(command, env, cwd):
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    return done.stdout + done.stderr


INDEX_SCRIPT = """
import json, sys
import lmms_eval.__main__  # the console script's import, before any TaskManager exists
from lmms_eval.tasks import TaskManager
from focus_eval.tasks.lmms_tasks import FocusTask
from focus_eval.tasks.sources import register_local_dataset

names = sys.argv[3].split(",")
paths = {}
for model in ("llava_ov_focus", "dummy"):
    index = TaskManager("WARNING", model_name=model).task_index
    paths[str(model)] = {name: index.get(name, {}).get("yaml_path") for name in names}
register_local_dataset("hrbench4k", sys.argv[1])
register_local_dataset("hrbench8k", sys.argv[2])
group = TaskManager("WARNING", model_name="llava_ov_focus").load_task_or_group("hrbench")
members = {name: isinstance(task, FocusTask) for tasks in group.values() for name, task in tasks.items()}
print("RESULT" + json.dumps({"paths": paths, "hrbench_group": members}))
"""


def ours(path) -> bool:
    return path is not None and Path(path).parent.parent == TASKS_DIR


def test_task_index_built_after_the_cli_imports_holds_ours(tmp_path, env):
    data = tiny_data.write_tiny_datasets(tmp_path, scale=0.05, keys=("hrbench4k", "hrbench8k"))
    names = ",".join((*OURS, "vstar_bench", "mmerealworld_lite"))
    output = run([sys.executable, "-c", INDEX_SCRIPT, str(data["hrbench4k"]), str(data["hrbench8k"]), names], env,
                 tmp_path)
    paths = json.loads(output.split("RESULT", 1)[1].splitlines()[0])["paths"]
    assert all(ours(paths["llava_ov_focus"][name]) for name in OURS), paths  # a FOCUS model: ours win clashes
    for name in OURS:  # any other model: the built-ins keep their names
        assert ours(paths["dummy"][name]) == (name not in ("hrbench4k", "hrbench8k")), name
        assert ours(paths["dummy"][name]) or "lmms_eval/tasks/hrbench" in paths["dummy"][name]
    for model, index in paths.items():
        assert "lmms_eval/tasks" in index["vstar_bench"] and "lmms_eval/tasks" in index["mmerealworld_lite"]
    result = json.loads(output.split("RESULT", 1)[1].splitlines()[0])
    assert result["hrbench_group"] == {"hrbench4k": True, "hrbench8k": True}  # the built-in group runs ours


def test_console_script_finds_ours_and_names_an_unknown_task_before_building_the_model(tmp_path, env):
    tasks = ",".join((*OURS, "no_such_task"))
    output = run([str(LMMS_EVAL), "--model", "llava_ov_focus", "--tasks", tasks], env, tmp_path)
    assert "Tasks not found: no_such_task." in output  # and only that one: ours were found
    assert "focus-eval: hrbench4k, hrbench8k use focus-eval's task definitions for llava_ov_focus" in output
    assert "LlavaOneVisionFocus" not in output and "Failed to import model" not in output
