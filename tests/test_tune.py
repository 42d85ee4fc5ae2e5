"""Tuning: z-gradients vs FD (ties, transforms), population runs, short Adam/CMA-ES runs,
resume, the CLI, and clear config errors."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT

from gradgen.cli import main
from gradgen.errors import GradgenError
from gradgen.tuning.checkpoint import Checkpoint, problem_description
from gradgen.tuning.config import load_config
from gradgen.tuning.optim import Budget, run_adam, run_cmaes
from gradgen.tuning.params import SHIFT_UNIT, TunedParameter
from gradgen.tuning.problem import Protocol
from gradgen.tuning.run import setup

BASE = f"""
[model]
morphology = "{ROOT}/morphologies/io_like.swc"
cv_policy = "branch:1"
mechanisms = ["{ROOT}/mechanisms/io/io_soma.mod", "{ROOT}/mechanisms/io/io_dend.mod",
              "{ROOT}/mechanisms/io/io_axon.mod"]
v_init = -60.0
probe = "soma"

[model.paint]
soma = ["io_soma"]
dend = ["io_dend"]
axon = ["io_axon"]

[simulation]
t_end = 120.0
dt = 0.025
sample_dt = 1.0

[tune]
parameters = ["io_soma.g_CaL", "io_dend.g_CaH", "V_K"]
transforms = {{ "io_dend.g_CaH" = "log" }}

[tune.tie]
V_K = ["io_soma.V_K", "io_dend.V_K", "io_axon.V_K"]

[target.values]
"io_soma.g_CaL" = 0.0012
"io_dend.g_CaH" = 0.011
"V_K" = -73.0

[optimizer]
iterations = 4
learning_rate = 0.05
population = 6

[output]
directory = "out"
"""


def write(tmp_path: Path, text: str = BASE) -> Path:
    path = tmp_path / "tune.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def problem(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tune")
    return setup(load_config(write(tmp)), tmp).problem


def test_z_gradient_matches_finite_differences(problem):
    """dL/dz from the gradient system (a tie summed over 3 copies, a log transform) against
    central FD of the original model's loss. Measured: ≤ 5e-6 relative (FD steps 1e-4 and
    1e-5 of z agree to 3e-6); the bound 1e-3 is far below what a missing copy or slope
    would cost (tens of %)."""
    z = problem.param.z0() + np.array([0.0, 0.1, 0.0])
    analytic = problem.evaluate(z).gradient
    fd = []
    for k in range(len(z)):
        h = 1e-5 * max(abs(z[k]), 1.0)
        plus, minus = z.copy(), z.copy()
        plus[k] += h
        minus[k] -= h
        fd.append((problem.loss_of(problem.trace(problem.param.model_values(plus)))
                   - problem.loss_of(problem.trace(problem.param.model_values(minus)))) / (2 * h))
    fd = np.array(fd)
    assert np.all(np.abs(analytic - fd) <= 1e-3 * np.abs(fd)), (analytic, fd)


def test_population_equals_single_runs(problem):
    """N original cells in one simulation give each cell's own trace."""
    zs = [problem.param.z0(), problem.param.z0() * 1.05]
    population = problem.population(zs)
    for z, evaluation in zip(zs, population):
        single = problem.trace(problem.param.model_values(z))
        assert np.max(np.abs(evaluation.v - single)) < 1e-9


def test_adam_and_cmaes_reduce_the_loss_and_resume(problem, tmp_path):
    checkpoint = Checkpoint(tmp_path / "adam.npz", problem_description(problem, "adam", {"learning_rate": 0.05}))
    short = run_adam(problem, Budget(2), 0.05, checkpoint, progress=False)
    resumed = run_adam(problem, Budget(4), 0.05, checkpoint, progress=False)
    assert resumed.rows[:2] == short.rows
    losses = [r["loss"] for r in resumed.rows]
    assert losses[-1] < losses[0]
    cmaes = run_cmaes(problem, Budget(3), population=6, sigma0=0.1, progress=False)
    assert cmaes.simulations == 18
    checkpoint = Checkpoint(tmp_path / "c.npz", problem_description(problem, "cmaes", {"population": 6}))
    run_cmaes(problem, Budget(2), population=6, sigma0=0.1, checkpoint=checkpoint, progress=False)
    resumed = run_cmaes(problem, Budget(3), population=6, sigma0=0.1, checkpoint=checkpoint,
                        progress=False)
    assert resumed.rows == [{**r, "seconds": s["seconds"]} for r, s in zip(cmaes.rows, resumed.rows)]
    # CMA-ES never evaluates z0 itself; with its seed fixed, generation 1's best (2.9) falls
    # to 0.9 by generation 3 (measured)
    assert cmaes.rows[-1]["best_loss"] < cmaes.rows[0]["loss"]


