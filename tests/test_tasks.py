"""Task-level tests: prompts, answer reading, scoring and aggregation against lmms-eval's
built-in tasks, the record channel, dataset sources and the tiny datasets' schemas."""

import json
import random
from pathlib import Path

import datasets
import pandas as pd
import pytest
import yaml

from focus_eval.config import DATASETS
from focus_eval.counters import Counters
from focus_eval.images import ImageLoadError
from focus_eval.protocol import PassCost
from focus_eval.tasks import sources, tiny_data
from focus_eval.tasks.common import accuracy, mean_reported
from focus_eval.tasks.discovery import TASKS_DIR
from focus_eval.tasks.hrbench import utils as hrbench
from focus_eval.tasks.mme_realworld_lite import utils as mme
from focus_eval.tasks.record import COUNTER_COLUMNS, DocRecord, FocusQuestion
from focus_eval.tasks.schemas import SCHEMAS
from focus_eval.tasks.sources import DatasetSourceError
from focus_eval.tasks.vstar import utils as vstar

SCALE = 0.05  # tiny images keep the tests fast; the builder's defaults are Table 8's sizes


@pytest.fixture(autouse=True)
def isolated_datasets(tmp_path_factory, monkeypatch):
    """Datasets' cache in a temporary folder; no local copy registered."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path_factory.getbasetemp() / "hf_datasets"))
    monkeypatch.setattr(sources, "_local_datasets", {})


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """The four tiny datasets, with bad rows, as parquet files."""
    return tiny_data.write_tiny_datasets(tmp_path_factory.mktemp("tiny"), scale=SCALE, bad_rows=True)


def prepared(key, path, answer_scheme="generate"):
    benchmark = {"vstar": vstar.VSTAR, "hrbench4k": hrbench.HRBENCH_4K, "hrbench8k": hrbench.HRBENCH_8K,
                 "mme_realworld_lite": mme.MME_REALWORLD_LITE}[key]
    source = sources.resolve_source(key, str(path))
    return benchmark.prepare(sources.load_split(key, source, "test"), answer_scheme)


def counters(fp=3, targets=1, answer=1, flops=2e12, seconds=0.5, peak=1.25, backward=2) -> Counters:
    c = Counters()
    c.add("relevance", PassCost(passes=fp, batches=1, flops=flops, tokens=10, backward=backward))
    c.add("targets", PassCost(passes=targets, batches=1, flops=0.0, tokens=5))
    c.add("answer", PassCost(passes=answer, batches=1, flops=0.0, tokens=5))
    c.seconds["ranking"] = seconds
    c.peak_mem_gb = peak
    return c


def builtin_kwargs(task_yaml: Path) -> dict:
    """`lmms_eval_specific_kwargs.default` of a built-in task YAML (plus its include)."""
    text = task_yaml.read_text().replace("!function", "")
    config = yaml.safe_load(text)
    if "include" in config:
        config = {**yaml.safe_load((task_yaml.parent / config["include"]).read_text().replace("!function", "")), **config}
    return config.get("lmms_eval_specific_kwargs", {}).get("default", {})


def our_kwargs(name: str) -> dict:
    config = yaml.safe_load(next(TASKS_DIR.rglob(f"{name}.yaml")).read_text().replace("!function", ""))
    return config["lmms_eval_specific_kwargs"]["default"]


# ---- prompts: identical to the built-in tasks on the same documents --------------------------

def test_prompts_equal_builtin_prompts(tiny):
    from lmms_eval.tasks.hrbench import utils as builtin_hrbench
    from lmms_eval.tasks.mme_realworld import utils as builtin_mme
    from lmms_eval.tasks.vstar_bench import utils as builtin_vstar

    builtin_dir = Path(builtin_vstar.__file__).parent.parent
    vstar_kwargs = builtin_kwargs(builtin_dir / "vstar_bench" / "_default_template_yaml")
    assert our_kwargs("vstar") == vstar_kwargs
    compared = 0
    for doc in prepared("vstar", tiny["vstar"]):
        if not doc["focus_error"]:
            assert vstar.doc_to_text(doc, our_kwargs("vstar")) == builtin_vstar.vstar_doc_to_text(doc, vstar_kwargs)
            compared += 1
    for doc in prepared("hrbench4k", tiny["hrbench4k"]):
        ours = hrbench.doc_to_text(doc, our_kwargs("hrbench4k"))
        assert ours == builtin_hrbench.hrbench_doc_to_text(doc)  # the built-in skips a missing option too
        compared += 1
    for doc in prepared("mme_realworld_lite", tiny["mme_realworld_lite"]):
        assert mme.doc_to_text(doc, our_kwargs("mme_realworld_lite")) == builtin_mme.mme_realworld_doc_to_text(doc)
        compared += 1
    assert compared == 5 + 10 + 11  # V*Bench's row with a missing option has no built-in prompt to match


def test_vstar_text_with_options_in_parentheses_and_trailing_instruction():
    text = ("What is the relative position of the bag (the red one) to the man?\n(A) left (of him)\n(B) right\n"
            "Answer with the option's letter from the given choices directly.")
    assert vstar.split_text(text) == ("What is the relative position of the bag (the red one) to the man?",
                                      ["left (of him)", "right"])
    prompt = vstar.doc_to_text({"text": text}, our_kwargs("vstar"))
    assert prompt.count("Answer with the option's letter") == 1
    assert vstar.doc_to_question({"text": text}, our_kwargs("vstar_logits")).endswith("to the man?")
    assert vstar.split_text("no options here") == ("no options here", [])


# ---- answer reading: the built-in rules, without the judge -----------------------------------

RESPONSES = ["A", "B.", "(C)", "D) white", "The answer is B", "Answer: C", "answer: d", "I choose A because",
             "c", "(b)", "the correct option is b.", "Option C", "B and C", "blue", "Blue", "I am not sure",
             "red, I think", "The best answer is E", "", "  D  ", "AB", "It is (A).", "Z", "none of them"]


@pytest.mark.parametrize("response", RESPONSES)
def test_vstar_letters_equal_builtin(response):
    from lmms_eval.tasks.vstar_bench.utils import extract_answer_letter

    assert vstar.parse_vstar_letter(response) == extract_answer_letter(response)


@pytest.mark.parametrize("response", RESPONSES)
def test_hrbench_letters_equal_builtin_local_rules(response):
    from lmms_eval.tasks.hrbench.utils import hrbench_evaluator

    options = ["red", "blue", "green", "white"]
    builtin = hrbench_evaluator.can_infer(response, dict(zip("ABCD", options)))
    ours = hrbench.parse_hrbench_letter(response, options)
    if builtin in (False, "Z"):  # the built-in asks its OpenAI judge (False) or reads "none" (Z)
        assert ours is None
    else:
        assert ours == builtin


@pytest.mark.parametrize("response", RESPONSES)
def test_mme_letters_equal_builtin_except_empty(response):
    from lmms_eval.tasks.mme_realworld.utils import extract_characters_regex

    builtin = extract_characters_regex(response) or None
    if response.strip() == "":
        assert builtin == "A" and mme.parse_mme_letter(response) is None  # documented deviation
    else:
        assert mme.parse_mme_letter(response) == builtin


# ---- scoring and aggregation -----------------------------------------------------------------

def test_vstar_scores_record_with_counters_and_plain_answer(tiny):
    docs = [d for d in prepared("vstar", tiny["vstar"]) if not d["focus_error"]]
    doc = docs[0]
    right, wrong = doc["label"], "D" if doc["label"] != "D" else "A"
    scored = vstar.process_results(doc, [DocRecord.success(f"({right}) yes", counters()).to_response()])
    entry = scored["vstar_overall_acc"]
    assert entry["score"] == 1 and entry["answer"] == right and entry["raw_answer"] == f"({right}) yes"
    assert scored[f"vstar_{doc['category']}_acc"] is entry
    other = "relative_position" if doc["category"] == "direct_attributes" else "direct_attributes"
    assert scored[f"vstar_{other}_acc"] is None  # counted in the other category only
    assert {k: scored[k] for k in COUNTER_COLUMNS} == {"fp": 3.0, "fp_total": 5.0, "bp": 2.0, "tflops": 2.0,
                                                       "seconds": 0.5, "peak_mem_gb": 1.25}
    plain = vstar.process_results(doc, [wrong])  # e.g. lmms-eval's dummy model
    assert plain["vstar_overall_acc"]["score"] == 0
    assert all(plain[k] is None for k in COUNTER_COLUMNS)


def test_vstar_gt_boxes_from_the_annotation_columns(tiny):
    rows = tiny_data.build_rows("vstar", scale=SCALE, bad_rows=True)
    docs = prepared("vstar", tiny["vstar"])
    for row, doc in zip(rows, docs):
        x, y, w, h = row["bbox"][0]
        assert doc["focus_gt_boxes"][0] == [x, y, x + w, y + h]
        assert len(doc["focus_gt_boxes"]) == len(doc["focus_gt_names"]) == (1 if row["category"] ==
                                                                              "direct_attributes" else 2)
        assert FocusQuestion.from_doc(doc).gt_names == tuple(row["target_object"])
    doc = docs[0]
    record = DocRecord.success("A", counters(), roi_recall=0.5).to_response()
    assert vstar.process_results(doc, [record])["roi_recall"] == 0.5
    assert vstar.process_results(doc, ["A"])["roi_recall"] is None  # another model: no recall
    assert vstar.process_results({**doc, "focus_gt_boxes": []}, [record])["roi_recall"] is None
    assert vstar.process_results(doc, [DocRecord.success("A", counters(), roi_recall="x").to_response()])[
        "roi_recall"] is None
    assert mean_reported([None, 0.5, 1.0, None]) == 0.75 and mean_reported([None]) is None


def test_vstar_gt_boxes_from_sidecar_json_beside_the_images(tmp_path):
    # the official penghao-wu/vstar layout: <folder>/<stem>.jpg with <stem>.json
    rows = tiny_data.build_rows("vstar", scale=SCALE)[:4]
    sidecars = [{"target_object": ["cup"], "bbox": [[10, 20, 30, 40]]},
                {"target_object": ["cup", "plate"], "bbox": [[1, 2, 3, 4], [5.5, 6, 7, 8]]},
                {"target_object": ["cup"], "bbox": [[1, 2, 0, 4]]},  # zero width: malformed, ignored
                None]  # no sidecar
    for index, (row, sidecar) in enumerate(zip(rows, sidecars)):
        image = tmp_path / f"sa_{index}.jpg"
        image.write_bytes(row["image"]["bytes"])
        if sidecar is not None:
            image.with_suffix(".json").write_text(json.dumps(sidecar))
        row["image"] = str(image)
        del row["bbox"], row["target_object"]
    data = datasets.Dataset.from_list(rows, features=datasets.Features(
        {k: v for k, v in tiny_data.features("vstar").items() if k in SCHEMAS["vstar"].columns}))
    docs = vstar.VSTAR.prepare(data, "generate")
    assert docs["focus_gt_boxes"] == [[[10, 20, 40, 60]], [[1, 2, 4, 6], [5.5, 6, 12.5, 14]], [], []]
    assert docs["focus_gt_names"] == [["cup"], ["cup", "plate"], [], []]


@pytest.mark.parametrize("bbox, names, boxes, kept_names", [
    ([[0, 0, 10, 10]], ["a"], [[0.0, 0.0, 10.0, 10.0]], ["a"]),
    ([[0, 0, 10, 10]], ["a", "b"], [[0.0, 0.0, 10.0, 10.0]], []),  # names that do not match: left out
    ([[0, 0, 10]], ["a"], [], []),  # not [x, y, w, h]
    ([[0, 0, float("nan"), 1]], None, [], []),
    (None, None, [], []),
    ([], [], [], []),
])
def test_vstar_gt_annotations_are_checked(bbox, names, boxes, kept_names):
    assert vstar._annotation({"bbox": bbox, "target_object": names}, 7) == (boxes, kept_names)


def test_answer_without_letter_is_wrong_and_kept(tiny):
    doc = next(d for d in prepared("mme_realworld_lite", tiny["mme_realworld_lite"]) if not d["focus_error"])
    scored = mme.process_results(doc, ["i cannot tell from this picture"])
    entry = scored["mme_realworld_score"]
    assert (entry["score"], entry["answer"], entry["raw_answer"]) == (0, None, "i cannot tell from this picture")


def test_failed_record_and_bad_rows_score_wrong_with_error_and_no_counters(tiny):
    docs = prepared("hrbench4k", tiny["hrbench4k"])
    good = docs[0]
    failed = hrbench.process_results(good, [DocRecord.failure(ImageLoadError("corrupt"), counters()).to_response()])
    assert failed["average"]["score"] == 0 and failed["average"]["error"] == "ImageLoadError: corrupt"
    assert all(failed[k] is None for k in COUNTER_COLUMNS)
    assert (failed["failed"], failed["failed_rate"]) == (1, 1)
    answered = hrbench.process_results(good, [DocRecord.success(good["answer"], counters()).to_response()])
    assert (answered["failed"], answered["failed_rate"]) == (0, 0)
    missing_d = next(d for d in docs if d["focus_error"])
    assert missing_d["focus_error"] == "option D missing"
    scored = hrbench.process_results(missing_d, [DocRecord.success(missing_d["answer"], counters()).to_response()])
    assert scored["average"]["score"] == 0 and scored["average"]["error"] == "option D missing"
    damaged = hrbench.process_results(good, ['{"focus_eval_record": 1, "answer": ["B"]'])
    assert damaged["average"]["score"] == 0 and "unreadable focus-eval record" in damaged["average"]["error"]


def test_bad_rows_are_marked_and_corrupt_images_fail_per_document(tiny):
    for key in DATASETS:
        docs = prepared(key, tiny[key])
        problems = [d["focus_error"] for d in docs if d["focus_error"]]
        assert len(problems) == 1 and "missing" in problems[0], (key, problems)
        benchmark_doc_to_visual = {"vstar": vstar.doc_to_visual, "mme_realworld_lite": mme.doc_to_visual}.get(
            key, hrbench.doc_to_visual)
        id_column = SCHEMAS[key].id_column
        corrupt_id = len(docs) - 2  # the builder's corrupt-image row
        for doc in docs:
            if doc[id_column] == corrupt_id:
                with pytest.raises(ImageLoadError, match=f"{key} {id_column}={corrupt_id}: "):
                    benchmark_doc_to_visual(doc)
            else:
                (image,) = benchmark_doc_to_visual(doc)
                assert image.mode == "RGB" and image.size[0] >= 64


@pytest.mark.parametrize("key", DATASETS)
def test_rows_with_null_fields_fail_alone_and_never_crash(key, tmp_path):
    schema = SCHEMAS[key]
    rows = tiny_data.build_rows(key, scale=SCALE)[:3]
    rows[0][schema.question_column] = None
    rows[1][schema.label_column] = None
    rows[2]["category"] = None
    path = tmp_path / "nulls.parquet"
    datasets.Dataset.from_list(rows, features=tiny_data.features(key)).to_parquet(str(path))
    docs = prepared(key, path)
    assert docs[0]["focus_error"] == "question missing" and docs[0]["focus_options"] == []
    assert docs[1]["focus_error"].startswith("label None names none of the options")
    assert docs[2]["focus_error"] is None
    module = {"vstar": vstar, "mme_realworld_lite": mme}.get(key, hrbench)
    overall = {"vstar": "vstar_overall_acc", "mme_realworld_lite": "mme_realworld_score"}.get(key, "average")
    for doc in docs:
        assert isinstance(module.doc_to_text(doc, our_kwargs(key.replace("8k", "4k"))), str)
        assert module.process_results(doc, ["A"])[overall]["error"] == doc["focus_error"]


def test_truncated_image_fails_although_lmms_eval_allows_truncated_images():
    from PIL import ImageFile

    import lmms_eval.api.task  # noqa: F401  sets ImageFile.LOAD_TRUNCATED_IMAGES = True for the process

    assert ImageFile.LOAD_TRUNCATED_IMAGES is True
    scene = tiny_data.make_scene(random.Random(1), (320, 240))
    truncated = tiny_data.b64(tiny_data.jpeg_bytes(scene.image)[:2000])
    with pytest.raises(ImageLoadError, match="hrbench4k index=7: .*truncated"):
        hrbench.HRBENCH_4K.doc_to_visual({"index": 7, "image": truncated})
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # lmms-eval's setting is left as it was


def test_vstar_image_is_never_decoded_by_reading_a_row(tiny):
    data = prepared("vstar", tiny["vstar"])
    assert data.features["image"] == datasets.Image(decode=False)
    assert data[4]["image"]["bytes"] == tiny_data.NOT_AN_IMAGE  # reading the corrupt row does not raise


def test_focus_question_fields(tiny):
    doc = prepared("vstar", tiny["vstar"], answer_scheme="logits")[2]
    question = FocusQuestion.from_doc(doc)
    assert question.dataset == "vstar" and question.answer_scheme == "logits" and question.error is None
    assert question.question == vstar.split_text(doc["text"])[0]
    assert question.options == ("left", "right") and question.lettered_options == [("A", "left"), ("B", "right")]
    mme_doc = prepared("mme_realworld_lite", tiny["mme_realworld_lite"])[0]
    assert FocusQuestion.from_doc(mme_doc).options == tuple(o[4:] for o in mme_doc["multi-choice options"])
    assert FocusQuestion.from_doc({"question": "not ours"}) is None


def test_hrbench_cycle_average_equals_builtin():
    from lmms_eval.tasks.hrbench.utils import hrbench_aggregate_results

    scores = {"cycle_0": [1, 1, 0], "cycle_1": [0, 1], "cycle_2": [1], "cycle_3": [0, 0, 0, 1]}
    entries = [{"cycle_category": c, "score": s} for c, values in scores.items() for s in values]
    expected = (2 / 3 + 1 / 2 + 1 + 1 / 4) / 4
    assert hrbench.cycle_average(entries) == pytest.approx(expected)
    builtin_items = [{"cycle_category": e["cycle_category"], "gpt_score": e["score"]} for e in entries]
    assert hrbench.cycle_average(entries) == pytest.approx(hrbench_aggregate_results(builtin_items, None))
    assert hrbench.cycle_average(entries + [None]) == pytest.approx(expected)
    assert hrbench.cycle_average([]) is None and hrbench.cycle_average([None]) is None


def test_accuracies_and_counter_means():
    entries = [{"score": s} for s in (1, 0, 1, 1)]
    assert accuracy(entries) == 0.75 and vstar.accuracy_percent(entries) == 75.0
    assert accuracy(entries + [None]) == 0.75  # None: a question of another category
    assert accuracy([]) is None and accuracy([None]) is None and vstar.accuracy_percent([None]) is None
    assert mean_reported([2.0, None, 4.0]) == 3.0
    assert mean_reported([None, None]) is None


def test_mme_metric_keys_per_domain():
    def names(category):
        return mme.MME_REALWORLD_LITE.metric_names({"category": category})

    assert names("Perception/Autonomous_Driving") == ["mme_realworld_score", "perception_avg", "perception_ad"]
    assert names("Reasoning/OCR with Complex Context") == ["mme_realworld_score", "reasoning_avg", "reasoning_ocr"]
    assert names("Reasoning/Something New") == ["mme_realworld_score", "reasoning_avg"]


def test_yaml_metric_lists_cover_every_key_process_results_emits(tiny):
    for name, key in [("vstar", "vstar"), ("hrbench4k", "hrbench4k"), ("mme_realworld_lite", "mme_realworld_lite")]:
        config = yaml.safe_load(next(TASKS_DIR.rglob(f"{name}.yaml")).read_text().replace("!function", ""))
        listed = {m["metric"] for m in config["metric_list"]}
        module = {"vstar": vstar, "hrbench4k": hrbench, "mme_realworld_lite": mme}[name]
        emitted = set()
        for doc in prepared(key, tiny[key]):
            emitted |= set(module.process_results(doc, ["A"]))
        assert emitted == listed, name
        assert set(COUNTER_COLUMNS) <= listed


# ---- the record channel ----------------------------------------------------------------------

def test_record_round_trip_and_plain_text():
    record = DocRecord.success("B", counters(), option_scores=[-1.0, -0.5])
    back = DocRecord.from_response("  " + record.to_response() + "\n")
    assert back == record and not back.failed
    assert back.counters == counters().to_dict()
    assert DocRecord.from_response("B. blue") == DocRecord(answer="B. blue")
    assert DocRecord.from_response(None) == DocRecord(answer="")
    assert DocRecord.from_response('{"json": "of another model"}').answer == '{"json": "of another model"}'


@pytest.mark.parametrize("payload, message", [
    ({"focus_eval_record": 2, "answer": "A"}, "unsupported focus-eval record version 2"),
    ({"focus_eval_record": 1, "answer": 3}, "malformed focus-eval record"),
    ({"focus_eval_record": 1, "answer": None, "error": None}, "without answer or error"),
])
def test_damaged_records_are_failures(payload, message):
    record = DocRecord.from_response(json.dumps(payload))
    assert record.failed and message in record.error
    assert all(v is None for v in record.counter_values().values())


def test_counter_values_ignore_non_numbers():
    values = DocRecord(answer="A", counters={"fp": 2, "fp_total": float("nan"), "tflops": "3",
                                             "total_seconds": True}).counter_values()
    assert values == {"fp": 2.0, "fp_total": None, "bp": None, "tflops": None, "seconds": None, "peak_mem_gb": None}
    assert set(counters().to_dict()) >= {"fp", "fp_total", "bp", "tflops", "total_seconds", "peak_mem_gb"}


# ---- sources ---------------------------------------------------------------------------------

def test_hub_ids_and_local_paths_are_told_apart(tmp_path):
    assert sources.resolve_source("vstar", "lmms-lab-encoder/vstar-bench").kind == "hub"
    for path in ["/no/such/file.parquet", "./missing", "~/missing", "data/nested/dir", "vstar.parquet"]:
        with pytest.raises(DatasetSourceError, match=f"vstar: dataset path '{path}' does not exist"):
            sources.resolve_source("vstar", path)
    other = tmp_path / "vstar.json"
    other.write_text("{}")
    with pytest.raises(DatasetSourceError, match="unsupported dataset file .*expected a .parquet or .tsv"):
        sources.resolve_source("vstar", str(other))


def test_registered_local_copy_wins_over_yaml_path(tiny):
    sources.register_local_dataset("vstar", tiny["vstar"])
    source = sources.resolve_source("vstar", "lmms-lab-encoder/vstar-bench")
    assert (source.kind, source.location) == ("parquet", str(tiny["vstar"]))
    with pytest.raises(DatasetSourceError, match="hrbench4k: dataset path '/nope' does not exist"):
        sources.register_local_dataset("hrbench4k", "/nope")
    with pytest.raises(DatasetSourceError, match="unknown benchmark 'vstar_logits'"):
        sources.register_local_dataset("vstar_logits", tiny["vstar"])


def test_missing_columns_are_named_from_schema_and_from_full_load(tmp_path, tiny):
    data = datasets.load_dataset("parquet", data_files={"x": str(tiny["hrbench4k"])}, split="x")
    broken = tmp_path / "hrbench.parquet"
    data.remove_columns(["cycle_category", "C"]).to_parquet(str(broken))
    pattern = r"hrbench4k: '.*hrbench.parquet' is missing columns \['C', 'cycle_category'\]"
    with pytest.raises(DatasetSourceError, match=pattern):
        sources.check_local_dataset("hrbench4k", broken)
    with pytest.raises(DatasetSourceError, match=pattern):
        sources.load_split("hrbench4k", sources.resolve_source("hrbench4k", str(broken)), "hrbench_4k")
    with pytest.raises(DatasetSourceError, match="vstar: .* is missing columns"):
        sources.check_local_dataset("vstar", tiny["hrbench4k"])


def test_tsv_keeps_text_and_reads_empty_cells_as_missing(tmp_path):
    path = tiny_data.write_tiny_dataset("hrbench8k", tmp_path, fmt="tsv", scale=SCALE, bad_rows=True)
    frame = pd.read_csv(path, sep="\t", keep_default_na=False)
    frame.loc[0, "A"] = "None"  # a real option text, not a missing value
    frame.to_csv(path, sep="\t", index=False)
    assert sources.check_local_dataset("hrbench8k", path).kind == "tsv"
    docs = hrbench.HRBENCH_8K.prepare(sources.load_split("hrbench8k", sources.resolve_source("hrbench8k", str(path)),
                                                         "hrbench_8k"), "generate")
    assert docs[0]["focus_options"][0] == "None" and docs[0]["focus_error"] is None
    assert [d["index"] for d in docs if d["focus_error"] == "option D missing"] == [9]


def test_directories_saved_and_generic(tmp_path):
    saved = tiny_data.write_tiny_dataset("mme_realworld_lite", tmp_path / "saved", fmt="saved", scale=SCALE)
    source = sources.check_local_dataset("mme_realworld_lite", saved)
    assert source.kind == "saved"
    assert len(sources.load_split("mme_realworld_lite", source, "train")) == 9
    assert len(sources.load_split("mme_realworld_lite", source, "test")) == 9  # the only split, whatever its name
    generic = tmp_path / "generic"
    generic.mkdir()
    parquet = tiny_data.write_tiny_dataset("vstar", tmp_path, scale=SCALE)
    (generic / "test-00000-of-00001.parquet").write_bytes(parquet.read_bytes())
    source = sources.resolve_source("vstar", str(generic))
    assert source.kind == "directory" and len(sources.load_split("vstar", source, "test")) == 4


def test_multi_split_directory_without_the_split_is_an_error(tmp_path):
    data = datasets.Dataset.from_list(tiny_data.build_rows("hrbench4k", scale=SCALE), features=tiny_data.features("hrbench4k"))
    datasets.DatasetDict({"a": data, "b": data}).save_to_disk(str(tmp_path / "two"))
    with pytest.raises(DatasetSourceError, match=r"has no split 'hrbench_4k' \(splits: a, b\)"):
        sources.load_split("hrbench4k", sources.resolve_source("hrbench4k", str(tmp_path / "two")), "hrbench_4k")


def test_unreachable_hub_and_empty_data_are_one_line_errors(tmp_path, tiny):
    with pytest.raises(DatasetSourceError) as raised:
        sources.load_split("vstar", sources.resolve_source("vstar", "lmms-lab-encoder/vstar-bench"), "test")
    message = str(raised.value)
    assert "\n" not in message and message.startswith("vstar: cannot load hub dataset 'lmms-lab-encoder/vstar-bench'")
    assert "--model_args data_vstar=PATH" in message
    header_only = tmp_path / "header.tsv"
    header_only.write_text("\t".join(SCHEMAS["hrbench4k"].columns) + "\n")
    with pytest.raises(DatasetSourceError, match="hrbench4k: cannot load '.*header.tsv' .*no data"):
        sources.load_split("hrbench4k", sources.resolve_source("hrbench4k", str(header_only)), "hrbench_4k")


# ---- tiny datasets ---------------------------------------------------------------------------

def test_tiny_datasets_have_the_real_schemas(tiny):
    expected_types = {
        "vstar": {"image": datasets.Image(), "question_id": datasets.Value("int64"),
                  "bbox": datasets.List(datasets.List(datasets.Value("float64"))),  # the official V* annotation
                  "target_object": datasets.List(datasets.Value("string"))},
        "hrbench4k": {"image": datasets.Value("string"), "index": datasets.Value("int64")},
        "hrbench8k": {"image": datasets.Value("string"), "cycle_category": datasets.Value("string")},
        "mme_realworld_lite": {"bytes": datasets.Value("string"),
                               "multi-choice options": datasets.List(datasets.Value("string"))},
    }
    for key in DATASETS:
        data = datasets.load_dataset("parquet", data_files={"x": str(tiny[key])}, split="x")
        assert tuple(data.column_names) == SCHEMAS[key].columns + SCHEMAS[key].optional_columns
        for column, feature in expected_types[key].items():
            assert data.features[column] == feature, (key, column)
    hr = datasets.load_dataset("parquet", data_files={"x": str(tiny["hrbench4k"])}, split="x")
    good = hr.select(range(8))
    assert sorted(set(good["cycle_category"])) == ["cycle_0", "cycle_1", "cycle_2", "cycle_3"]
    assert sorted(set(good["category"])) == ["cross", "single"]
    mme_data = datasets.load_dataset("parquet", data_files={"x": str(tiny["mme_realworld_lite"])}, split="x")
    domains = {tuple(c.split("/")) for c in mme_data["category"]}
    assert len(domains) == 9 and {d for _, d in domains} == set(mme.DOMAINS)


def test_tiny_images_are_high_resolution_with_small_objects_and_deterministic():
    scene = tiny_data.make_scene(random.Random(0), tiny_data.SIZES["hrbench8k"])
    assert scene.image.size == (7431, 5358)
    for thing in scene.things:
        x0, y0, x1, y1 = thing.box
        assert (x1 - x0) * (y1 - y0) / (7431 * 5358) < 0.001  # each object under 0.1 % of the image
        assert scene.image.getpixel(((x0 + x1) // 2, (y0 + y1) // 2 + 2)) == tiny_data.COLORS[thing.color]
    assert tiny_data.build_rows("vstar", scale=SCALE) == tiny_data.build_rows("vstar", scale=SCALE)
    assert tiny_data.build_rows("vstar", scale=SCALE, seed=1) != tiny_data.build_rows("vstar", scale=SCALE)


def test_tiny_splits_match_the_yaml_splits_and_formats_are_checked(tmp_path):
    for key, split in tiny_data.SPLITS.items():
        config = yaml.safe_load(next(TASKS_DIR.rglob(f"{key}.yaml")).read_text().replace("!function", ""))
        assert config["test_split"] == split, key
    with pytest.raises(ValueError, match="tsv file cannot hold"):
        tiny_data.write_tiny_dataset("vstar", tmp_path, fmt="tsv")
    with pytest.raises(ValueError, match="unknown benchmark"):
        tiny_data.build_rows("vstar_logits")
    assert len(tiny_data.build_rows("hrbench4k", scale=SCALE, bad_rows=True)) == 10
