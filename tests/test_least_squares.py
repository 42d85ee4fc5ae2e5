"""Least squares on the sensitivity Jacobian: J = dr/dz against finite differences of the
original model's residuals (one and several residual blocks), LM convergence and resume on
the bundled IO cell, the LM loop's handling of failed runs and undetermined directions, the
identifiability report, and config errors for optimizers and losses."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
from test_tune import BASE, write

from gradgen.cli import main
from gradgen.losses import LOSSES, ResidualBlock, residual_weights, residuals
from gradgen.targets.arbor.model import GradientModel
from gradgen.tuning.checkpoint import Checkpoint, problem_description
from gradgen.tuning.config import load_config
from gradgen.tuning.identifiability import identifiability
from gradgen.tuning.lm import run_lm
from gradgen.tuning.optim import Budget
from gradgen.tuning.params import Parameterisation, TunedParameter
from gradgen.tuning.problem import Evaluation, Protocol, Stimulus, TuningProblem
from gradgen.tuning.run import setup

LOG_BASE = BASE.replace('transforms = {{ "io_dend.g_CaH" = "log" }}'.replace("{{", "{").replace("}}", "}"),
                        'transform = "auto"')


@pytest.fixture(scope="module")
def problem(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lsq")
    return setup(load_config(write(tmp, LOG_BASE)), tmp).problem


def original_residuals(problem: TuningProblem, z: np.ndarray) -> np.ndarray:
    """r of the ORIGINAL mechanisms (plain Arbor runs, no gradient system)."""
    return residuals(problem.blocks, problem.voltages(problem.param.model_values(z)))


def fd_jacobian(problem: TuningProblem, z: np.ndarray, h: float) -> np.ndarray:
    columns = []
    for k in range(len(z)):
        plus, minus = z.copy(), z.copy()
        plus[k] += h
        minus[k] -= h
        columns.append((original_residuals(problem, plus) - original_residuals(problem, minus)) / (2 * h))
    return np.array(columns).T


def column_errors(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.linalg.norm(a - b, axis=0) / np.linalg.norm(b, axis=0)


def test_auto_transform_is_log_for_conductances_shift_for_potentials(problem):
    assert [p.transform for p in problem.param.parameters] == ["log", "log", "shift"]


@pytest.fixture(scope="module")
def fd_point(problem):
    """A point off the start and central FD Jacobians of the original model there (steps
    1e-4 and 1e-3), shared by the carriers' J-vs-FD tests."""
    z = problem.param.z0() + np.array([0.2, -0.1, 0.01])
    return z, fd_jacobian(problem, z, 1e-4), fd_jacobian(problem, z, 1e-3)


def test_jacobian_matches_finite_differences_of_the_original(problem, fd_point):
    """dr/dz from one gradient run against central FD of the original model's residual
    vector, column by column in the 2-norm. z is θ-scaled (log: δz = δθ/θ; V_K scaled by its
    start), so the norm is the θ-scaled one. Measured: J vs FD(1e-4) ≤ 4.6e-6 per column;
    the FD's own convergence (steps 1e-3 vs 1e-4) ≤ 4.0e-5, so the agreement is at the FD's
    resolution; the bound 1e-3 is far below what a wrong slope or copy would cost (≥ 1)."""
    z, fine, coarse = fd_point
    evaluation = problem.evaluate(z)
    fd_convergence = column_errors(coarse, fine)
    error = column_errors(evaluation.jacobian, fine)
    print("J vs FD:", error, "FD(1e-3) vs FD(1e-4):", fd_convergence)
    assert np.all(fd_convergence < 1e-3), fd_convergence
    assert np.all(error < 1e-3), error
    # the same run's loss and gradient are ½‖r‖² and Jᵀr (one chain rule for every method)
    assert evaluation.loss == pytest.approx(0.5 * evaluation.residuals @ evaluation.residuals, rel=1e-12)
    np.testing.assert_allclose(evaluation.gradient, evaluation.jacobian.T @ evaluation.residuals,
                               rtol=1e-10, atol=1e-14)


