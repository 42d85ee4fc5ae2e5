"""Shared fixtures: converted parameter sets, built once per test session."""
from __future__ import annotations

from pathlib import Path

import pytest

from gradgen.convert import convert
from gradgen.params import ParamRef
from gradgen.targets.arbor.model import GradientModel

ROOT = Path(__file__).resolve().parent.parent
MECHANISMS = ROOT / "mechanisms"
C4A = ROOT.parent / "shared" / "data" / "C4A.swc"


@pytest.fixture(scope="session")
def make_model(tmp_path_factory):
    """``make_model(files, params, scheme, carrier)`` -> GradientModel, cached per argument set."""
    cache: dict = {}

    def make(files: list[str], params: list[str], scheme: str = "corrected", carrier: str = "exact") -> GradientModel:
        key = (tuple(files), tuple(params), scheme, carrier)
        if key not in cache:
            out = tmp_path_factory.mktemp("converted")
            convert([MECHANISMS / f for f in files], out, [ParamRef.parse(p) for p in params], scheme)
            cache[key] = GradientModel.load(out, carrier=carrier)
        return cache[key]

    return make
