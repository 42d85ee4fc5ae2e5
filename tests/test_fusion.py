"""Fused gradient mechanisms (one per painted set, the hub's work inside) against the hub design.

Fusion only removes the scratch ions; the arithmetic per CV is the hub design's, member by
member in the same order, each member scaled by the fraction of the CV it covers, so the two
agree to rounding (measured: bit-identical on the HH axon and the IO cells, 1.3e-11 with
hh + pas on a CV, 6e-12 with region borders inside CVs). What fusion does not cover (point
processes, ion coupling) runs the hub design.
"""
from __future__ import annotations

import arbor
import numpy as np
import pytest
from arbor import units as U
from conftest import MECHANISMS

from gradgen.checks.cells import HH_AXON_SITES, cable_cell_spec, hh_axon_spec
from gradgen.convert import convert
from gradgen.params import ParamRef
from gradgen.targets.arbor.model import GradientModel

#: Rounding only: measured 0 (bit-identical) with one member per set; 1.3e-11 relative with
#: hh + pas, whose currents the fused mechanism sums before Arbor adds them (spikes amplify
#: the last bits). A lost or misordered term is ≥ 1e-6; ignoring covered fractions, ~1.
AGREEMENT = 1e-9


def _models(tmp_path, files: list[str], params: list[str]) -> tuple[GradientModel, GradientModel]:
    out = tmp_path / "conv"
    convert([MECHANISMS / f for f in files], out, [ParamRef.parse(p) for p in params])
    fused, hub = GradientModel.load(out, carrier="ion"), GradientModel.load(out, carrier="ion")
    hub.fusion = False
    return fused, hub


def _compare(fused_model, hub_model, spec, sites, t_end=100.0, dt=0.025):
    fused_run = fused_model.simulation(spec, sites)
    hub_run = hub_model.simulation(spec, sites)
    a, b = fused_run.run(t_end, dt), hub_run.run(t_end, dt)
    assert np.max(np.abs(a.v - b.v)) <= AGREEMENT * np.max(np.abs(b.v))
    assert np.max(np.abs(a.dv - b.dv)) <= AGREEMENT * np.max(np.abs(b.dv))
    return fused_run, hub_run


def test_hh_axon_with_region_parameters_fuses(tmp_path):
    """θ bound to thirds of the axon (the border at 2/3 lies inside a CV: one fused
    mechanism there, with its weight averaged by Arbor as in the hub design)."""
    thirds = {"r0": "(cable 0 0 0.3333333333333333)", "r1": "(cable 0 0.3333333333333333 0.6666666666666666)"}
    fused, hub = _models(tmp_path, ["hh.mod"], ["hh.gnabar@r0", "hh.gnabar@r1", "hh.gkbar", "hh.gl"])
    run, hub_run = _compare(fused, hub, hh_axon_spec(100, labels=thirds), HH_AXON_SITES)
    assert run.hubs == ["gradf_hh", "gradf_hh"]
    assert hub_run.hubs == ["gradz_hub", "gradz_hub"]


def test_two_painted_sets_fuse(tmp_path):
    """hh everywhere, pas on CVs 3-6 of 10: fused mechanisms {hh} and {hh, pas}; cm 2 µF/cm²
    (the fused mechanisms' implicit step uses it)."""
    spec = cable_cell_spec(["hh"], n_cv=10, stimulus_nA=0.1, t_off=90, labels={"mid": "(cable 0 0.3 0.7)"})
    spec.decor.set_property(cm=0.02 * U.F / U.m2)
    spec.decor.paint('"mid"', arbor.density("pas", {"g": 2e-4}))
    fused, hub = _models(tmp_path, ["hh.mod", "pas.mod"], ["hh.gkbar", "pas.g", "pas.e"])
    run, _ = _compare(fused, hub, spec, ["(location 0 0.05)", "(location 0 0.45)"])
    assert run.hubs == ["gradf_hh", "gradf_hh_pas"]


def test_region_borders_inside_cvs_fuse(tmp_path):
    """pas on 0.33-0.7 and hh on 0-0.86 of a 10-CV cable: CVs covered partly by one, partly by
    both, partly by none; one fused mechanism per CV with each member's covered fraction."""
    spec = cable_cell_spec(["pas"], n_cv=10, stimulus_nA=0.1, t_off=90,
                           labels={"mid": "(cable 0 0.33 0.7)", "hhpart": "(cable 0 0 0.86)"})
    spec.decor.paints = [p for p in spec.decor.paints if not isinstance(p.what, arbor.density)]
    spec.decor.paint('"hhpart"', arbor.density("hh"))
    spec.decor.paint('"mid"', arbor.density("pas", {"g": 2e-4}))
    fused, hub = _models(tmp_path, ["hh.mod", "pas.mod"], ["hh.gkbar", "pas.g", "pas.e"])
    sites = ["(location 0 0.05)", "(location 0 0.35)", "(location 0 0.85)"]
    run, _ = _compare(fused, hub, spec, sites)
    assert run.hubs == ["gradf_hh", "gradf_hh_pas", "gradf_hh"]


@pytest.mark.parametrize("files,params,reason", [
    (["expsyn.mod", "hh.mod"], ["expsyn.tau", "hh.gkbar"], "point, junction or voltage process"),
    (["cad.mod", "cahva.mod", "hh.mod", "sk.mod"], ["cahva.gbar", "hh.gkbar"], "ion coupling"),
])
def test_what_fusion_does_not_cover_runs_the_hub_design(tmp_path, files, params, reason):
    from test_synapses import synapse_cell

    from gradgen.targets.arbor.fusion import fusion_blocker

    fused, _ = _models(tmp_path, files, params)
    spec = synapse_cell("expsyn") if "expsyn.mod" in files else cable_cell_spec(["hh", "cahva", "cad", "sk"])
    assert reason in fusion_blocker(fused, spec)
