"""FOCUS models registered through the `lmms_eval.models` entry point, the check of their
--model_args, and the model class answering lmms-eval's requests in this process on a tiny
LLaVA-1.5 (model_wrappers/lmms_models.py). End to end through the CLI: test_lmms_e2e.py."""

import json

import datasets
import pytest
import torch
from loguru import logger
from PIL import Image

from focus_eval.model_specs import MODEL_SPECS, is_focus_model
from focus_eval.model_wrappers.lmms_models import (
    DEFAULT_MAX_NEW_TOKENS,
    Decoding,
    Llava15Focus,
    Qwen25VLFocus,
    ResponseStore,
    manifests,
)
from focus_eval.model_wrappers.model_args import parse_model_args, resolve_device
from focus_eval.pipeline import Pipeline
from focus_eval.tasks import sources, tiny_data
from focus_eval.tasks.record import DocRecord
from focus_eval.tasks.sources import DatasetSourceError


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf_datasets"))
    monkeypatch.setattr(sources, "_local_datasets", {})


def test_entry_point_registers_models_and_aliases():
    import lmms_eval.models  # loads the installed package's entry points

    registry = lmms_eval.models.MODEL_REGISTRY_V2
    expected = {"llava_ov_focus": ("llava_ov_focus", "LlavaOneVisionFocus"),
                "llava_1_5_focus": ("llava_1_5_focus", "Llava15Focus"),
                "llava15_focus": ("llava_1_5_focus", "Llava15Focus"),
                "qwen2_5_vl_focus": ("qwen2_5_vl_focus", "Qwen25VLFocus")}
    for name, (model_id, class_name) in expected.items():
        resolved = registry.resolve(name)
        assert (resolved.model_id, resolved.model_type) == (model_id, "simple")
        assert resolved.class_path == f"focus_eval.model_wrappers.lmms_models.{class_name}"
    assert [m.model_id for m in manifests()] == [s.model_id for s in MODEL_SPECS]
    assert all(is_focus_model(name) for name in expected)
    assert not any(is_focus_model(name) for name in ("llava_onevision", "dummy", None, "llava_ov_focus "))


def test_valid_args_are_typed_and_configs_follow_table7(tmp_path):
    args = parse_model_args("llava15_focus", n_steps="2", overrun="false", layers="10-20", batch_size="1",
                            device="cuda:0", dtype="bfloat16")
    assert args.spec.family == "llava_1_5" and args.pretrained == "llava-hf/llava-1.5-7b-hf"
    assert args.focus_overrides == {"n_steps": 2, "overrun": False, "layer_start": 10, "layer_end": 20}
    assert (args.device, args.dtype, args.batch_size, args.attn_implementation) == ("cuda:0", "bfloat16", 1, "sdpa")
    vstar, hrbench = args.config("vstar"), args.config("hrbench4k")
    assert (vstar.k, vstar.s_dist, hrbench.s_dist, vstar.n_steps) == (15, 2, 3, 2)  # k = 15 for n_steps < 4
    (tmp_path / "config.json").write_text('{"model_type": "llava_onevision"}')  # checked, not loaded
    onevision = parse_model_args("llava_ov_focus", pretrained=str(tmp_path))
    assert onevision.pretrained == str(tmp_path) and onevision.config("vstar").s_max == 9


