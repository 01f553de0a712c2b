"""Assertions that every model family's adapter test (tests/test_<family>.py) makes alike."""

import warnings
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import numpy as np
import torch
from PIL import Image

from focus_eval.config import FocusConfig, load_config
from focus_eval.methods.focus.maps import to_grid
from focus_eval.model_wrappers.flops import measure_flops
from focus_eval.methods.focus.proposals import propose_rois
from focus_eval.protocol import Prefill
from focus_eval.methods.focus.ranking import existence_confidence
from focus_eval.methods.focus.relevance import DegenerateRelevanceWarning, object_relevance_map


def noise_image(width: int, height: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.RandomState(seed).randint(0, 256, (height, width, 3), dtype=np.uint8))


def existence_prompt(word: str) -> str:
    return FocusConfig().existence_prompt.format(target=word)


def relevance(prefill: Prefill, layers: slice = slice(None)) -> torch.Tensor:
    """Fig. 7 map [h * w] of the prefill's values in `layers`; a degenerate (uniform) map fails.
    These checks test an adapter's token geometry on random weights, whose values share no
    direction per head: there the default "column" normalisation divides by image-token row sums
    near or below zero (maps that sum to <= 0, sdpa and eager apart by 1.5e-5), so they read the
    "target_row" map; tests/test_relevance.py pins both normalisations to Fig. 7's code."""
    return assert_not_uniform(prefill.values[layers], prefill.target_positions, prefill.visual_positions,
                              "target_row")


def assert_not_uniform(*args: Any) -> torch.Tensor:
    """object_relevance_map(*args), failing on a DegenerateRelevanceWarning that made the map uniform."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DegenerateRelevanceWarning)
        out = object_relevance_map(*args)
    uniform = [str(w.message) for w in caught if str(w.message).startswith("relevance map is uniform")]
    assert not uniform, uniform
    return out


def assert_planted_target_found(adapter, image: Image.Image, cells: tuple[int, int, int, int],
                                word: str = "umbrella") -> None:
    """Plant the input embedding of `word` as the image features of the grid cells
    (row0, col0, row1, col1), end-exclusive, and prefill the existence prompt for `word` at the
    family's FOCUS layers: the map peaks in the planted cells, and the top proposal of the
    family's V* config with s_min = s_max = 3 is anchored there and centred over them.

    For families whose image features are the grid's tokens, row-major, in their
    second-to-last dimension."""
    prompt = existence_prompt(word)
    (target_token,) = adapter.tokenizer(f" {word}", add_special_tokens=False)["input_ids"]
    embedding = adapter.model.get_input_embeddings().weight[target_token].detach()
    grid_shape = adapter.visual_layout(adapter.encode([adapter.chat_text(prompt, 1)], [image]), image)[1].grid_shape
    r0, c0, r1, c1 = cells
    planted = torch.zeros(grid_shape, dtype=torch.bool)
    planted[r0:r1, c0:c1] = True

    def plant(features):  # [..., h * w, hidden]
        features = features.clone()
        features[..., planted.flatten(), :] = embedding
        return features

    layers = load_config(adapter.family).layer_range(adapter.num_layers)  # the later layers, as FOCUS uses them
    with adapter.edit_image_features(plant):
        prefill = adapter.prefill(image, prompt, word, layers)
    assert len(prefill.target_positions) == 1
    grid = to_grid(relevance(prefill), prefill.geometry.grid_shape)
    peak = np.unravel_index(np.argmax(grid), grid.shape)
    assert planted[peak]
    config = load_config(adapter.family, "vstar").replace(s_min=3, s_max=3)
    top = propose_rois(grid, prefill.geometry, config)[0]
    assert planted[top.anchor]
    x0, y0, x1, y1 = top.box
    region = prefill.geometry.cell_boxes[planted.numpy()]  # [cells, 4]
    assert region[:, 0].min() - 1 <= (x0 + x1) / 2 <= region[:, 2].max() + 1
    assert region[:, 1].min() - 1 <= (y0 + y1) / 2 <= region[:, 3].max() + 1


def assert_attention_implementations_agree(load: Callable[[str], Any], image: Image.Image, word: str,
                                           atol: float = 1e-5) -> None:
    """The adapters `load("sdpa")` and `load("eager")` (set in both towers) prefill the existence
    prompt for `word` alike at every layer: values, un-rotated keys, yes/no logits, and the
    relevance map of the layers after the first."""
    runs = []
    for implementation in ("sdpa", "eager"):
        adapter = load(implementation)
        assert adapter.config.get_text_config()._attn_implementation == implementation
        assert adapter.config.vision_config._attn_implementation == implementation
        runs.append(adapter.prefill(image, existence_prompt(word), word, range(adapter.num_layers), with_keys=True))
    first, second = runs
    torch.testing.assert_close(first.values, second.values, atol=atol, rtol=0)
    torch.testing.assert_close(first.keys, second.keys, atol=atol, rtol=0)
    torch.testing.assert_close(first.yes_no, second.yes_no, atol=atol, rtol=0)
    torch.testing.assert_close(relevance(first, slice(1, None)), relevance(second, slice(1, None)), atol=atol, rtol=0)


@contextmanager
def one_batch(adapter) -> Iterator[None]:
    """Within the block, a batched existence check is one forward whatever its tokens (the
    adapter's token budget off; tests/test_speedups.py checks the budget)."""
    budget, adapter.max_batch_tokens = adapter.max_batch_tokens, 0
    try:
        yield
    finally:
        adapter.max_batch_tokens = budget


def assert_batched_yes_no_equals_one_by_one(adapter, images, prompts, atol: float = 1e-4) -> torch.Tensor:
    """One batched (left-padded) existence check gives every prompt the logits, hence the Eq. 5
    confidence, it gets alone; its cost is the single calls' summed (padding is not counted).
    Returns the single calls' logits [n, 2]."""
    with one_batch(adapter):
        batched = adapter.yes_no_logits(images, prompts)
    singles = [adapter.yes_no_logits([image], [prompt]) for image, prompt in zip(images, prompts, strict=True)]
    single = torch.cat([result.logits for result in singles])  # [n, 2]
    assert batched.logits.shape == (len(prompts), 2)
    torch.testing.assert_close(existence_confidence(batched.logits), existence_confidence(single), atol=atol, rtol=0)
    torch.testing.assert_close(batched.logits, single, atol=atol, rtol=0)
    assert (batched.cost.passes, batched.cost.batches) == (len(prompts), 1)
    assert batched.cost.tokens == sum(result.cost.tokens for result in singles)
    assert batched.cost.flops == sum(result.cost.flops for result in singles)
    return single


def assert_cost_matches_measured(call: Callable[[], Any]) -> None:
    """The analytic FLOPs in `call()`'s cost are within 2% of a FlopCounterMode measurement."""
    result, measured = measure_flops(call)
    assert measured > 0
    assert abs(result.cost.flops - measured) / measured < 0.02, (result.cost.flops, measured)
