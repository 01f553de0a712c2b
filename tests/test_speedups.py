"""FOCUS's fixed costs made cheaper at identical answers (issue 18), on the tiny models of the three
families in float32:
- target extraction's kept prefix cache and prompt-lookup drafts (model_wrappers/decoding.py) give
  plain greedy decoding's tokens, text, `truncated` flag and cost, with fewer model calls;
- the batch token budget of the existence checks (HFAdapter.batch_token_budget) gives the same
  confidences (float rounding), rankings, chosen ROIs and forward passes, in more model calls;
- a whole FOCUS question answers, crops and counts its passes as before with both switched on."""

import pytest
import torch
from transformers import LogitsProcessor, LogitsProcessorList

from adapter_checks import noise_image
from focus_eval.config import load_config
from focus_eval.model_wrappers.base import check_max_batch_tokens, token_budget_groups
from focus_eval.model_wrappers import decoding
from focus_eval.model_wrappers.decoding import lookup_draft
from focus_eval.pipeline import Pipeline
from focus_eval.targets import icl_prefix, icl_prompt

FAMILIES = ("llava_1_5", "llava_onevision", "qwen2_5_vl")
# varied questions: each benchmark's examples, long and short, punctuation and non-ASCII first,
# a question that repeats the examples' own words
QUESTIONS = [
    ("vstar", "What is the color of the flag?"),
    ("vstar", "Is the red cup on the left or right side of the white plate near the window?"),
    ("hrbench4k", "How many people are sitting on the steps?"),
    ("hrbench8k", ": what does the sign say"),
    ("mme_realworld_lite", "Quel est le prix écrit sur le tableau ?"),
    (None, "So I need the information about the following objects: which ones?"),
    ("vstar", "?"),
]
FAST = dict(draft_tokens=10)


class ForwardCounter:
    """Model forwards and the tokens each ran, while installed."""

    def __init__(self, model):
        self.lengths: list[int] = []
        self.handle = model.register_forward_pre_hook(self.count, with_kwargs=True)

    def count(self, module, args, kwargs):
        self.lengths.append(int(kwargs["input_ids"].shape[1]))

    def remove(self):
        self.handle.remove()


def generation(adapter, dataset, question, fast: bool, **kwargs):
    extra = dict(shared_prefix=icl_prefix(dataset), **FAST) if fast else {}
    return adapter.generate([], icl_prompt(question, dataset), kwargs.pop("max_new_tokens", 24), stop=["\n"],
                            **extra, **kwargs)


@pytest.mark.parametrize("family", FAMILIES)
def test_cached_prefix_and_drafts_give_plain_greedy_decoding(tiny_adapter, family):
    adapter = tiny_adapter(family)
    adapter.prefix_cache.clear()
    # an image prompt first: Qwen2.5-VL keeps its mRoPE offsets on the model between calls
    adapter.generate([noise_image(96, 64)], "Describe the image.", 3)
    counter = ForwardCounter(adapter.model)
    plain_calls = fast_calls = 0
    try:
        for dataset, question in QUESTIONS:
            before = len(counter.lengths)
            plain = generation(adapter, dataset, question, fast=False)
            middle = len(counter.lengths)
            fast = generation(adapter, dataset, question, fast=True)
            assert (fast.text, fast.truncated, fast.cost) == (plain.text, plain.truncated, plain.cost), question
            plain_calls += middle - before
            fast_calls += len(counter.lengths) - middle
            prefix = adapter.prefix_cache.length
            ran = [n for n in counter.lengths[middle:] if n != prefix]  # but building the prefix's cache
            assert prefix > 300 and ran[0] < prefix / 3 and all(n <= 1 + FAST["draft_tokens"] for n in ran[1:])
    finally:
        counter.remove()
    assert fast_calls < plain_calls  # drafts were accepted (the random models repeat themselves)


# the realistic reply; one that copies the last example's line end ("... objects: none.\n\nQuestion:"
# is in the prompt), so that with 4-token drafts the newline comes inside a verified draft
REPLIES = ["I need the color of the flag. So I need the information about the following objects: flag.\nQuestion: x",
           "The lighting tells this. So I need the information about the following objects: none.\n\nQuestion: x"]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("reply, draft_tokens", [(REPLIES[0], 10), (REPLIES[1], 4)])
