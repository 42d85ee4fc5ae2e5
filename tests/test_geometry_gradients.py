"""Gradients on real geometries: the runtime's constant-radius equivalent cell vs central
finite differences of the *original* cell (hh everywhere, 0.2 nA into the root from 10 ms).

Bounds are the issue's acceptance bounds (θ-scaled errors ≤ 2 % at dt 0.01, ≤ 0.2 % at
dt 0.0025). Measured when written (worst site, dt 0.01 / 0.0025; loss gradient in brackets):
hh_axon 0.74 % / 0.053 % (0.44 % / 0.031 %), cone 0.036 % / 0.0023 %, step 0.079 % /
0.0051 %, branched 0.041 % / 0.0024 %, C4A 0.42 % / 0.029 % (0.24 % / 0.017 %). Without the
transform (per-half-CV diffusivity on the original geometry) the same errors are 10-190 %
(benchmarks/results/geometry_gradients.json).
"""
from __future__ import annotations

import dataclasses

import arbor
import pytest
from arbor import units as U
from conftest import C4A, MECHANISMS

from gradgen.checks.cells import example_cells, morphology_cell_spec, near_far_sites
from gradgen.checks.fd import check_model
from gradgen.errors import GradgenError
from gradgen.targets.arbor.decor import CellSpec, Decor

HH = ["hh.gnabar", "hh.gkbar", "hh.gl"]
T_END = 50.0  # 2-6 spikes at the root
CELLS = example_cells(c4a_path=str(C4A))
NAMES = ["hh_axon", "cone", "step", "branched", "c4a"]
BOUNDS = {0.01: 0.02, 0.0025: 0.002}


@pytest.fixture
def make_model(make_model):
    """The models of this file run the ion carrier, whose geometry transform it tests (the
    exact carrier, the default, runs on the original geometry)."""
    return lambda *args, **kwargs: dataclasses.replace(make_model(*args, **kwargs), carrier="ion")


def spec_of(name: str) -> CellSpec:
    if name not in CELLS:
        pytest.skip(f"{C4A} not present")
    morphology, labels, policy = CELLS[name]
    return morphology_cell_spec(morphology, labels, policy, ["hh"], stimulus_nA=0.2,
                                t_off=T_END)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dt", sorted(BOUNDS, reverse=True))
def test_gradients_match_finite_differences_of_the_original_cell(make_model, name, dt):
    model = make_model(["hh.mod"], HH)
    spec = spec_of(name)
    sites = near_far_sites(spec.morphology)
    report = check_model(model, spec, sites, T_END, dt)
    # transformed gradient cell vs original cell; measured ≤ 1.1e-8 mV (rounding)
    assert report.forward_max_abs_diff_mV <= 1e-7
    assert max(report.scaled_rel_error_per_site) < BOUNDS[dt]
    assert report.loss_gradient_rel_error < BOUNDS[dt]
    # the FD reference itself: change from step 1e-4 to 1e-5, measured ≤ 8.8e-4 (branched)
    assert max(p["fd_convergence"] for p in report.parameters) < 0.5 * BOUNDS[dt]


@pytest.mark.parametrize("name", NAMES)
def test_start_up_check_reports_an_identical_voltage(make_model, name):
    model = make_model(["hh.mod"], HH)
    spec = spec_of(name)
    geometry = model.geometry(spec)
    # measured ≤ 1e-8 mV over 50 ms (C4A: at its translation floor, docs/geometry.md)
    assert geometry.max_abs_dV_mV <= 1e-7
    assert geometry.check["spikes_original_site0"] >= 1
    assert model.geometry(spec) is geometry  # cached per spec: tuning loops pay once


def test_region_parameters_on_a_branched_cell(make_model):
    """θ bound to regions (tag labels) are mapped onto the transformed cell."""
    model = make_model(["hh.mod"], ["hh.gnabar@soma", "hh.gnabar@dend", "hh.gkbar"])
    spec = spec_of("branched")
    report = check_model(model, spec, near_far_sites(spec.morphology), T_END, 0.01)
    assert max(report.scaled_rel_error_per_site) < BOUNDS[0.01]
    assert report.loss_gradient_rel_error < BOUNDS[0.01]