@pytest.mark.parametrize("kwargs, message", [
    ({"nstep": 3}, "llava_ov_focus: unknown model argument 'nstep'; valid: .*n_steps"),
    ({"n_steps": "two"}, "llava_ov_focus: n_steps='two': expected int"),
    ({"relevance": "qk"}, "llava_ov_focus: relevance='qk'"),
    ({"dataset": "vstar"}, "unknown model argument 'dataset'"),
    ({"answer_scheme": "logits"}, "unknown model argument 'answer_scheme'"),  # the task decides (vstar_logits)
    ({"dtype": "fp8"}, "dtype='fp8': expected one of auto, bfloat16, float16, float32"),
    ({"attn_implementation": "flash"}, "attn_implementation='flash': expected one of sdpa, eager"),
    ({"revision": "main"}, "unknown model argument 'revision'"),
    ({"batch_size": "auto"}, "batch_size='auto': expected a positive integer"),
    ({"data_vstar_logits": "/x"}, "unknown benchmark in 'data_vstar_logits'"),
    ({"min_pixels": 1000}, "unknown model argument 'min_pixels'"),  # a Qwen2.5-VL processor option
    ({"image_aspect": "crop"}, "unknown model argument 'image_aspect'"),  # a LLaVA-1.5 adapter option
    ({"max_batch_tokens": -5}, "llava_ov_focus: max_batch_tokens=-5: expected a token count >= 0"),
    ({"device": "cpu", "device_map": "auto"}, "give device or device_map, not both"),
    ({"save_maps": True}, "save_maps=True: expected a name or path"),
    ({"pretrained": "/no/such/checkpoint"}, "llava_ov_focus: no such model folder: /no/such/checkpoint"),
])
def test_bad_args_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        parse_model_args("llava_ov_focus", **kwargs)


def test_unknown_model_name():
    with pytest.raises(ValueError, match="unknown FOCUS model 'llava_focus'; known: llava_ov_focus"):
        parse_model_args("llava_focus")


def test_local_data_args_are_checked_before_any_loading(tmp_path, isolated):
    good = tiny_data.write_tiny_dataset("hrbench4k", tmp_path, scale=0.05)
    args = parse_model_args("qwen2_5_vl_focus", data_hrbench4k=str(good))
    assert args.local_datasets == {"hrbench4k": str(good)}
    with pytest.raises(DatasetSourceError, match="vstar: dataset path '/no/vstar.parquet' does not exist"):
        parse_model_args("qwen2_5_vl_focus", data_vstar="/no/vstar.parquet")
    with pytest.raises(DatasetSourceError, match=r"vstar: '.*hrbench4k.parquet' is missing columns \['text'"):
        parse_model_args("qwen2_5_vl_focus", data_vstar=str(good))


def test_ablation_switches_as_lmms_eval_passes_them():
    # lmms-eval's own parsing turns "false" into False and "0.4" into 0.4 before we see them
    args = parse_model_args("llava_ov_focus", ranking="off", relevance="random", overrun=False,
                            expansion_threshold=0.4, nms_threshold="0.2", method="vanilla")
    config = args.config("hrbench8k")
    assert (config.ranking, config.relevance, config.overrun, config.method) == (False, "random", False, "vanilla")
    assert (config.expansion_threshold, config.nms_threshold, config.dataset) == (0.4, 0.2, "hrbench8k")


def test_baseline_options_survive_lmms_evals_own_parsing():
    """lmms-eval splits --model_args on commas outside brackets and turns numbers into numbers: a
    list of ZoomEye decrements written with ':' arrives whole, one number becomes a float, and a
    bracketed list arrives as one string that our parser names (before any weights load)."""
    from lmms_eval.utils import simple_parse_args_string

    def config(text, model="llava_ov_focus"):
        return parse_model_args(model, **simple_parse_args_string(text)).config("vstar")

    zoomeye = config("method=zoomeye,zoomeye_decrements=0.05:0.1:0.2,zoomeye_depth=2,zoomeye_split=2")
    assert (zoomeye.method, zoomeye.zoomeye_decrements, zoomeye.zoomeye_depth, zoomeye.zoomeye_split) == (
        "zoomeye", (0.05, 0.1, 0.2), 2, 2)
    assert config("method=zoomeye,zoomeye_decrements=0.2").zoomeye_decrements == (0.2,)
    assert config("zoomeye_tau_up=1,zoomeye_patch_scale=1").zoomeye_tau_up == 1.0
    vicrop = config("method=vicrop,vicrop_map=grad_att,vicrop_high=true,vicrop_layer=10", "llava_1_5_focus")
    assert (vicrop.method, vicrop.vicrop_map, vicrop.vicrop_high, vicrop.vicrop_layer) == ("vicrop", "grad_att", True, 10)
    with pytest.raises(ValueError, match=r"llava_ov_focus: zoomeye_decrements='\[0.1,0.1,0.2\]': expected float "
                                         "values separated by ':'"):
        config("method=zoomeye,zoomeye_decrements=[0.1,0.1,0.2]")
    with pytest.raises(ValueError, match="llava_ov_focus: zoomeye depths must be >= 1"):
        config("zoomeye_depth=0")
    with pytest.raises(ValueError, match=r"llava_ov_focus: vicrop_high=2: expected bool"):
        config("vicrop_high=2")