def test_a_reply_copying_the_prompt_takes_few_calls_and_stops_where_plain_decoding_stops(tiny_adapter, monkeypatch,
                                                                                         family, reply, draft_tokens):
    """A reply forced token by token through a logits processor (as generate's own processors
    act): drafts copy it from the examples and the question, and the newline ends it at the same
    token as plain decoding, also inside a draft."""
    drafts = []

    def spy(sequence, count, max_ngram=3):
        drafts.append(lookup_draft(sequence, count, max_ngram))
        return drafts[-1]

    monkeypatch.setattr(decoding, "lookup_draft", spy)
    monkeypatch.setitem(FAST, "draft_tokens", draft_tokens)
    adapter = tiny_adapter(family)
    tokenizer = adapter.tokenizer
    forced = tokenizer(reply, add_special_tokens=False)["input_ids"]

    class Script(LogitsProcessor):
        def __init__(self, prompt_length):
            self.prompt_length = prompt_length

        def __call__(self, input_ids, scores):
            step = min(input_ids.shape[1] - self.prompt_length, len(forced) - 1)
            out = torch.full_like(scores, -float("inf"))
            out[:, forced[step]] = 0.0
            return out

    prompt_length = adapter.encode([adapter.chat_text(icl_prompt("What is the color of the flag?", "vstar"), 0)],
                                   [])["input_ids"].shape[1]
    results, calls = [], []
    for fast in (False, True):
        counter = ForwardCounter(adapter.model)
        try:
            results.append(generation(adapter, "vstar", "What is the color of the flag?", fast, max_new_tokens=64,
                                      logits_processor=LogitsProcessorList([Script(prompt_length)])))
        finally:
            counter.remove()
        calls.append(len(counter.lengths))
    plain, fast = results
    assert plain.text == fast.text == reply.split("\n")[0] and plain.cost == fast.cost and not fast.truncated
    assert calls[0] == plain.cost.tokens - prompt_length  # one call per token
    assert calls[1] <= calls[0] // 2, calls
    if draft_tokens == 4:
        assert any("\n" in adapter.tokenizer.decode(draft) for draft in drafts)


def test_truncation_and_end_of_sequence_inside_drafts_match_plain_decoding(tiny_adapter):
    adapter = tiny_adapter("llava_1_5")
    for max_new_tokens in (1, 2, 7, 30):
        plain = generation(adapter, "vstar", "What is it?", fast=False, max_new_tokens=max_new_tokens)
        fast = generation(adapter, "vstar", "What is it?", fast=True, max_new_tokens=max_new_tokens)
        assert (fast.text, fast.truncated, fast.cost) == (plain.text, plain.truncated, plain.cost)
    eos = adapter.model.generation_config.eos_token_id
    eos = eos[0] if isinstance(eos, list) else eos
    plain = generation(adapter, "vstar", "What is it?", fast=False, eos_token_id=[eos, 47, 235])
    fast = generation(adapter, "vstar", "What is it?", fast=True, eos_token_id=[eos, 47, 235])
    assert (fast.text, fast.truncated, fast.cost) == (plain.text, plain.truncated, plain.cost)


def test_the_prefix_cache_is_kept_rebuilt_on_change_and_independent_of_the_question_before(tiny_adapter, tiny_checkpoint):
    from focus_eval.model_wrappers import load_adapter

    adapter = load_adapter(tiny_checkpoint("llava_1_5"), device="cpu")
    counter = ForwardCounter(adapter.model)
    try:
        generation(adapter, "vstar", "What is the color of the flag?", fast=True)
        prefix = adapter.prefix_cache.length
        first = [layer.values.clone() for layer in adapter.prefix_cache._cache.layers]
        assert counter.lengths[0] == prefix  # built by one forward over exactly the prefix
        del counter.lengths[:]
        generation(adapter, "vstar", "How many dogs are there?", fast=True)
        assert prefix not in counter.lengths and adapter.prefix_cache.length == prefix  # kept, restored
        del counter.lengths[:]
        generation(adapter, "hrbench4k", "How many dogs are there?", fast=True)  # another benchmark's examples
        assert counter.lengths[0] == adapter.prefix_cache.length != prefix
        del counter.lengths[:]
        # weights changed in place (an optimiser step, load_state_dict): rebuilt, and still plain greedy's
        with torch.no_grad():
            adapter.model.get_input_embeddings().weight.mul_(1.5)
        fast = generation(adapter, "hrbench4k", "How many dogs are there?", fast=True)
        assert counter.lengths[0] == adapter.prefix_cache.length
        plain = generation(adapter, "hrbench4k", "How many dogs are there?", fast=False)
        assert (fast.text, fast.cost) == (plain.text, plain.cost)
    finally:
        counter.remove()
    # the same numbers whatever question built it: a fresh adapter starting with another question
    other = load_adapter(tiny_checkpoint("llava_1_5"), device="cpu")
    generation(other, "vstar", "Is the red cup on the left?", fast=True)
    for mine, theirs in zip(first, (layer.values for layer in other.prefix_cache._cache.layers)):
        assert torch.equal(mine, theirs)


