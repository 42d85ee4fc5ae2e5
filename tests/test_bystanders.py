"""Point processes and bystanders in `gradgen check`.

A mechanism without a current whose writes no other input reads cannot move V: it runs as
its original beside the gradient mechanisms (forward fidelity is what can be checked), and
its parameters are refused as θ. Point processes are driven by a spike train in `check`.
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import MECHANISMS, ROOT

from gradgen.checks.cells import check_cell
from gradgen.convert import convert
from gradgen.nmodl.parser import parse_file
from gradgen.params import ParamRef
from gradgen.sensitivity.bystanders import bystanders
from gradgen.targets.arbor.model import GradientModel

XPULSE = ROOT / "tests" / "data" / "bystanders" / "xpulse.mod"


def gradgen(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gradgen.cli", *args], capture_output=True, text=True)


def test_bystander_rule():
    hh, xpulse = parse_file(MECHANISMS / "hh.mod"), parse_file(XPULSE)
    assert bystanders([hh, xpulse]) == {"xpulse"}
    # a channel that reads x's xd makes xpulse part of the model
    reader = parse_file(MECHANISMS / "hh.mod")
    reader.ions[0].read.append("xd")
    reader.ions[0].name = "x"
    assert bystanders([reader, xpulse]) == set()


def test_bystander_runs_beside_gradient_mechanisms(tmp_path):
    convert([XPULSE, MECHANISMS / "hh.mod"], tmp_path / "out", None)
    model = GradientModel.load(tmp_path / "out")
    assert [p.mechanism for p in model.params] == ["hh"] * 4  # xpulse's parameters are not θ
    spec, sites = check_cell(model, 0.1, 20)
    assert spec.ions["x"]["diff"]  # xd needs a diffusive ion
    grad = model.simulate(spec, sites, 20, 0.025)
    plain = model.simulate(spec, sites, 20, 0.025, gradients=False)
    assert np.max(plain.v) > 0  # spikes: the background acts
    assert np.max(np.abs(grad.v - plain.v)) <= 1e-8  # measured 2e-12 mV


def test_bystander_parameter_is_refused_with_position(tmp_path):
    result = gradgen("convert", str(XPULSE), str(MECHANISMS / "hh.mod"), "-o", str(tmp_path / "o"),
                     "--params", "xpulse.alpha")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "xpulse.mod:" in lines[0] and "cannot move V" in lines[0]


@pytest.mark.parametrize("files, params", [
    (["expsyn.mod", "hh.mod"], "expsyn.tau,expsyn.e,hh.gkbar"),
    ([str(XPULSE), "hh.mod"], "hh.gnabar,hh.gl"),
])
def test_check_takes_point_processes(files, params):
    paths = [f if "/" in f else str(MECHANISMS / f) for f in files]
    result = gradgen("check", *paths, "--params", params, "--tfinal", "12", "--dt", "0.01",
                     "--tolerance", "0.02", "--json")
    report = json.loads(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    # measured: forward ≤ 4e-11 mV; dV/dθ ≤ 5e-3 of FD at dt 0.01
    assert report["forward_max_abs_diff_mV"] <= 1e-8
    assert all(p["rel_error"] <= 0.02 for p in report["parameters"])


def test_check_where_no_parameter_moves_v_says_so():
    idle = str(ROOT / "tests" / "data" / "bystanders" / "idle.mod")
    result = gradgen("check", idle, "--params", "idle.unused", "--tfinal", "2", "--dt", "0.025")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "does not move V" in result.stdout and "nothing was checked" in result.stdout
    result = gradgen("check", idle, "--params", "idle.unused,idle.e", "--tfinal", "2", "--dt", "0.025")
    assert result.returncode == 0, result.stdout + result.stderr


def test_nernst_method_with_constant_or_followed_concentrations(tmp_path):
    import arbor

    from gradgen.checks.cells import CABLE_SITES, cable_cell_spec
    from gradgen.checks.fd import check_model

    def model_with(files: list[str], params: list[str], name: str) -> tuple:
        convert([MECHANISMS / f for f in files], tmp_path / name, [ParamRef.parse(p) for p in params])
        model = GradientModel.load(tmp_path / name)
        spec = cable_cell_spec([f.removesuffix(".mod") for f in files], stimulus_nA=0.1)
        spec.decor.set_ion("ca", method=arbor.mechanism("nernst/x=ca"))  # Arbor's own nernst
        return model, spec

    # constant concentrations: E_Ca from Nernst is a constant, the gradient complete
    model, spec = model_with(["cahva.mod", "hh.mod"], ["cahva.gbar", "hh.gkbar"], "constant")
    report = check_model(model, spec, CABLE_SITES, 12, 0.01)
    assert report.forward_max_abs_diff_mV <= 1e-8  # measured 4e-12 mV
    assert all(p["rel_error"] <= 0.02 for p in report.parameters), report.parameters
    # cad makes cai (so E_Ca) depend on θ: cahva follows E_Ca through cai (tests/test_nernst.py
    # compares that gradient with FD), so the method is accepted
    model, spec = model_with(["cad.mod", "cahva.mod", "hh.mod"], ["cahva.gbar"], "pool")
    assert model.mechanisms["cahva"].nernst == ["ca"]
    assert model.simulate(spec, CABLE_SITES, 1, 0.025).dv is not None
