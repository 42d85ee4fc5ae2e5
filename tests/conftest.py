"""Shared fixtures: converted parameter sets, built once per test session."""
from __future__ import annotations

import json
import subprocess
import sys
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


def check_json(files: list[Path], params: list[str], *extra: str) -> dict:
    """``gradgen check FILES --params … --tfinal 20 --json`` in a subprocess, as a user runs it;
    its JSON result (a failed comparison, exit 1, still reports)."""
    proc = subprocess.run(
        [sys.executable, "-m", "gradgen.cli", "check", *map(str, files), "--params", ",".join(params),
         "--tfinal", "20", "--json", *extra], capture_output=True, text=True, cwd=ROOT, timeout=1800)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])
