"""The example scripts, loaded as modules: ``examples/`` is not a package."""

from __future__ import annotations

import importlib.util
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

from scripts.docfigures.core import ROOT


@cache
def load(relative: str) -> ModuleType:
    """``examples/measure.py`` and the like, imported once by path."""
    path = ROOT / relative
    name = "descent_example_" + Path(relative).with_suffix("").as_posix().replace("/", "_")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while it runs
    spec.loader.exec_module(module)
    return module


def measure() -> ModuleType:
    return load("examples/measure.py")
