"""Simulator targets (see :mod:`.base`); each is a subpackage exposing ``TARGET``."""
from __future__ import annotations

import importlib

from gradgen.errors import GradgenError
from gradgen.targets.base import Target

TARGETS = ("arbor", "neuron")


def get_target(name: str) -> Target:
    """The target called ``name`` (imported on first use)."""
    if name not in TARGETS:
        raise GradgenError(f"unknown target '{name}'", hint="targets: " + ", ".join(TARGETS))
    return importlib.import_module(f"gradgen.targets.{name}").TARGET
