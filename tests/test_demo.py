"""`make demo` (python -m focus_eval.present.demo): offline, the proving ground's trained LLaVA-1.5 and
LLaVA-OneVision on their held-out questions (default) or a tiny untrained LLaVA-OneVision on tiny benchmarks in the real
schemas (--untrained); lmms-eval's command line (through `focus-eval lmms-eval`) for FOCUS and
vanilla, the results tables with the counter columns, the README pictures; it says what the model
is."""

import json
import os
import subprocess
import sys

from focus_eval.tasks.record import COUNTER_COLUMNS
from focus_eval.trace import Trace


def summary_rows(stdout: str) -> dict[tuple[str, str], dict[str, str]]:
    """(task, method) -> column -> value from the demo's summary table."""
    lines = stdout.splitlines()
    start = lines.index("| task | method | accuracy | " + " | ".join(COUNTER_COLUMNS) + " | failed |")
    header = [cell.strip() for cell in lines[start].strip("|").split("|")]
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("| "):
            break
        row = dict(zip(header, (cell.strip() for cell in line.strip("|").split("|"))))
        rows[(row["task"], row["method"])] = row
    return rows


def run_demo(tmp_path, *arguments: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HOME=str(tmp_path / "hf"))
    env.pop("LMMS_EVAL_PLUGINS", None)
    return subprocess.run([sys.executable, "-m", "focus_eval.present.demo", "--out", str(tmp_path / "out"), "--docs",
                           str(tmp_path / "docs"), *arguments], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=600)


def test_demo_runs_the_proving_ground_checkpoint_through_lmms_eval(tmp_path):
    done = run_demo(tmp_path, "--limit", "4")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert out.count("trained  |\n| here on CPU on SYNTHETIC V*Bench-like questions only") == 2  # first and last words
    assert "/proving_ground/checkpoint,data_vstar=" in out and "row_normalization=column" in out
    rows = summary_rows(out)
    assert set(rows) == {("vstar", "focus"), ("vstar", "vanilla")}
    focus, vanilla = rows[("vstar", "focus")], rows[("vstar", "vanilla")]
    assert float(focus["fp"]) >= 1 and (float(vanilla["fp"]), float(vanilla["fp_total"])) == (0, 1)
    assert focus["failed"] == vanilla["failed"] == "0"
    for method in ("focus", "vanilla"):
        (results,) = (tmp_path / "out" / "results" / method).rglob("*_results.json")
        assert json.loads(results.read_text())["n-samples"]["vstar"]["effective"] == 4
    assert sorted(path.name for path in (tmp_path / "out" / "maps").glob("*.png")) == [
        f"vstar_{i}.png" for i in range(4)]
    trace = Trace.from_json((tmp_path / "docs" / "demo.json").read_text())
    assert trace.method == "focus" and trace.image_size == [448, 336] and trace.config["row_normalization"] == "column"
    compared = (tmp_path / "out" / "compare" / "vstar.csv").read_text()
    assert ",llava_1_5_focus," in compared and "\npaper," in compared
    # then the OneVision one, as the user's model name, in a folder of its own
    assert out.count("NOT on ZoomEye's or ViCrop's prompts. |") == 2
    assert "/proving_ground/checkpoint_onevision,data_vstar=" in out and "llava_ov_focus" in out
    onevision = tmp_path / "out" / "llava_onevision"
    for method in ("focus", "vanilla"):
        (results,) = (onevision / "results" / method).rglob("*_results.json")
        assert json.loads(results.read_text())["n-samples"]["vstar"]["effective"] == 4
    trace = Trace.from_json((onevision / "docs" / "demo.json").read_text())
    assert trace.image_size == [1344, 1008] and trace.config["downsample"] == 1
    assert ",llava_ov_focus," in (onevision / "compare" / "vstar.csv").read_text()


def test_demo_refuses_other_models_without_untrained(tmp_path):
    done = run_demo(tmp_path, "--model", "qwen2_5_vl_focus")
    assert done.returncode == 2 and "add --untrained for other models or tasks" in done.stderr
    assert not (tmp_path / "out").exists()


def test_untrained_demo_runs_focus_and_vanilla_through_lmms_eval(tmp_path):
    done = run_demo(tmp_path, "--untrained", "--limit", "2")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert out.count("its answers are noise and its ACCURACY MEANS NOTHING") == 2  # first and last words
    assert "|vstar    |none  |     0|fp_total" in out and "|hrbench4k|none  |     0|peak_mem_gb" in out  # lmms-eval's
    rows = summary_rows(out)
    assert set(rows) == {(task, method) for task in ("vstar", "hrbench4k") for method in ("focus", "vanilla")}
    for task in ("vstar", "hrbench4k"):
        focus, vanilla = rows[(task, "focus")], rows[(task, "vanilla")]
        assert all(focus[column] != "N/A" and vanilla[column] != "N/A" for column in COUNTER_COLUMNS)
        assert float(focus["fp"]) >= 1 and float(focus["fp_total"]) >= float(focus["fp"]) + 2
        assert (float(vanilla["fp"]), float(vanilla["fp_total"])) == (0, 1)  # the full image, one answer pass
        assert focus["failed"] == vanilla["failed"] == "0"
    # the launcher with an honest exit status, through this python (no script beside it needed: pip install --user)
    assert f"\n  {sys.executable} -m focus_eval.lmms --config " in out
    for method in ("focus", "vanilla"):  # --limit reached lmms-eval
        (results,) = (tmp_path / "out" / "results" / method).rglob("*_results.json")
        assert json.loads(results.read_text())["n-samples"]["hrbench4k"]["effective"] == 2
    assert sorted(path.name for path in (tmp_path / "out" / "maps").glob("*.png")) == [
        "hrbench4k_0.png", "hrbench4k_1.png", "vstar_0.png", "vstar_1.png"]
    trace = Trace.from_json((tmp_path / "docs" / "demo.json").read_text())
    assert trace.method == "focus" and trace.counters.fp >= 1 and trace.image_size == [2246, 1582]
    assert (tmp_path / "docs" / "demo.png").stat().st_size > 10_000
    # focus-eval compare of the two runs beside the paper's LLaVA-OV-7B numbers; its V*Bench plot for the README
    compared = (tmp_path / "out" / "compare" / "vstar.csv").read_text()
    assert ",llava_ov_focus," in compared and ",FOCUS,Steps-8 (overrun)," in compared and "\npaper,Table 10," in compared
    assert (tmp_path / "docs" / "compare.png").read_bytes() == (tmp_path / "out" / "compare" / "vstar_fp.png").read_bytes()