def test_lookup_drafts_copy_the_latest_occurrence_of_the_longest_suffix():
    sequence = [1, 2, 3, 9, 9, 5, 2, 3, 4, 4, 2, 3]
    assert lookup_draft(sequence, 3) == [4, 4, 2]  # "2 3" last seen before "4 4 2"
    assert lookup_draft([1, 2, 3, 1, 2, 7, 1, 2, 3, 8, 1, 2, 3], 2) == [8, 1]  # 3-gram "1 2 3"
    assert lookup_draft([5, 6, 7], 4) == [] and lookup_draft(sequence, 0) == []
    assert lookup_draft([4, 4], 5) == [4]


def test_bad_decoding_arguments_are_refused(tiny_adapter):
    from focus_eval.model_wrappers.base import AdapterInputError

    adapter = tiny_adapter("llava_1_5")
    with pytest.raises(AdapterInputError, match="start of the prompt"):
        adapter.generate([], "What is it?", 4, shared_prefix="Question:")
    with pytest.raises(AdapterInputError, match="draft_tokens"):
        adapter.generate([], "What is it?", 4, draft_tokens=-1)


# --- existence checks under a token budget --------------------------------------------------------


def test_token_budget_groups_keep_order_and_pad_within_the_budget():
    assert token_budget_groups([10, 10, 10], None) == [[0, 1, 2]]
    assert token_budget_groups([10, 10, 10], 25) == [[0, 1], [2]]
    assert token_budget_groups([5, 20, 5, 5], 40) == [[0, 1], [2, 3]]  # 3 rows x 20 padded > 40
    assert token_budget_groups([50, 5, 5], 20) == [[0], [1, 2]]  # over the budget: alone
    assert token_budget_groups([], 10) == []
    assert check_max_batch_tokens(None) is None and check_max_batch_tokens("0") == 0
    for bad in (-1, "x", True):
        with pytest.raises(ValueError, match="max_batch_tokens"):
            check_max_batch_tokens(bad)


@pytest.mark.parametrize("family", FAMILIES)
def test_checks_under_a_budget_are_the_same_checks_in_more_calls(tiny_adapter, family):
    adapter = tiny_adapter(family)
    crops = [noise_image(w, h, seed=i) for i, (w, h) in enumerate([(60, 40), (130, 90), (40, 40), (200, 70),
                                                                   (90, 90), (33, 61)])]
    prompts = [f"Is there a {word} in the image? Answer Yes or No." for word in
               ("cat", "red car", "dog", "tree", "sign", "cup")]
    try:
        adapter.max_batch_tokens = 0
        whole = adapter.yes_no_logits(crops, prompts)
        lengths = adapter.encode([adapter.chat_text(p, 1) for p in prompts], crops)["attention_mask"].sum(-1).tolist()
        for budget in (1, max(lengths) * 2, 10**6):
            adapter.max_batch_tokens = budget
            counter = ForwardCounter(adapter.model)
            try:
                split = adapter.yes_no_logits(crops, prompts)
            finally:
                counter.remove()
            groups = token_budget_groups(lengths, adapter.batch_token_budget())
            assert len(counter.lengths) == split.cost.batches == len(groups)
            for group in groups:
                assert len(group) == 1 or len(group) * max(lengths[i] for i in group) <= budget
            torch.testing.assert_close(split.logits, whole.logits, atol=1e-5, rtol=0)
            assert (split.cost.passes, split.cost.tokens, split.cost.flops) == (whole.cost.passes, whole.cost.tokens,
                                                                               whole.cost.flops)
            assert torch.equal(split.logits.argmax(-1), whole.logits.argmax(-1))
    finally:
        adapter.max_batch_tokens = None


