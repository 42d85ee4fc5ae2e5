"""Homeostatic control: learned parameters inside a running Arbor simulation.

Real Arbor, real modcc; the reference for gradients is the ordinary gradient system (whose
dV/dθ tests/test_gradients.py checks against finite differences of the original .mod files).
"""
from __future__ import annotations

import dataclasses

import arbor
import numpy as np
import pytest
from arbor import units as U
from conftest import MECHANISMS

import gradgen
from gradgen.homeostasis.convert import (
    HomeostaticConfig,
    RateTarget,
    VoltageTarget,
    convert_homeostatic,
)
from gradgen.homeostasis.run import HomeostaticRun
from gradgen.homeostasis.stability import (
    StabilityWarning,
    measured_report,
    passive_report,
)
from gradgen.params import ParamRef

SITE = "(location 0 0.5)"
DT = 0.025


def _refs(names: list[str]) -> list[ParamRef]:
    return [ParamRef.parse(n) for n in names]


def _single_cv(decor: gradgen.Decor) -> gradgen.CellSpec:
    tree = arbor.segment_tree()
    tree.append(arbor.mnpos, arbor.mpoint(0, 0, 0, 5), arbor.mpoint(10, 0, 0, 5), tag=1)
    return gradgen.CellSpec(arbor.morphology(tree), decor, arbor.label_dict(), arbor.cv_policy_single())


def _decor(vm: float) -> gradgen.Decor:
    decor = gradgen.Decor()
    decor.set_property(Vm=vm * U.mV, cm=0.01 * U.F / U.m2, rL=100 * U.Ohm * U.cm)
    return decor


def _homeostatic(tmp_path, files: list[str], params: list[str], config: HomeostaticConfig,
                 name: str = "h") -> gradgen.GradientModel:
    convert_homeostatic([MECHANISMS / f for f in files], tmp_path / name, _refs(params), config)
    return gradgen.GradientModel.load(tmp_path / name)


def test_zero_alpha_and_lambda_is_the_gradient_system(tmp_path, make_model):
    """α = 0, λ = 0: θ read from the fast-diffusing ion and the forgetting factor 1 leave the
    ordinary (FD-checked) gradient system unchanged, on a cable with several CVs (the ion
    carrier's, on which the homeostatic hub runs)."""
    params = ["hh.gnabar", "hh.gkbar"]
    plain = dataclasses.replace(make_model(["hh.mod"], params), carrier="ion")
    homeo = _homeostatic(tmp_path, ["hh.mod"], params, HomeostaticConfig(0.0, 0.0, VoltageTarget(-65.0)))
    tree = arbor.segment_tree()
    tree.append(arbor.mnpos, arbor.mpoint(0, 0, 0, 0.5), arbor.mpoint(200, 0, 0, 0.5), tag=1)
    decor = _decor(-65.0)
    decor.paint("(all)", arbor.density("hh"))
    decor.place("(location 0 0)", arbor.i_clamp(5 * U.ms, 40 * U.ms, 0.05 * U.nA))
    cell = gradgen.CellSpec(arbor.morphology(tree), decor, arbor.label_dict(),
                            arbor.cv_policy_fixed_per_branch(20))
    site = "(location 0 0.3)"
    ref = plain.simulate(cell, [site], 50.0, DT)
    got = HomeostaticRun(homeo, cell, site).run(50.0, DT, DT)
    assert np.count_nonzero((ref.v[0][1:] > -10) & (ref.v[0][:-1] <= -10)) >= 2  # spikes happened
    # θ stays put up to the rounding drift of the θ ions' diffusion solve (measured 4e-11).
    np.testing.assert_allclose(got.theta[:, -1], [0.12, 0.036], rtol=1e-9)
    dv_max = np.max(np.abs(got.v - ref.v[0]))
    scale = np.max(np.abs(ref.dv[0]), axis=1, keepdims=True)
    du_max = np.max(np.abs(got.u - ref.dv[0]) / scale)
    print(f"\nmax |V - V_ref| {dv_max:.3g} mV, max |u - u_ref|/max|u_ref| {du_max:.3g}")
    # Measured 3.7e-8 mV and 1e-9: that drift, amplified at spike fronts; 100x margin.
    assert dv_max < 4e-6
    assert du_max < 1e-7


def _passive_cell() -> tuple[gradgen.CellSpec, float]:
    """One CV with pas (g 0.001, e −70) held at −60 mV by a constant current."""
    area_cm2 = 2 * np.pi * 5 * 10 * 1e-8
    i_ext = 0.001 * 10.0  # mA/cm²: g·(V − E) at V = −60
    decor = _decor(-70.0)
    decor.paint("(all)", arbor.density("pas", {"g": 0.001, "e": -70.0}))
    decor.place(SITE, arbor.i_clamp(0 * U.ms, 1e9 * U.ms, i_ext * area_cm2 * 1e6 * U.nA))
    return _single_cv(decor), i_ext