def test_multi_region_reconstruction(make_model):
    """C4A with hh on soma and axon, pas on the dendrites and θ bound to regions: the use of
    the tuning experiments (different mechanisms per SWC region)."""
    if "c4a" not in CELLS:
        pytest.skip(f"{C4A} not present")
    model = make_model(["hh.mod", "pas.mod"], ["hh.gnabar@soma", "hh.gkbar", "pas.g@dend"])
    morphology, labels, policy = CELLS["c4a"]
    decor = Decor()
    decor.set_property(Vm=-65 * U.mV, cm=0.01 * U.F / U.m2, rL=100 * U.Ohm * U.cm)
    decor.paint('(join (region "soma") (region "axon"))', arbor.density("hh"))
    decor.paint('"dend"', arbor.density("pas"))
    decor.place("(root)", arbor.i_clamp(10 * U.ms, 40 * U.ms, 0.3 * U.nA))
    spec = CellSpec(morphology, decor, labels, policy)
    report = check_model(model, spec, near_far_sites(morphology), T_END, 0.01,
                         values={"pas.g@dend": 1e-4})  # 3 spikes at the soma
    assert report.forward_max_abs_diff_mV <= 1e-7  # measured 3.3e-8 mV
    # measured 0.19 % (dV/dθ, worst site) and 0.15 % (loss gradient)
    assert max(report.scaled_rel_error_per_site) < BOUNDS[0.01]
    assert report.loss_gradient_rel_error < BOUNDS[0.01]


def test_mechanism_reading_diam_is_refused_on_a_changing_radius(tmp_path):
    """diam would be the transformed cell's: refused where the transform changes it."""
    from gradgen.convert import convert
    from gradgen.params import ParamRef
    from gradgen.targets.arbor.model import GradientModel

    text = (MECHANISMS / "pas.mod").read_text().replace("i = g*(v - e)", "i = g*diam*(v - e)")
    assert "diam" in text
    mod = tmp_path / "pasdiam.mod"
    mod.write_text(text.replace("SUFFIX pas", "SUFFIX pasdiam"))
    convert([mod], tmp_path / "out", [ParamRef.parse("pasdiam.g")])
    model = GradientModel.load(tmp_path / "out", carrier="ion")
    for radius_changes in (False, True):
        tree = arbor.segment_tree()
        tree.append(arbor.mnpos, arbor.mpoint(0, 0, 0, 1.0),
                    arbor.mpoint(100, 0, 0, 0.5 if radius_changes else 1.0), tag=1)
        decor = Decor()
        decor.paint("(all)", arbor.density("pasdiam"))
        spec = CellSpec(arbor.morphology(tree), decor)
        if radius_changes:
            with pytest.raises(GradgenError, match=r"pasdiam read\(s\) diam"):
                model.simulate(spec, ["(location 0 0.5)"], 1.0, 0.025)
        else:
            assert model.simulate(spec, ["(location 0 0.5)"], 1.0, 0.025).dv.shape[1] == 1


def test_per_region_axial_resistivity(make_model):
    """rL painted per region (one border inside a half-CV) is folded into the per-piece rL."""
    model = make_model(["hh.mod"], HH)
    spec = spec_of("hh_axon")
    spec.decor.paint('"soma"', rL=50 * U.Ohm * U.cm)
    spec.decor.paint("(cable 0 0.5 1)", rL=180 * U.Ohm * U.cm)  # x = 210 µm: CV 200-220 µm half
    assert model.geometry(spec).max_abs_dV_mV <= 1e-7  # measured 6.4e-12 mV
    sites = near_far_sites(spec.morphology)
    report = check_model(model, spec, sites, T_END, 0.01)
    # the paints shift the spikes (V changes by up to 49 mV at the tip), so a transform that
    # ignored them would fail here; measured 4e-12 mV
    assert report.forward_max_abs_diff_mV <= 1e-7
    # measured 0.95 % (dV/dθ, tip) and 0.57 % (loss gradient)
    assert max(report.scaled_rel_error_per_site) < BOUNDS[0.01]
    assert report.loss_gradient_rel_error < BOUNDS[0.01]


def test_per_region_capacitance(make_model):
    """cm painted per region (one border inside a half-CV): a CV's radius follows its cm."""
    model = make_model(["hh.mod"], HH)
    spec = spec_of("hh_axon")
    spec.decor.paint('"soma"', cm=0.02 * U.F / U.m2)
    spec.decor.paint("(cable 0 0.5 1)", cm=0.03 * U.F / U.m2)  # x = 210 µm: CV 200-220 µm half
    assert model.geometry(spec).max_abs_dV_mV <= 1e-7
    sites = near_far_sites(spec.morphology)
    report = check_model(model, spec, sites, T_END, 0.01)
    assert report.forward_max_abs_diff_mV <= 1e-7  # measured 6.2e-12 mV
    # measured 2.7e-4 (soma) and 0.53 % (tip) for dV/dθ, 0.33 % for the loss gradient: as
    # with one cm (the rL test above), so the faces joining two radii cost nothing measurable
    assert max(report.scaled_rel_error_per_site) < BOUNDS[0.01]
    assert report.loss_gradient_rel_error < BOUNDS[0.01]
