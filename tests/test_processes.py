"""Junction and voltage processes and POST_EVENT, on Arbor's own catalogue files, against
central finite differences of the originals (compiled by modcc from the files as given).

- gj (JUNCTION_PROCESS): two HH cables joined by a gap junction, only the first driven and
  θ = hh.gnabar bound to the first alone: dV/dθ on the *second* cell exists only if the
  junction's gradient version carries u across (measured: 100 % error with the peer's
  sensitivity set to 0, 2.2e-4 with it, at dt 0.0025);
- v_clamp (VOLTAGE_PROCESS): on the clamped CVs u = 0 exactly for channel θ and u = 1 for
  the clamp voltage θ = v0; elsewhere dV/dθ as FD;
- expsyn_stdp (POST_EVENT): the plasticity traces move V (the cell's spikes reach the
  synapse) and their θ are checked like every other.

The files are read from ../shared/corpus/arbor-catalogue by path (skipped when absent).
"""
from __future__ import annotations

import arbor
import numpy as np
import pytest
from arbor import units as U
from conftest import MECHANISMS, ROOT

from gradgen.checks.cells import check_cell
from gradgen.checks.fd import check_model, finite_difference, relative_error
from gradgen.convert import convert
from gradgen.params import parse_param_list
from gradgen.targets.arbor.decor import CellSpec, Decor
from gradgen.targets.arbor.model import GradientModel
from gradgen.targets.arbor.network import Junction, simulate_network

CATALOGUE = ROOT.parent / "shared" / "corpus" / "arbor-catalogue" / "default"
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not CATALOGUE.is_dir(), reason="Arbor's catalogue sources not present")]
DT = 0.0025
#: Measured at dt 0.0025 (≤ 3.5e-4 for gj, ≤ 2e-3 for expsyn_stdp whose Apre FD is
#: rounding-limited at 4.8e-3 convergence); errors fall ~14× from dt 0.01, as for density
#: mechanisms. The bound leaves room for other machines' libm.
BOUND = 5e-3


def _converted(tmp_path, files, params: str) -> GradientModel:
    out = tmp_path / "out"
    convert(files, out, parse_param_list([params]))
    return GradientModel.load(out)


def _cable(driven: bool, junction_at: str) -> CellSpec:
    tree = arbor.segment_tree()
    tree.append(arbor.mnpos, arbor.mpoint(0, 0, 0, 0.5), arbor.mpoint(200, 0, 0, 0.5), tag=1)
    decor = Decor()
    decor.set_property(Vm=-65 * U.mV, cm=0.01 * U.F / U.m2, rL=100 * U.Ohm * U.cm)
    decor.paint("(all)", arbor.density("hh"))
    if driven:
        decor.place("(location 0 0)", arbor.i_clamp(2 * U.ms, 100 * U.ms, 0.1 * U.nA))
    decor.place(junction_at, arbor.junction("gj"), "gj")
    # θ = hh.gnabar@driven binds on the first cell only
    labels = arbor.label_dict({"driven": "(all)" if driven else "(region-nil)"})
    return CellSpec(arbor.morphology(tree), decor, labels, arbor.cv_policy_fixed_per_branch(10))


def test_gradients_cross_a_gap_junction(tmp_path):
    model = _converted(tmp_path, [CATALOGUE / "gj.mod", MECHANISMS / "hh.mod"], "hh.gnabar@driven,gj.g")
    specs = [_cable(True, "(location 0 1)"), _cable(False, "(location 0 0)")]
    # 5 nS: the explicit peer term stays small per step (g·dt/C ≈ 0.02 on a 20 µm CV)
    junctions = [Junction(0, "gj", 1, "gj", 0.005)]
    sites = [["(location 0 0)", "(location 0 1)"]] * 2
    values = {"hh.gnabar@driven": 0.12, "gj.g": 1.0}
    t_end = 30.0
    grad = simulate_network(model, specs, junctions, sites, t_end, DT, True, values)
    plain = simulate_network(model, specs, junctions, sites, t_end, DT, False, values)
    assert max(np.abs(g.v - p.v).max() for g, p in zip(grad, plain)) < 1e-8
    assert plain[1].v.max() > 0  # the second cell fires, driven only through the junction
    for k, name in enumerate(values):
        estimates = []
        for rel in (1e-4, 1e-5):
            h = rel * values[name]
            up = simulate_network(model, specs, junctions, sites, t_end, DT, False, {**values, name: values[name] + h})
            down = simulate_network(model, specs, junctions, sites, t_end, DT, False, {**values, name: values[name] - h})
            estimates.append([(a.v - b.v) / (2 * h) for a, b in zip(up, down)])
        for cell in range(2):
            fd = estimates[1][cell]
            assert relative_error(estimates[0][cell], fd) < 1e-4, "the FD has not converged"
            assert np.abs(fd).max() > 1.0  # θ moves V on this cell (mV per unit θ)
            assert relative_error(grad[cell].dv[:, k], fd) < BOUND, (name, cell)


@pytest.mark.parametrize("region", [
    None,  # check's: the middle fifth of the cable, whole CVs
    # borders inside two CVs: Arbor sets V there on the whole CV but weights xd writes by the
    # covered fraction (without process_patch's repair measured 1.2e-2 / 8e-3; with it 1.5e-4)
    "(cable 0 0.445 0.555)"])
def test_clamped_cvs_have_zero_sensitivity(tmp_path, monkeypatch, region):
    if region is not None:
        monkeypatch.setattr("gradgen.checks.cells.VOLTAGE_REGION", region)
    model = _converted(tmp_path, [CATALOGUE / "v_clamp.mod", MECHANISMS / "hh.mod"],
                       "v_clamp.v0,hh.gnabar,hh.gkbar")
    spec, sites = check_cell(model, 0.1, 20.0)  # the clamp on the middle of the cable
    sites = sites + ["(location 0 0.5)"]  # a clamped CV
    values = {p.name: model.defaults[p.name] for p in model.params}
    grad = model.simulate(spec, sites, 20.0, DT, True, values)
    plain = model.simulate(spec, sites, 20.0, DT, False, values)
    assert np.abs(grad.v - plain.v).max() < 1e-8
    assert np.all(plain.v[2, 1:] == values["v_clamp.v0"])  # clamped from the first step on
    for k, ref in enumerate(model.params):
        expected = 1.0 if ref.name == "v_clamp.v0" else 0.0
        assert np.all(grad.dv[2, k, 1:] == expected), ref.name
        fd = finite_difference(model, spec, sites[:2], 20.0, DT, ref.name, values)
        assert fd.convergence < 1e-3
        for s in range(2):
            assert relative_error(grad.dv[s, k], fd.dv[s]) < BOUND, (ref.name, sites[s])


def test_plasticity_states_are_differentiable(tmp_path):
    model = _converted(tmp_path, [CATALOGUE / "expsyn_stdp.mod", MECHANISMS / "hh.mod"],
                       "expsyn_stdp.Apre,expsyn_stdp.Apost,expsyn_stdp.taupost")
    spec, sites = check_cell(model, 0.1, 20.0)  # driven every 5 ms; the cable fires
    report = check_model(model, spec, sites, 20.0, DT)
    assert report.forward_max_abs_diff_mV < 1e-8
    for p in report.parameters:
        assert p["moves_v"], p["name"]  # post-synaptic spikes reach the synapse
        assert p["rel_error"] < BOUND, p