def test_exact_carrier_jacobian_matches_finite_differences(problem, fd_point):
    """The same J from the exact carrier (what benchmarks/io_tuning.py runs LM with): one
    mechanism per cell solving u_k on the CV tree, the tied V_K's three copies as three
    columns summed by the chain rule. Against the same FD of the original model, same bound
    and reason as above. Measured: ≤ 6.6e-8 per column (the ion carrier: 4.6e-6)."""
    z, fine, _ = fd_point
    exact = TuningProblem(GradientModel.load(problem.model.directory, carrier="exact"), problem.spec,
                          problem.sites, list(problem.protocols.values()), problem.param)
    exact.set_blocks(problem.blocks)
    values = problem.param.model_values(z)
    assert exact.model.simulation(problem.spec, problem.sites, True, values).exact  # no fallback
    evaluation = exact.evaluate(z)
    error = column_errors(evaluation.jacobian, fine)
    print("exact carrier, J vs FD:", error)
    assert np.all(error < 1e-3), error
    # the same V: the ion carrier runs on the equivalent constant-radius cell, the exact one on
    # the original geometry (measured: losses 3e-12 apart, relative)
    assert evaluation.loss == pytest.approx(problem.evaluate(z).loss, rel=1e-9)


def test_several_protocols_and_probes(problem):
    """Three weighted blocks over two protocols (rest; a 0.1 nA step) and two probes
    (soma, a dendrite), one with a window: J vs FD of the original model as above, and the
    simulation count is one run per protocol. Measured: ≤ 4.8e-6 per column."""
    p0 = problem.protocol
    step = Protocol(p0.t_end, p0.dt, p0.sample_dt, windows=((20.0, 100.0),),
                    stimuli=(Stimulus('(location 0 0.5)', 20.0, 60.0, 0.1),), name="step")
    rest = Protocol(p0.t_end, p0.dt, p0.sample_dt, name="rest")
    multi = TuningProblem(problem.model, problem.spec, [problem.sites[0], '(location 1 0.5)'],
                          [rest, step], problem.param)
    truth = problem.param.z0() + np.array([0.3, -0.2, 0.02])
    v = multi.voltages(problem.param.model_values(truth))
    multi.set_blocks([ResidualBlock("rest", 0, v["rest"][0], rest.mask()),
                      ResidualBlock("step", 0, v["step"][0], step.mask(), weight=2.0),
                      ResidualBlock("step", 1, v["step"][1], step.mask(), weight=0.5)])
    assert not np.allclose(v["step"][0], v["rest"][0])  # the stimulus acts
    z = problem.param.z0()
    evaluation = multi.evaluate(z)
    assert multi.simulations_per_evaluation == 2
    assert evaluation.residuals.size == 120 + 2 * 80
    error = column_errors(evaluation.jacobian, fd_jacobian(multi, z, 1e-4))
    print("three blocks, J vs FD:", error)
    assert np.all(error < 1e-3), error


def test_lm_converges_and_resumes(problem, tmp_path):
    """From the start to the known target (3 parameters, one tied over 3 mechanisms).
    Measured: 1.16 → 0.19 → 0.0074 → 2.5e-5 → 1.3e-10 mV in 5 gradient runs; the bounds
    (12 runs, 1e-6 mV, parameters to 1e-5 relative) leave room for platform noise, not for
    first-order convergence (Adam: 0.8 mV after 4 runs in test_tune)."""
    checkpoint = Checkpoint(tmp_path / "lm.npz", problem_description(problem, "lm", {}))
    run = run_lm(problem, Budget(12, rms_mV=1e-6), checkpoint, progress=False)
    rows = run.history.rows
    assert [r["simulations"] for r in rows] == list(range(1, len(rows) + 1))
    print([r["rms_mV"] for r in rows], run.status)
    assert rows[-1]["best_rms_mV"] < 1e-6 and run.status == "reached stop_rms_mV", rows
    final = problem.param.physical(run.history.best_z)
    target = {"io_soma.g_CaL": 0.0012, "io_dend.g_CaH": 0.011, "V_K": -73.0}
    for name, value in target.items():
        assert final[name] == pytest.approx(value, rel=1e-5)
    assert run.start_jacobian.shape == (120, 3)
    # resume: an interrupted run continued from its checkpoint makes the same steps
    interrupted = Checkpoint(tmp_path / "interrupted.npz", problem_description(problem, "lm", {}))
    run_lm(problem, Budget(3), interrupted, progress=False)
    resumed = run_lm(problem, Budget(12, rms_mV=1e-6), interrupted, progress=False).history.rows
    assert [r["loss"] for r in resumed] == [r["loss"] for r in rows]


def test_lbfgs_reaches_the_target(problem):
    """L-BFGS-B on the sensitivity gradient, one gradient run per evaluation (cached by z).
    Measured: 1.16 mV → 2.3e-4 mV in 27 runs; the run stops at 1e-3 mV, well within the 60-run
    budget, where LM needs 5 runs to 1e-6 mV (test_lm_converges_and_resumes)."""
    from gradgen.tuning.lbfgs import run_lbfgs

    history = run_lbfgs(problem, Budget(60, rms_mV=1e-3), progress=False)
    rows = history.rows
    print(len(rows), rows[0]["rms_mV"], rows[-1]["best_rms_mV"])
    assert [r["simulations"] for r in rows] == list(range(1, len(rows) + 1))
    assert rows[-1]["best_rms_mV"] < 1e-3 < rows[0]["rms_mV"]


