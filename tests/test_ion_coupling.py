"""Sensitivities that pass between mechanisms through ions: Ca channel -> Ca dynamics -> SK.

cahva writes ica, cad integrates ica into cai, sk reads cai. Every gradient is compared with
central finite differences of the original mechanisms compiled by modcc.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import MECHANISMS

from gradgen.checks.cells import cable_cell_spec
from gradgen.checks.fd import finite_difference, relative_error
from gradgen.convert import convert
from gradgen.errors import GradgenError
from gradgen.params import ParamRef
from gradgen.targets.arbor.model import GradientModel

CHAIN = ["hh.mod", "cahva.mod", "cad.mod", "sk.mod"]
PARAMS = ["cahva.gbar", "cad.taur", "sk.gbar", "sk.kd"]
SITES = ["(location 0 0.05)", "(location 0 0.95)"]
T_END = 50.0


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """(coupled model, model converted with the coupling dropped, cell spec)."""
    models = []
    for couple in (True, False):
        out = tmp_path_factory.mktemp("cachain")
        convert([MECHANISMS / f for f in CHAIN], out, [ParamRef.parse(p) for p in PARAMS],
                couple_ions=couple)
        models.append(GradientModel.load(out))
    spec = cable_cell_spec(["hh", "cahva", "cad", "sk"], length=100.0, n_cv=10, stimulus_nA=0.3)
    return models[0], models[1], spec


def gradient_errors(model: GradientModel, spec, dt: float) -> dict[str, float]:
    """Worst relative L2 error of dV/dθ over the sites, per parameter."""
    grad = model.simulate(spec, SITES, T_END, dt)
    errors = {}
    for k, name in enumerate(PARAMS):
        fd = finite_difference(model, spec, SITES, T_END, dt, name)
        errors[name] = max(relative_error(grad.dv[s, k], fd.dv[s]) for s in range(len(SITES)))
    return errors


def test_manifest_names_the_coupling(chain):
    model, uncoupled, _ = chain
    assert model.store_ions and not uncoupled.store_ions
    coupling = (model.directory / "gradients.json").read_text()
    assert '"ica"' in coupling and '"cai"' in coupling


def test_forward_unchanged(chain):
    model, _, spec = chain
    grad = model.simulate(spec, SITES, T_END, 0.0025)
    plain = model.simulate(spec, SITES, T_END, 0.0025, gradients=False)
    assert np.max(grad.v) > 0  # it spikes, so Ca enters
    # measured 3e-13 mV: the same arithmetic as modcc's
    assert np.max(np.abs(grad.v - plain.v)) < 1e-9


def test_ca_chain_gradients_match_finite_differences_and_converge_with_dt(chain):
    """The ion carrier, whose error shrinks with dt (the exact carrier, the default, is exact
    at every dt: tests/test_exact_carrier.py)."""
    model, _, spec = chain
    model = dataclasses.replace(model, carrier="ion")
    coarse = gradient_errors(model, spec, 0.01)
    fine = gradient_errors(model, spec, 0.0025)
    print("dt 0.01:", coarse, "\ndt 0.0025:", fine)
    # measured at dt 0.0025: cahva.gbar 2.3e-5, sk.gbar 4.6e-6, sk.kd 4.4e-5, cad.taur 1.4e-4
    # (cad.taur is at its FD step's own convergence, 1.2e-4); the issue asks for 2 %.
    assert max(fine.values()) < 0.02
    assert fine["cahva.gbar"] < 1e-3
    # first order in dt or better: measured 3.6e-4 -> 2.3e-5 for cahva.gbar
    for name in ("cahva.gbar", "sk.gbar", "sk.kd"):
        assert fine[name] < coarse[name] / 2


def test_dropping_the_coupling_breaks_the_gradient(chain):
    _, uncoupled, spec = chain
    errors = gradient_errors(uncoupled, spec, 0.0025)
    print("uncoupled, dt 0.0025:", errors)
    # measured: cahva.gbar 6.4 % (the path through cai and SK is lost), cad.taur 100 %
    # (its only effect on V is through SK), sk.kd 1.2 %
    assert errors["cahva.gbar"] > 0.02
    assert errors["cad.taur"] > 0.5


def test_current_read_in_breakpoint_is_refused(tmp_path):
    bad = tmp_path / "reads_ica.mod"
    bad.write_text("""
NEURON { SUFFIX reads_ica USEION ca READ ica NONSPECIFIC_CURRENT i RANGE g }
PARAMETER { g = 0.001 }
BREAKPOINT { i = g*ica*(v + 65) }
""")
    with pytest.raises(GradgenError, match="outside its state update"):
        convert([MECHANISMS / "cahva.mod", bad], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_concentration_write_must_be_a_state(tmp_path):
    bad = tmp_path / "writes_cai.mod"
    bad.write_text("""
NEURON { SUFFIX writes_cai USEION ca WRITE cai }
BREAKPOINT { cai = 0.001 }
""")
    # with sk reading cai it can move V (alone it is a bystander and runs unconverted)
    with pytest.raises(GradgenError, match="writes_cai.mod:2:.*declared as a STATE"):
        convert([bad, MECHANISMS / "sk.mod"], tmp_path / "out")