def test_loading_outputs_and_processor_args():
    args = parse_model_args("llava_ov_focus", device_map="auto", save_maps="maps", resume_dir="runs/ov")
    assert (args.device, args.device_map, args.save_maps, args.resume_dir) == (None, "auto", "maps", "runs/ov")
    assert args.processor_kwargs == {}
    qwen = parse_model_args("qwen2_5_vl_focus")
    assert qwen.processor_kwargs == {"min_pixels": 256 * 28 * 28, "max_pixels": 1605632}  # lmms-eval's qwen2_5_vl
    small = parse_model_args("qwen2_5_vl_focus", min_pixels=3136, max_pixels=50176).processor_kwargs
    assert small == {"min_pixels": 3136, "max_pixels": 50176}
    with pytest.raises(ValueError, match="min_pixels=200704 exceeds max_pixels=1000"):
        parse_model_args("qwen2_5_vl_focus", max_pixels=1000)
    # every family's adapter option, given to the loader with the processor's (absent: the family's default)
    assert parse_model_args("llava_ov_focus", max_batch_tokens="4096").processor_kwargs == {"max_batch_tokens": 4096}
    assert parse_model_args("llava_1_5_focus", max_batch_tokens=0).processor_kwargs == {"image_aspect": "pad",
                                                                                        "max_batch_tokens": 0}


def test_llava_1_5_image_aspect_defaults_to_pad():
    # the paper's and the original LLaVA-1.5 evaluation's pad to square, for FOCUS and vanilla alike
    assert parse_model_args("llava_1_5_focus").processor_kwargs == {"image_aspect": "pad"}
    assert parse_model_args("llava15_focus", image_aspect="crop").processor_kwargs == {"image_aspect": "crop"}
    with pytest.raises(ValueError, match="llava_1_5_focus: image_aspect='squash': expected one of pad, crop"):
        parse_model_args("llava_1_5_focus", image_aspect="squash")


@pytest.mark.parametrize("gen_kwargs, max_new_tokens, stop, ignored", [
    ({"until": ["\n\n"], "max_new_tokens": 16, "temperature": 0, "top_p": 1.0, "num_beams": 1, "do_sample": False},
     16, ("\n\n",), ()),
    ({"until": "ASSISTANT:", "max_gen_toks": 5}, 5, ("ASSISTANT:",), ()),
    ({"until": None}, DEFAULT_MAX_NEW_TOKENS, (), ()),
    ({"temperature": 0.7, "num_beams": 3, "image_aspect_ratio": "pad"}, DEFAULT_MAX_NEW_TOKENS, (),
     ("sampling (do_sample / temperature > 0)", "beam search (num_beams > 1)", "image_aspect_ratio='pad'")),
    ({"do_sample": True, "temperature": 0}, DEFAULT_MAX_NEW_TOKENS, (), ("sampling (do_sample / temperature > 0)",)),
])
def test_gen_kwargs_become_greedy_decoding(gen_kwargs, max_new_tokens, stop, ignored):
    decoding = Decoding.from_gen_kwargs(gen_kwargs)
    assert (decoding.max_new_tokens, decoding.stop, decoding.ignored) == (max_new_tokens, stop, ignored)