def test_passive_stability_bound(tmp_path, capsys):
    """Learning pas.g towards V* = −65 mV (equilibrium g* = 0.002): below the oscillation
    bound the voltage converges monotonically, above it oscillates, above the time-step
    bound it does not converge at all."""
    cell, i_ext = _passive_cell()
    v_target, lam = -65.0, 1e-4
    bound = passive_report(i_ext, 1.0, -70.0, v_target, 0.001, 0.0, lam, DT)
    print(f"\n{bound.summary()}")
    results = {}
    for label, alpha in [("below", 0.3 * bound.alpha_oscillation), ("above", 4 * bound.alpha_oscillation),
                         ("diverging", 1.5 * bound.alpha_divergence)]:
        model = _homeostatic(tmp_path, ["pas.mod"], ["pas.g"],
                             HomeostaticConfig(alpha, lam, VoltageTarget(v_target)), label)
        tr = HomeostaticRun(model, cell, SITE).run(150.0, DT, DT)
        error = tr.v - v_target
        crossings = np.count_nonzero(np.diff(np.sign(error[tr.t > 2.0])) != 0)
        results[label] = (crossings, float(np.max(np.abs(error[tr.t > 100.0]))), tr.theta[0, -1])
        print(label, f"alpha {alpha:.4g}: {crossings} crossings of V*, late max |V - V*| "
              f"{results[label][1]:.3g} mV, g {tr.theta[0, -1]:.6g}")
    # Below: no crossing and converged (measured 0 crossings, 1e-5 mV); above: oscillation
    # (measured tens of crossings) that still converges; diverging: a sustained swing of
    # about 1 mV with g hitting its lower bound 0 (measured).
    assert results["below"][0] == 0 and results["below"][1] < 1e-3
    assert results["above"][0] >= 5 and results["above"][1] < 1e-3
    assert results["diverging"][1] > 0.3
    assert abs(results["below"][2] - 0.002) < 1e-6


def test_measured_linearisation_matches_passive_analysis(tmp_path):
    """The numerical resting-point check finds the analytic a and κ of the passive cell
    (linearised at its start, V = −60 mV) and warns for an α beyond the bounds."""
    cell, i_ext = _passive_cell()
    model = _homeostatic(tmp_path, ["pas.mod"], ["pas.g"], HomeostaticConfig(5.0, 1e-4, VoltageTarget(-65.0)))
    measured = measured_report(model, cell, SITE, DT)
    analytic = passive_report(i_ext, 1.0, -70.0, -60.0, 0.001, 5.0, 1e-4, DT)
    # Central differences of a linear cell: measured agreement ~1e-6 (the rest's tail).
    assert measured.a == pytest.approx(analytic.a, rel=1e-4)
    assert measured.kappa == pytest.approx(analytic.kappa, rel=1e-4)
    with pytest.warns(StabilityWarning, match="diverges"):
        measured.warn()


def test_forgetting_bounds_the_sensitivities(tmp_path):
    """A tonically firing HH cell: with λ = 0, dV/dgnabar grows with time (the spike phase
    drifts further with every period); with λ = 1e-3 /ms it stays bounded."""
    decor = _decor(-65.0)
    decor.paint("(all)", arbor.density("hh"))
    decor.place(SITE, arbor.i_clamp(0 * U.ms, 1e9 * U.ms, 0.04 * U.nA))
    cell = _single_cv(decor)
    growth = {}
    for lam in (0.0, 1e-3):
        model = _homeostatic(tmp_path, ["hh.mod"], ["hh.gnabar"],
                             HomeostaticConfig(0.0, lam, VoltageTarget(-65.0)), f"lam{lam:g}")
        tr = HomeostaticRun(model, cell, SITE).run(6000.0, DT, DT)
        u = np.abs(tr.u[0])
        early = u[(tr.t > 1000) & (tr.t < 2000)].max()
        late = u[tr.t > 5000].max()
        growth[lam] = late / early
    print(f"\nmax|u| growth from 1-2 s to 5-6 s: lambda 0: {growth[0.0]:.3g}x, lambda 1e-3: {growth[1e-3]:.3g}x")
    # Measured: 3.0x (linear growth) without forgetting, 1.16x with it.
    assert growth[0.0] > 2.0
    assert growth[1e-3] < 1.3