def test_the_budget_is_an_option_of_every_familys_loader(tiny_checkpoint):
    from focus_eval.model_wrappers import load_adapter

    for family in FAMILIES:
        adapter = load_adapter(tiny_checkpoint(family), device="cpu", max_batch_tokens=100)
        assert adapter.max_batch_tokens == adapter.batch_token_budget() == 100
    assert load_adapter(tiny_checkpoint("llava_1_5"), device="cpu", max_batch_tokens=0).batch_token_budget() is None
    with pytest.raises(ValueError, match="max_batch_tokens"):
        load_adapter(tiny_checkpoint("llava_1_5"), device="cpu", max_batch_tokens="many")


def test_default_budgets_are_one_full_image_of_the_family(tiny_adapter):
    one = tiny_adapter("llava_1_5")
    assert one.batch_token_budget() == one.grid_side**2
    ov = tiny_adapter("llava_onevision")
    assert ov.batch_token_budget() == (1 + ov.max_crops) * (ov.crop_side // ov.patch_size) ** 2
    qwen = tiny_adapter("qwen2_5_vl")
    assert qwen.batch_token_budget() == qwen.processor.image_processor.size["longest_edge"] // qwen.block_size**2


# --- a whole FOCUS question, before and after ---------------------------------------------------------

CASES = [
    ((320, 240), "What is the color of the umbrella?\n(A) red (B) blue\nAnswer with the option's letter."),
    ((500, 300), "Is the dog on the left or right of the bench?\n(A) left (B) right\nAnswer with the option's letter."),
    ((240, 400), "How many boats are there in the image?\n(A) 1 (B) 2\nAnswer with the option's letter."),
]


def _comparable(trace: dict) -> tuple[dict, list[float]]:
    """The trace without its config, time, memory and model calls; the confidences apart."""
    trace = {key: value for key, value in trace.items() if key != "config"}
    counters = {key: value for key, value in trace.pop("counters").items()
                if key not in ("seconds", "total_seconds", "peak_mem_gb", "batches")}
    confidences = []
    for target in trace["targets"]:
        for roi in target["rois"]:
            confidences.append(roi.pop("confidence"))
    return {**trace, "counters": counters}, confidences


@pytest.mark.parametrize("family", FAMILIES)
def test_focus_answers_crops_and_passes_are_unchanged_by_the_speedups(tiny_adapter, family):
    adapter = tiny_adapter(family)
    runs = {}
    try:
        for name, fast, budget in (("before", False, 0), ("after", True, None)):
            adapter.max_batch_tokens = budget
            config = load_config(family, "vstar", n_steps=4, target_max_new_tokens=16, t_type2=-1.0,
                                 target_fast_decoding=fast)
            pipeline = Pipeline(adapter, config)
            runs[name] = [pipeline.answer(noise_image(*size, seed=i), prompt, max_new_tokens=4)
                          for i, (size, prompt) in enumerate(CASES)]
    finally:
        adapter.max_batch_tokens = None
    checked = 0
    for before, after in zip(runs["before"], runs["after"]):
        (trace_before, conf_before), (trace_after, conf_after) = (_comparable(before.trace.to_dict()),
                                                                  _comparable(after.trace.to_dict()))
        assert trace_after == trace_before  # answers, targets, maps, ROIs, order, chosen, crops, FP counts
        assert [c is None for c in conf_after] == [c is None for c in conf_before]
        checked += sum(c is not None for c in conf_before)
        assert [c for c in conf_after if c is not None] == pytest.approx([c for c in conf_before if c is not None],
                                                                         abs=1e-5)
        assert [im.size for im in after.final_images] == [im.size for im in before.final_images]
        assert after.trace.counters.batches >= before.trace.counters.batches
    assert checked >= 2  # existence checks ran
