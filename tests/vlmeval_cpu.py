"""`python -m focus_eval.vlmeval ARGS` in the VLMEvalKit test environment on a CPU-only machine.

    .venv-vlmeval/bin/python tests/vlmeval_cpu.py ARGS          (or under torchrun)

PyPI's torchvision is a CUDA build that cannot be imported beside CPU torch, and about 30 of
VLMEvalKit's modules import it at their top although the datasets and models used in the tests
never call it. While VLMEvalKit is imported, a stand-in answers those imports (any use of it
raises); then it is removed again, so that transformers finds no torchvision when it picks image
processors, as in the main environment (the same processors in both, hence the same answers).
"""

import importlib.abc
import importlib.machinery
import runpy
import sys
import types


class _Absent(type):
    def __getattr__(cls, name):  # InterpolationMode.BICUBIC and the like, read at import time
        if name.startswith("__"):
            raise AttributeError(name)
        return cls

    def __call__(cls, *args, **kwargs):
        raise RuntimeError("torchvision is not installed (CPU test environment)")


class _Unavailable(metaclass=_Absent):
    pass


class _StandIn(types.ModuleType):
    __path__: list = []

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Unavailable


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname == "torchvision" or fullname.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _StandIn(spec.name)
        module.__version__ = "0.0"  # transformers reads it when a module checks the version at import
        return module

    def exec_module(self, module):
        pass


def main() -> None:
    # transformers' image modules decide at import time whether torchvision exists: import them first.
    import transformers.image_processing_utils  # noqa: F401
    import transformers.models.auto.image_processing_auto  # noqa: F401
    import transformers.models.auto.processing_auto  # noqa: F401

    finder = _Finder()
    sys.meta_path.insert(0, finder)
    try:
        import vlmeval.config  # noqa: F401  (imports vlmeval.api, vlmeval.vlm and vlmeval.dataset)
        import vlmeval.inference  # noqa: F401
    finally:
        sys.meta_path.remove(finder)
        for name in [name for name in sys.modules if name == "torchvision" or name.startswith("torchvision.")]:
            del sys.modules[name]
    sys.argv[0] = "focus_eval.vlmeval"
    runpy.run_module("focus_eval.vlmeval", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