class _Residuals:
    """A residual function of z with a NaN region: tests the LM loop's logic (no simulation).

    r = (10·(z0 − 3), 1e-7·(z1 − 5)) from z = (1, 1): z1 is 1e8 times less determined than
    z0. For 1.9 < z0 < 2.1 the "run fails" (NaN): LM's first trial step, the Gauss–Newton
    step cut to the initial trust radius 1, lands at z0 = 2."""

    def __init__(self):
        self.param = Parameterisation([TunedParameter("a", ("m.a",), 1.0), TunedParameter("b", ("m.b",), 1.0)])
        self.loss = LOSSES["least_squares"]
        self.simulations_per_evaluation = 1
        self.calls: list[np.ndarray] = []

    def evaluate(self, z):
        z = np.asarray(z, float)
        self.calls.append(z.copy())
        r = np.array([10.0 * (z[0] - 3.0), 1e-7 * (z[1] - 5.0)])
        jacobian = np.diag([10.0, 1e-7])
        if 1.9 < z[0] < 2.1:
            r = np.full(2, np.nan)
        return Evaluation(0.5 * float(r @ r), r, jacobian.T @ r, r, jacobian)


def test_lm_rejects_failed_runs_and_keeps_undetermined_directions_still():
    """A Gauss–Newton step would move z1 by 4 (its residual's lever is 1e-7); LM keeps it
    within 1e-6 of its start while z0 converges, and trial steps into the NaN band are
    rejected (recorded as null, never the best) and retried shorter."""
    fake = _Residuals()
    run = run_lm(fake, Budget(40), progress=False)
    best = np.array(run.history.best_z)
    assert best[0] == pytest.approx(3.0, abs=1e-6)
    assert abs(best[1] - 1.0) < 1e-6
    failed = [r for r in run.history.rows if r["loss"] is None]
    assert failed, "the first trial step lands in the NaN band"
    assert all(r["best_loss"] is not None and np.isfinite(r["best_loss"]) for r in run.history.rows)


def test_identifiability_names_the_undetermined_combination():
    names = ["a", "b", "c"]
    jacobian = np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.5]])  # a+b moves, a−b not
    report = identifiability(jacobian, names)
    assert report["identified"] == 2
    combination = report["undetermined"][0]["combination"]
    assert set(combination) == {"a", "b"}
    assert combination["a"] == pytest.approx(-combination["b"])