def test_rate_target_settles(tmp_path):
    """Shortened rate experiment: an HH cell in noise fires ~28 Hz; learning gnabar, gkbar and
    the input gain brings the counted rate to 5 Hz within 10 %, and the parameters settle."""
    config = HomeostaticConfig(
        alpha=2e-8, lam=1e-4, target=RateTarget(5.0, tau_rate=5000.0),
        noise={"mu": 0.002, "sigma": 0.002, "tau": 5.0},
        bounds={"hh.gnabar": (0.06, 0.24), "hh.gkbar": (0.018, 0.072), "noise.gain": (0.1, 2.0)})
    model = _homeostatic(tmp_path, ["hh.mod"], ["hh.gnabar", "hh.gkbar", "noise.gain"], config)
    decor = _decor(-65.0)
    decor.paint("(all)", arbor.density("hh"))
    decor.paint("(all)", arbor.density("noise"))
    t_end = 200_000.0
    tr = HomeostaticRun(model, _single_cv(decor), SITE).run(t_end, 0.05, 100.0)
    start_rate = tr.spike_rate(0, 3_000)
    final_rate = tr.spike_rate(t_end - 100_000, t_end)
    late = tr.theta[:, tr.t >= t_end - 100_000]
    drift = (late.max(axis=1) - late.min(axis=1)) / late.mean(axis=1)
    print(f"\nrate {start_rate:.2f} Hz -> {final_rate:.2f} Hz (target 5); theta {tr.theta[:, -1]}, "
          f"late drift {drift}")
    assert start_rate > 15.0
    assert abs(final_rate - 5.0) <= 0.5
    assert np.all(drift < 0.1)


def test_bad_input_is_a_clear_error(tmp_path):
    """Mistakes a user can make are GradgenErrors with a hint, and leave no output behind."""
    hh = [MECHANISMS / "hh.mod"]
    rate = RateTarget(3.0)
    cases = [
        (["noise.gain"], HomeostaticConfig(1e-8, 1e-4, rate), "needs the built-in noisy input"),
        (["noise.mu"], HomeostaticConfig(1e-8, 1e-4, rate, noise={}), "only noise.gain"),
        (["hh.gnabar"], HomeostaticConfig(1e-8, 1e-4, rate, noise={"amplitude": 1.0}), "unknown noise"),
        (["hh.gnabar"], HomeostaticConfig(1e-8, 1e-4, rate, start={"hh.gnabar": 1.0},
                                          bounds={"hh.gnabar": (0.0, 0.5)}), "outside its bounds"),
        (["hh.gnabar"], HomeostaticConfig(-1.0, 1e-4, rate), "must be >= 0"),
        (["hh.nope"], HomeostaticConfig(1e-8, 1e-4, rate), "has no parameter"),
        (["hh.gnabar"], HomeostaticConfig(1e-8, 1e-4, rate, scale={"hh.gkbar": 1.0}), "unknown parameter"),
    ]
    for params, config, message in cases:
        with pytest.raises(gradgen.GradgenError, match=message):
            convert_homeostatic(hh, tmp_path / "out", _refs(params), config)
        assert not (tmp_path / "out").exists()


def test_command_line(tmp_path, capsys):
    """`gradgen convert --homeostatic` writes the homeostatic model; incomplete options are
    bad input (exit 2, one line, no output directory)."""
    import json

    from gradgen.cli import main

    out = tmp_path / "out"
    args = ["convert", str(MECHANISMS / "hh.mod"), "-o", str(out), "--params", "hh.gnabar,noise.gain",
            "--homeostatic", "--alpha", "2e-8", "--rate-target", "3", "--tau-rate", "10000",
            "--bounds", "hh.gnabar=0.06:0.24", "--start", "noise.gain=1.5", "--noise", "mu=0.002,sigma=0.002"]
    assert main(args) == 0
    manifest = json.loads((out / "gradients.json").read_text())
    assert manifest["homeostatic"]["alpha"] == 2e-8
    assert manifest["homeostatic"]["target"] == {"kind": "rate", "rate_target_hz": 3.0, "tau_rate": 10000.0,
                                                 "v_threshold": -20.0, "v_width": 2.0,
                                                 "surrogate_threshold": -50.0, "surrogate_width": 5.0,
                                                 "surrogate_duration": 2.0}
    assert [p["default"] for p in manifest["parameters"]] == [0.12, 1.5]
    assert "mu = 0.002" in (out / "grad_noise.mod").read_text()
    capsys.readouterr()
    for bad in (["--rate-target", "3"], ["--alpha", "1"], ["--alpha", "1", "--v-target", "-65", "--bounds", "hh.gnabar=1"]):
        assert main(["convert", str(MECHANISMS / "hh.mod"), "-o", str(tmp_path / "bad"), "--params", "hh.gnabar",
                     "--homeostatic", *bad]) == 2
        assert capsys.readouterr().err.count("\n") == 1
        assert not (tmp_path / "bad").exists()
