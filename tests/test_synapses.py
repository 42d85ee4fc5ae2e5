"""Synapses: NET_RECEIVE state jumps and their sensitivities, driven by a spike train.

dV/d(weight), dV/d(time constants) and dV/d(reversal) against central finite differences of
the original synapse compiled by modcc, on an HH cable that the synapse makes spike.
"""
from __future__ import annotations

import dataclasses

import arbor
import numpy as np
import pytest
from arbor import units as U
from conftest import MECHANISMS

from gradgen.checks.fd import finite_difference, relative_error
from gradgen.convert import convert
from gradgen.errors import GradgenError
from gradgen.params import ParamRef
from gradgen.targets.arbor.decor import CellSpec, Decor, SpikeInput
from gradgen.targets.arbor.model import GradientModel

SITES = ["(location 0 0.05)", "(location 0 0.95)"]
T_END = 50.0
WEIGHT = 0.01  # µS: enough for the 12 inputs to make the cable spike
PARAMS = {
    "expsyn": ["expsyn.weight", "expsyn.tau", "expsyn.e"],
    "exp2syn": ["exp2syn.weight", "exp2syn.tau1", "exp2syn.tau2", "exp2syn.e"],
}


def synapse_cell(mech: str, label: str = "syn") -> CellSpec:
    tree = arbor.segment_tree()
    tree.append(arbor.mnpos, arbor.mpoint(0, 0, 0, 0.5), arbor.mpoint(200, 0, 0, 0.5), tag=1)
    decor = Decor()
    decor.set_property(Vm=-65 * U.mV, cm=0.01 * U.F / U.m2, rL=100 * U.Ohm * U.cm)
    decor.paint("(all)", arbor.density("hh"))
    decor.place("(location 0 0.1)", arbor.synapse(mech), label)
    times = np.sort(np.random.default_rng(1).uniform(2, 45, 12))
    return CellSpec(arbor.morphology(tree), decor, arbor.label_dict(),
                    arbor.cv_policy_fixed_per_branch(10), [SpikeInput("syn", times, WEIGHT)])


@pytest.fixture(scope="module", params=list(PARAMS))
def synapse(request, tmp_path_factory):
    mech = request.param
    out = tmp_path_factory.mktemp(mech)
    convert([MECHANISMS / f"{mech}.mod", MECHANISMS / "hh.mod"], out,
            [ParamRef.parse(p) for p in PARAMS[mech]])
    return mech, GradientModel.load(out), synapse_cell(mech)


def errors(model: GradientModel, spec: CellSpec, names: list[str], dt: float) -> dict[str, float]:
    values = {names[0]: WEIGHT}
    grad = model.simulate(spec, SITES, T_END, dt, values=values)
    out = {}
    for k, name in enumerate(names):
        fd = finite_difference(model, spec, SITES, T_END, dt, name, values)
        out[name] = max(relative_error(grad.dv[s, k], fd.dv[s]) for s in range(len(SITES)))
    return out


def test_forward_unchanged_and_spiking(synapse):
    mech, model, spec = synapse
    values = {PARAMS[mech][0]: WEIGHT}
    grad = model.simulate(spec, SITES, T_END, 0.0025, values=values)
    plain = model.simulate(spec, SITES, T_END, 0.0025, gradients=False, values=values)
    assert plain.v.max() > 20  # the inputs make it spike
    # measured 1.5e-12 (expsyn) and 2.3e-11 mV (exp2syn)
    assert np.max(np.abs(grad.v - plain.v)) < 1e-9


def test_gradients_match_finite_differences_and_converge(synapse):
    """The ion carrier, whose error shrinks with dt (the exact carrier, the default, is exact
    at every dt: tests/test_exact_carrier.py)."""
    mech, model, spec = synapse
    model = dataclasses.replace(model, carrier="ion")
    coarse = errors(model, spec, PARAMS[mech], 0.01)
    fine = errors(model, spec, PARAMS[mech], 0.0025)
    print(mech, "dt 0.01:", coarse, "\ndt 0.0025:", fine)
    # measured at dt 0.0025: all ≤ 2e-4 except the weight, 1.1e-3, which is the FD's own
    # convergence (9e-4); the issue asks for 2 %
    assert max(fine.values()) < 0.02
    # the time-constant and reversal errors shrink with dt (exp2syn: 3.2e-3 -> 2.0e-4)
    for name in PARAMS[mech][1:]:
        assert fine[name] < coarse[name]


def test_weight_cannot_be_bound_to_a_region(tmp_path):
    with pytest.raises(GradgenError, match="event weight cannot be bound"):
        convert([MECHANISMS / "expsyn.mod"], tmp_path / "out", [ParamRef.parse("expsyn.weight@soma")])


def test_unconverted_synapse_is_refused(make_model):
    model = make_model(["hh.mod"], ["hh.gnabar"])
    spec = synapse_cell("expsyn")
    with pytest.raises(GradgenError, match="synapse 'expsyn' is placed but was not converted"):
        model.simulate(spec, SITES, 1.0, 0.025)


def test_input_to_unknown_label_is_refused(synapse):
    mech, model, _ = synapse
    spec = synapse_cell(mech, label="other")
    with pytest.raises(GradgenError, match="no synapse is placed with that label"):
        model.simulate(spec, SITES, 1.0, 0.025, values={PARAMS[mech][0]: WEIGHT})
