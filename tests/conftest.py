import os

import pytest

# Tests never reach a hub: models and datasets are built locally.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """tiny_checkpoint(family, seed=0, **options) -> directory of a tiny random checkpoint
    (model_wrappers.tiny.build_tiny_checkpoint), built once per session per arguments."""
    from focus_eval.model_wrappers.tiny import build_tiny_checkpoint

    built = {}

    def build(family: str, seed: int = 0, **options):
        key = (family, seed, tuple(sorted(options.items())))
        if key not in built:
            built[key] = build_tiny_checkpoint(family, tmp_path_factory.mktemp(family), seed, **options)
        return built[key]

    return build


@pytest.fixture(scope="session")
def tiny_adapter(tiny_checkpoint):
    """tiny_adapter(family, attn_implementation="sdpa", dtype="auto", seed=0, image_aspect=None, **options)
    -> adapter loaded from a tiny checkpoint (built with **options) through load_adapter (the
    hub-id code path), on CPU, cached. image_aspect: the LLaVA-1.5 adapter option (None: default)."""
    from focus_eval.model_wrappers import load_adapter

    loaded = {}

    def load(family: str, attn_implementation: str = "sdpa", dtype: str = "auto", seed: int = 0,
             image_aspect: str | None = None, **options):
        key = (family, attn_implementation, dtype, seed, image_aspect, tuple(sorted(options.items())))
        if key not in loaded:
            adapter_options = {} if image_aspect is None else {"image_aspect": image_aspect}
            loaded[key] = load_adapter(tiny_checkpoint(family, seed, **options), device="cpu", dtype=dtype,
                                       attn_implementation=attn_implementation, **adapter_options)
        return loaded[key]

    return load


@pytest.fixture(scope="session")
def vlmeval_setup(tmp_path_factory, tiny_checkpoint):
    """Tiny TSVs and VLMEvalKit's environment for the tiny LLaVA-OneVision (tests/vlmeval_e2e.py)."""
    from vlmeval_e2e import prepare

    return prepare(tmp_path_factory.mktemp("vlmeval"), tiny_checkpoint("llava_onevision"))


@pytest.fixture(scope="session")
def vlmeval_single(vlmeval_setup):
    """One real VLMEvalKit run and the lmms-eval run of the same questions (tests/vlmeval_e2e.py),
    made once per session for test_vlmeval.py and test_compare.py; tests must not write into it."""
    from vlmeval_e2e import VLMEVAL_PYTHON, run_both

    if VLMEVAL_PYTHON is None:
        pytest.skip("FOCUS_VLMEVAL_PYTHON not set (make test sets it after `make vlmeval-env`)")
    return run_both(vlmeval_setup)