def test_cli_tune_writes_results(tmp_path):
    assert main(["tune", str(write(tmp_path))]) == 0
    out = tmp_path / "out"
    results = json.loads((out / "results.json").read_text())
    assert results["final_rms_mV"] < results["start_rms_mV"]
    assert [p["name"] for p in results["parameters"]] == ["io_soma.g_CaL", "io_dend.g_CaH", "V_K"]
    assert results["parameters"][2]["copies"] == ["io_soma.V_K", "io_dend.V_K", "io_axon.V_K"]
    for name in ("loss.png", "traces.png", "target.npz", "adam.npz"):
        assert (out / name).stat().st_size > 0


def test_transforms_round_trip():
    for kind in ("scaled", "log", "softplus", "shift"):
        p = TunedParameter("g", ("m.g",), 0.02, kind, (0.001, 1.0))
        assert p.value(p.z0) == pytest.approx(0.02)
        for value in (0.005, 0.3):
            assert p.value(p.z_of(value)) == pytest.approx(value)
        h = 1e-6
        assert p.slope(0.3) == pytest.approx((p.value(0.3 + h) - p.value(0.3 - h)) / (2 * h), rel=1e-6)
    # shift: one unit of z is SHIFT_UNIT (10 mV for a potential) from any start, 0 or negative
    for start in (-75.0, 0.0):
        p = TunedParameter("E", ("m.E",), start, "shift")
        assert (p.z0, p.value(1.0), p.z_of(start - 20.0)) == (0.0, start + SHIFT_UNIT, -20.0 / SHIFT_UNIT)


@pytest.mark.parametrize("old, new, message", [
    ('soma = ["io_soma"]', 'soma = ["io_somma"]', r"tune.toml:\d+:\d+: \[model.paint\] soma: unknown mechanism 'io_somma'"),
    ('"io_soma.g_CaL", "io_dend', '"io_soma.g_Cal", "io_dend', r"tune.toml:\d+:\d+: \[tune\] parameters: unknown parameter 'io_soma.g_Cal'"),
    ('dend = ["io_dend"]', 'dendrite = ["io_dend"]', r"tune.toml:\d+:\d+: \[model.paint\] unknown region 'dendrite'"),
    ("io_like.swc", "io_missing.swc", r"tune.toml:\d+:\d+: morphology: file .*io_missing.swc not found"),
    ("io_axon.mod", "io_axn.mod", r"mechanisms: file .*io_axn.mod not found"),
    ('"io_dend.g_CaH" = 0.011', '"io_dend.g_h" = 0.011', r"\[target\] values: 'io_dend.g_h' is not tuned"),
    ('"log"', '"sqrt"', r"unknown transform 'sqrt'"),
    ('V_K = ["io_soma.V_K"', 'V_K = ["io_soma.E_K"', r"\[tune.tie\] V_K: unknown parameter 'io_soma.E_K'"),
])
def test_config_errors_are_clear(tmp_path, old, new, message):
    assert old in BASE
    with pytest.raises(GradgenError) as error:
        load_config(write(tmp_path, BASE.replace(old, new, 1)))
    assert re.search(message, str(error.value)), str(error.value)
    assert error.value.hint or "not found" in str(error.value)


def test_empty_region_and_cli_exit_status(tmp_path, capsys):
    swc = tmp_path / "no_axon.swc"
    swc.write_text("1 1 0 0 0 5 -1\n2 1 0 10 0 5 1\n3 3 0 20 0 1 2\n4 3 0 60 0 1 3\n")
    path = write(tmp_path, BASE.replace(f"{ROOT}/morphologies/io_like.swc", str(swc)))
    assert main(["tune", str(path)]) == 2
    err = capsys.readouterr().err
    assert re.search(r"region 'axon' is empty in no_axon.swc", err), err
    assert "Traceback" not in err


def test_loss_windows_select_samples():
    protocol = Protocol(10.0, sample_dt=1.0, windows=((2.0, 4.0), (8.0, 20.0)))
    assert list(protocol.times()[protocol.mask()]) == [2.0, 3.0, 8.0, 9.0]
    with pytest.raises(GradgenError, match="contain no sample"):
        Protocol(10.0, sample_dt=1.0, windows=((10.5, 11.0),)).mask()