def test_devices_follow_the_launch(monkeypatch):
    assert resolve_device(None, None, world_size=1, local_rank=0) == torch.device("cpu")  # no CUDA here
    with pytest.raises(ValueError, match="device='cuda:1', but CUDA is not available"):
        resolve_device("cuda:1", None, world_size=1, local_rank=0)
    assert resolve_device("cuda:3", None, world_size=2, local_rank=1) == torch.device("cpu")  # ranks share the CPU
    with pytest.raises(ValueError, match="device_map='auto' spreads one process's model over several GPUs"):
        resolve_device(None, "auto", world_size=2, local_rank=0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    with pytest.raises(ValueError, match="device='cuda:4', but this machine has 4 CUDA device"):
        resolve_device("cuda:4", None, world_size=1, local_rank=0)
    assert resolve_device("cuda:0", None, world_size=4, local_rank=3) == torch.device("cuda:3")  # one GPU per rank
    assert resolve_device(None, None, world_size=1, local_rank=0) == torch.device("cuda:0")
    assert resolve_device("cuda:2", None, world_size=1, local_rank=0) == torch.device("cuda:2")


def test_qwen_processor_bounds_reach_the_processor(tiny_checkpoint):
    """lmms-eval's qwen2_5_vl bounds by default, the user's when given (transformers 5 keeps them as
    the image processor's shortest_edge / longest_edge pixel counts)."""
    model = Qwen25VLFocus(pretrained=str(tiny_checkpoint("qwen2_5_vl")))
    size = model.pipeline().adapter.processor.image_processor.size
    assert (size.shortest_edge, size.longest_edge) == (256 * 28 * 28, 1605632)
    model = Qwen25VLFocus(pretrained=str(tiny_checkpoint("qwen2_5_vl")), min_pixels=3136, max_pixels=50176)
    size = model.pipeline().adapter.processor.image_processor.size
    assert (size.shortest_edge, size.longest_edge) == (3136, 50176)


def test_device_map_goes_to_transformers(tiny_checkpoint, logs):
    model = Llava15Focus(pretrained=str(tiny_checkpoint("llava_1_5")), device_map="cpu")
    assert model.pipeline().adapter.device == torch.device("cpu") == model.device
    assert "device cpu, device_map cpu" in next(line for line in logs if "loaded" in line)


def test_other_request_types_are_refused_by_name(tiny_checkpoint):
    model = Llava15Focus(pretrained=str(tiny_checkpoint("llava_1_5")))
    with pytest.raises(NotImplementedError, match="loglikelihood requests .*multiple_choice.* not supported"):
        model.loglikelihood([])
    with pytest.raises(NotImplementedError, match="generate_until_multi_round requests .* not supported"):
        model.generate_until_multi_round([])


# ---- the model class on lmms-eval's requests, in this process -------------------------------

TIMING = ("seconds", "total_seconds", "peak_mem_gb")  # measured, not computed: differ between runs


@pytest.fixture(scope="module")
def vstar(tmp_path_factory):
    """(documents, requests) of the tiny V*Bench as lmms-eval builds them: 4 questions, then a
    corrupt image (id 4) and a missing option (id 5)."""
    import lmms_eval.models  # noqa: F401  the entry point registers our tasks
    from lmms_eval.tasks import TaskManager

    root = tmp_path_factory.mktemp("vstar")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(datasets.config, "HF_DATASETS_CACHE", str(root / "hf_datasets"))
        patch.setattr(sources, "_local_datasets", {})
        sources.register_local_dataset("vstar", tiny_data.write_tiny_dataset("vstar", root, scale=0.05, bad_rows=True))
        task = TaskManager("WARNING", model_name="llava_1_5_focus").load_task_or_group("vstar")["vstar"]
        task.build_all_requests()
    return task.dataset, sorted(task.instances, key=lambda instance: instance.doc_id)


@pytest.fixture
def pipeline_calls(monkeypatch):
    """Questions Pipeline.answer was called with, in order."""
    calls = []
    answer = Pipeline.answer

    def counted(self, image, prompt, **kwargs):
        calls.append(kwargs["question"])
        return answer(self, image, prompt, **kwargs)

    monkeypatch.setattr(Pipeline, "answer", counted)
    return calls


@pytest.fixture
def logs():
    messages = []
    sink = logger.add(lambda message: messages.append(str(message)), level="INFO")
    yield messages
    logger.remove(sink)


def make_model(tiny_checkpoint, docs, **kwargs):
    model = Llava15Focus(pretrained=str(tiny_checkpoint("llava_1_5")), target_max_new_tokens=8, **kwargs)
    model.task_dict = {"vstar": docs}
    return model


def records(responses):
    return [DocRecord.from_response(response) for response in responses]


def without_timing(record: DocRecord) -> tuple:
    counters = {k: v for k, v in (record.counters or {}).items() if k not in TIMING}
    return record.answer, record.error, counters, record.details


@pytest.fixture(scope="module")
def first_answers(vstar, tiny_checkpoint):
    docs, requests = vstar
    return make_model(tiny_checkpoint, docs).generate_until(requests)


def test_answers_records_failures_and_pictures_per_document(vstar, tiny_checkpoint, tmp_path, pipeline_calls, logs):
    docs, requests = vstar
    model = make_model(tiny_checkpoint, docs, save_maps=str(tmp_path / "maps"))
    assert not any("loaded" in line for line in logs)  # building the model loads no weights
    found = records(model.generate_until(requests))
    assert len(pipeline_calls) == 4  # the two defective rows never reach the model
    for record, doc in zip(found[:4], docs["test"]):
        counters = record.counters
        assert record.error is None and isinstance(record.answer, str)
        assert counters["fp"] >= 1 and counters["fp_targets"] == 1 and counters["fp_answer"] == 1
        assert counters["tflops"] > 0 and counters["total_seconds"] > 0
        assert record.details["targets"] and record.details["final_layout"] in ("crop", "union")
    assert found[4].error.startswith("ImageLoadError: vstar question_id=4") and found[4].counters is None
    assert found[5].error == "option B missing" and found[5].counters is None
    assert sorted(path.name for path in (tmp_path / "maps").iterdir()) == [
        f"vstar_{i}.{ext}" for i in range(4) for ext in ("json", "png")]
    trace = json.loads((tmp_path / "maps" / "vstar_2.json").read_text())
    assert trace["answer"] == found[2].answer and trace["counters"]["fp"] == found[2].counters["fp"]
    loaded = [line for line in logs if "loaded" in line]
    assert len(loaded) == 1
    for part in ("llava_1_5_focus: loaded llava_1_5 checkpoint", str(tiny_checkpoint("llava_1_5")),
                 "dtype torch.float32", "device cpu", "attention sdpa", "vstar: method='focus'",
                 "s_dist=2.0", "target_max_new_tokens=8"):
        assert part in loaded[0], part


def test_same_inputs_give_the_same_answers_and_counters(vstar, tiny_checkpoint, first_answers):
    docs, requests = vstar
    again = records(make_model(tiny_checkpoint, docs).generate_until(requests))
    assert [without_timing(r) for r in again] == [without_timing(r) for r in records(first_answers)]


def test_vanilla_answers_on_the_full_image_with_the_same_counters(vstar, tiny_checkpoint, pipeline_calls):
    docs, requests = vstar
    found = records(make_model(tiny_checkpoint, docs, method="vanilla").generate_until(requests))
    assert len(pipeline_calls) == 4
    for request, record in zip(requests, found[:4]):
        counters = record.counters
        assert (counters["fp"], counters["fp_targets"], counters["fp_answer"], counters["fp_total"]) == (0, 0, 1, 1)
        _, _, doc_to_visual, doc_id, _, split = request.args
        width, height = doc_to_visual(docs[split][doc_id])[0].size
        # the tiny V*Bench has GT boxes; vanilla proposes no ROI, so it has no recall
        assert counters["tflops"] > 0 and record.details == {"targets": [], "final_layout": "full",
                                                             "final_boxes": [[0, 0, width, height]],
                                                             "roi_recall": None, "roi_recall_proposed": None,
                                                             "roi_recall_chosen": None}
    assert found[4].error.startswith("ImageLoadError") and found[5].error == "option B missing"


def test_resume_dir_replays_finished_questions_only(vstar, tiny_checkpoint, tmp_path, pipeline_calls, first_answers,
                                                    logs):
    docs, requests = vstar
    interrupted = make_model(tiny_checkpoint, docs, resume_dir=str(tmp_path))
    interrupted._rank = 1  # as lmms-eval sets it on the second of two ranks
    done = interrupted.generate_until(requests[:2])
    with open(tmp_path / "responses.rank0.jsonl", "a") as handle:
        handle.write('{"key": "cut short by a ki')  # an earlier rank 0 was killed while writing a line
    pipeline_calls.clear()
    resumed = make_model(tiny_checkpoint, docs, resume_dir=str(tmp_path)).generate_until(requests)
    assert pipeline_calls == [docs["test"][i]["focus_question"] for i in (2, 3)]
    assert resumed[:2] == done  # replayed as they were written, timing included
    assert [without_timing(r) for r in records(resumed)] == [without_timing(r) for r in records(first_answers)]
    assert any("2 of 6 requests on rank 0 answered from earlier responses" in line for line in logs)
    assert make_model(tiny_checkpoint, docs, resume_dir=str(tmp_path)).generate_until(requests) == resumed
    assert len(pipeline_calls) == 2  # the lines written after the cut one are whole
    pipeline_calls.clear()
    make_model(tiny_checkpoint, docs, resume_dir=str(tmp_path), n_steps=2).generate_until(requests)
    assert len(pipeline_calls) == 4  # other settings: nothing replayed


def test_copies_of_a_request_are_answered_once(vstar, tiny_checkpoint, pipeline_calls):
    """lmms-eval pads the ranks to equal length with copies of their last request."""
    docs, requests = vstar
    first, copy = make_model(tiny_checkpoint, docs).generate_until([requests[0], requests[0]])
    assert first == copy and len(pipeline_calls) == 1


def test_documents_of_other_tasks_get_plain_answers(tiny_checkpoint, pipeline_calls, logs):
    image = Image.new("RGB", (90, 60), (200, 30, 30))
    docs = [{"image": image, "prompt": "What is the color of the car?"}, {"image": None, "prompt": "Describe it."}]
    model = Llava15Focus(pretrained=str(tiny_checkpoint("llava_1_5")), target_max_new_tokens=8)
    model.task_dict = {"other": {"test": docs}}

    class Request:
        def __init__(self, doc_id):
            self.args = (docs[doc_id]["prompt"], {"until": ["\n\n"], "max_new_tokens": 4, "do_sample": True},
                         lambda doc: [] if doc["image"] is None else [doc["image"]], doc_id, "other", "test")

    answered, unanswerable, again = model.generate_until([Request(0), Request(1), Request(0)])
    assert answered and not answered.startswith("{") and again == answered
    assert unanswerable == "" and len(pipeline_calls) == 1
    assert any("other doc 1 failed and answers nothing: FOCUS answers about one image, the document has 0" in line
               for line in logs)
    warned = [line for line in logs if "gen_kwargs setting ignored: sampling" in line]
    assert len(warned) == 1  # once per setting, not per request
    assert "other tasks: method='focus'" in next(line for line in logs if "loaded" in line)


def test_a_resume_record_that_cannot_be_written_is_a_warning(tmp_path, monkeypatch):
    store = ResponseStore(str(tmp_path / "resume"), rank=0)
    messages = []
    sink = logger.add(lambda message: messages.append(str(message)), level="WARNING")
    real_open = open

    def full_disk(path, *args, **kwargs):
        if str(path).endswith("responses.rank0.jsonl") and not messages:
            raise OSError(28, "No space left on device")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", full_disk)
    try:
        store.put("first", "answer 1")  # the disk is full: a warning, and the run goes on
        store.put("second", "answer 2")
    finally:
        logger.remove(sink)
    assert len(messages) == 1 and "answer not stored" in messages[0] and "No space left on device" in messages[0]
    assert store.get("first") == "answer 1"  # still answered in this run
    assert ResponseStore(str(tmp_path / "resume"), rank=1).responses == {"second": "answer 2"}  # a restart replays


def test_save_maps_and_resume_dir_must_be_writable_folders(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    for name in ("save_maps", "resume_dir"):
        with pytest.raises(ValueError, match=f"llava_ov_focus: {name}='{blocker}': {blocker} exists and is not a folder"):
            parse_model_args("llava_ov_focus", **{name: str(blocker)})
    assert parse_model_args("llava_ov_focus", save_maps=str(tmp_path / "new" / "maps")).save_maps == str(
        tmp_path / "new" / "maps")
    assert not (tmp_path / "new").exists()  # checked, not created: its first picture creates it