@pytest.mark.parametrize("old, new, message", [
    ("population = 6", 'population = 6\nmethod = "newton"', r"tune.toml:\d+:\d+: \[optimizer\] unknown method 'newton'"),
    ("[output]", '[loss]\nkind = "huber"\n\n[output]', r"tune.toml:\d+:\d+: \[loss\] unknown kind 'huber'"),
    ("population = 6", 'population = 6\ndistributed = "local"', r"tune.toml:\d+:\d+: \[optimizer\] distributed must be"),
])
def test_unknown_optimizer_or_loss_is_exit_2_with_position(tmp_path, capsys, old, new, message):
    path = write(tmp_path, LOG_BASE.replace(old, new, 1))
    assert main(["tune", str(path)]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert "hint" in err and "Traceback" not in err


def test_cli_lm_writes_identifiability(tmp_path):
    path = write(tmp_path, LOG_BASE.replace("iterations = 4", 'iterations = 8\nmethod = "lm"'))
    assert main(["tune", str(path)]) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["method"] == "lm" and results["final_rms_mV"] < 1e-3
    assert set(results["identifiability"]) == {"start", "end"}
    assert len(results["identifiability"]["start"]["singular_values"]) == 3
    for name in ("identifiability.png", "lm.npz", "loss.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0


PROTOCOLS = """
[[protocol]]
name = "rest"

[[protocol]]
name = "step"
stimuli = [{ location = "soma", delay = 20.0, duration = 60.0, amplitude = 0.1 }]
weight = 2.0
"""


def test_config_with_two_protocols_runs_lm(tmp_path):
    """Two protocols from the config, each with its own target made from the known
    parameters: LM fits both (measured: 1.08 → 0.11 → 0.0029 → 1.9e-6 mV in 4 evaluations,
    8 simulations; the stop is at 1e-3 mV)."""
    text = LOG_BASE.replace("[tune]", PROTOCOLS + "\n[tune]").replace(
        "iterations = 4", 'iterations = 10\nmethod = "lm"\nstop_rms_mV = 1e-3')
    results = main(["tune", str(write(tmp_path, text))])
    assert results == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["protocols"] == ["rest", "step"]
    assert results["final_rms_mV"] < 1e-3
    assert results["simulations"] == 2 * results["iterations"]
    for name in ("target_rest.npz", "target_step.npz", "traces_step.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0


@pytest.mark.parametrize("addition, message", [
    ('[[protocol]]\nname = "a"\nstimuli = [{ location = "soma", delay = 1.0 }]\n',
     r"tune.toml:\d+:\d+: \[\[protocol\]\] a: a stimulus is a table with amplitude, delay, duration, location"),
    ('[[protocol]]\nname = "a"\n\n[[protocol]]\nname = "a"\n', r"tune.toml:\d+:\d+: \[\[protocol\]\] name 'a' is used twice"),
    ('[[protocol]]\nname = "a"\nstimulus = []\n', r"tune.toml:\d+:\d+: \[\[protocol\]\] a: unknown key 'stimulus'"),
])
def test_protocol_errors_are_exit_2_with_position(tmp_path, capsys, addition, message):
    path = write(tmp_path, LOG_BASE.replace("[tune]", addition + "\n[tune]"))
    assert main(["tune", str(path)]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err


def test_target_files_must_name_known_protocols(tmp_path, capsys):
    npz = tmp_path / "t.npz"
    np.savez(npz, t=np.arange(120.0), v=np.zeros(120))
    text = LOG_BASE.replace("[tune]", PROTOCOLS + "\n[tune]")
    target = text[text.index("[target.values]"):text.index("[optimizer]")]
    text = text.replace(target, f'[target]\nfiles = {{ rest = "{npz}", stp = "{npz}" }}\n\n')
    assert main(["tune", str(write(tmp_path, text))]) == 2
    err = capsys.readouterr().err
    assert re.search(r"tune.toml:\d+:\d+: \[target\] files: unknown protocol 'stp'", err), err


def test_residual_weights_scale_the_voltage_error():
    """r = weights · (V − V*)[mask], blocks weighted so that ½‖r‖² is the weighted mean."""
    mask = np.array([True, True, False])
    blocks = [ResidualBlock("a", 0, np.zeros(3), mask, 1.0), ResidualBlock("b", 0, np.zeros(3), mask, 3.0)]
    v = {"a": np.array([[1.0, 1.0, 9.0]]), "b": np.array([[2.0, 2.0, 9.0]])}
    r = residuals(blocks, v)
    np.testing.assert_allclose(r, residual_weights(blocks) * np.array([1.0, 1.0, 2.0, 2.0]))
    assert 0.5 * r @ r == pytest.approx(0.5 * (1.0 * 1.0 + 3.0 * 4.0) / 4.0)
    assert LOSSES["least_squares"].value(blocks, v) == pytest.approx(0.5 * r @ r)


def test_differential_evolution_reduces_the_loss_reproducibly(problem):
    """DE's generations are populations of original cells; with its seed fixed a rerun is
    identical. Measured (population 8): best 1.13 → 0.38 mV in 5 generations."""
    from gradgen.tuning.de import run_de

    first = run_de(problem, Budget(5), population=8, progress=False)
    again = run_de(problem, Budget(5), population=8, progress=False)
    assert [r["simulations"] for r in first.rows] == [8, 16, 24, 32, 40]
    assert first.rows[-1]["best_loss"] < first.rows[0]["best_loss"]
    assert [r["loss"] for r in again.rows] == [r["loss"] for r in first.rows]


def test_dask_population_equals_in_process(problem, tmp_path):
    """CMA-ES with its generations evaluated by two LocalCluster workers (each building the
    problem from the config) makes the same run as in one process, for the same seed."""
    pytest.importorskip("distributed")
    from gradgen.tuning.distributed import DaskPopulation
    from gradgen.tuning.optim import run_cmaes

    config = load_config(write(tmp_path, LOG_BASE))
    local = run_cmaes(problem, Budget(3), population=6, sigma0=0.1, seed=3, progress=False)
    with DaskPopulation(config, tmp_path / "workers", workers=2) as losses:
        remote = run_cmaes(problem, Budget(3), population=6, sigma0=0.1, seed=3, progress=False,
                           population_losses=losses)
    assert [r["loss"] for r in remote.rows] == [r["loss"] for r in local.rows]
    assert remote.best_z == local.best_z
