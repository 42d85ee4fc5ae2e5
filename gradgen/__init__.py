"""gradgen: gradient mechanisms for Arbor, generated from NMODL.

The public API in one place: convert `.mod` files (:func:`convert`), describe a cell with
Arbor's own calls (:class:`Decor`, :class:`CellSpec`), simulate with gradients
(:class:`GradientModel`) and turn traces into loss gradients (:func:`mse_gradient`).

Names are imported on first use, so that ``import gradgen.nmodl`` (the simulator-free
compiler front end) needs neither Arbor nor the tuning stack.
"""
from __future__ import annotations

import importlib
from typing import Any

from gradgen.version import __version__

_PUBLIC = {
    "convert": "gradgen.convert",
    "GradgenError": "gradgen.errors",
    "ParamRef": "gradgen.params",
    "parse_param_list": "gradgen.params",
    "Manifest": "gradgen.manifest",
    "mse_gradient": "gradgen.losses",
    "CellSpec": "gradgen.targets.arbor.decor",
    "Decor": "gradgen.targets.arbor.decor",
    "SpikeInput": "gradgen.targets.arbor.decor",
    "recorded_cells": "gradgen.targets.arbor.decor",
    "GradientModel": "gradgen.targets.arbor.model",
    "Traces": "gradgen.targets.arbor.model",
    "HomeostaticConfig": "gradgen.homeostasis.convert",
    "RateTarget": "gradgen.homeostasis.convert",
    "VoltageTarget": "gradgen.homeostasis.convert",
    "convert_homeostatic": "gradgen.homeostasis.convert",
    "HomeostaticRun": "gradgen.homeostasis.run",
    "run_tuning": "gradgen.tuning.run",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'gradgen' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
