"""GLOBAL parameters as θ, and derived mechanism names (``pas/e=-60``) in a user's decor.

A GLOBAL has one value per mechanism; Arbor sets it only through a derived name, in the
gradient version (it stays GLOBAL there, its weight painted 1 everywhere: the gradient sums
over every CV) as in the original, whose GLOBAL the finite differences vary through
``orig_mech/param=value``. (A RANGE copy would be averaged over each CV's area by Arbor,
which can move it by an ulp: see tests/test_catalogue.py, allen/NaV.)
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import arbor
import numpy as np
import pytest
from conftest import MECHANISMS, ROOT

from gradgen.checks.cells import cable_cell_spec
from gradgen.checks.coverage import use_translated_references
from gradgen.checks.fd import check_model
from gradgen.convert import convert
from gradgen.errors import GradgenError, GradgenWarning
from gradgen.params import ParamRef
from gradgen.targets.arbor.derived import DerivedName
from gradgen.targets.arbor.model import GradientModel

KGLOB = ROOT / "tests" / "data" / "globals" / "kglob.mod"
CATALOGUE = ROOT.parent / "shared" / "corpus" / "arbor-catalogue"
SITES = ["(location 0 0)", "(location 0 1)"]


def converted(tmp_path: Path, files: list[Path], params: list[str] | None) -> GradientModel:
    convert(files, tmp_path / "out", None if params is None else [ParamRef.parse(p) for p in params])
    return GradientModel.load(tmp_path / "out")


def test_derived_names_round_trip():
    d = DerivedName.parse("nernst/x=ca")
    assert (d.base, d.globals, d.ions) == ("nernst", {}, {"x": "ca"})
    d = DerivedName.parse("pas/e=-60, g=1e-3")
    assert (d.base, d.globals) == ("pas", {"e": -60.0, "g": 1e-3})
    assert d.named("o_pas", {"e": -61.5}) == "o_pas/e=-61.5"
    assert DerivedName.parse("hh").named("g_hh") == "g_hh"
    with pytest.raises(GradgenError, match="not NAME=VALUE"):
        DerivedName.parse("pas/e")


def test_globals_stay_global_in_the_gradient_version(tmp_path):
    model = converted(tmp_path, [KGLOB, MECHANISMS / "hh.mod"], None)
    assert [p.name for p in model.params if p.mechanism == "kglob"] == \
        ["kglob.gbar", "kglob.vhalf", "kglob.slope", "kglob.ek0", "kglob.tau"]
    manifest = json.loads((tmp_path / "out" / "gradients.json").read_text())
    entry = next(m for m in manifest["mechanisms"] if m["original"] == "kglob")
    # tau is listed nowhere: modcc makes it GLOBAL too
    assert entry["globals"] == ["vhalf", "slope", "ek0", "tau"]
    text = (tmp_path / "out" / f"{entry['gradient']}.mod").read_text()
    range_line = next(line for line in text.splitlines() if line.strip().startswith("RANGE"))
    assert "gbar" in range_line.split()[1].rstrip(",")
    assert not any(p in range_line for p in ("vhalf", "slope", "ek0", "tau"))  # GLOBAL: in no RANGE list


def test_global_theta_matches_finite_differences_of_the_original(tmp_path):
    names = ["kglob.vhalf", "kglob.slope", "kglob.ek0", "kglob.tau", "kglob.gbar"]
    model = converted(tmp_path, [KGLOB, MECHANISMS / "hh.mod"], names)
    spec = cable_cell_spec(["hh", "kglob"], stimulus_nA=0.1)
    # the original's GLOBAL is really set: V moves when vhalf does (FD would be 0 otherwise)
    base = model.simulate(spec, SITES, 20, 0.025, gradients=False)
    moved = model.simulate(spec, SITES, 20, 0.025, gradients=False, values={"kglob.vhalf": -30.0})
    assert np.max(np.abs(base.v - moved.v)) > 1.0
    report = check_model(model, spec, SITES, 20, 0.0025)
    # measured: forward 1e-11 mV; dV/dθ ≤ 3e-6 of FD (the FD's own convergence 1e-6)
    assert report.forward_max_abs_diff_mV <= 1e-8
    for p in report.parameters:
        assert p["rel_error"] <= 1e-3, p


def test_derived_name_in_the_users_decor(tmp_path):
    """`kglob/ek0=-60` painted by the user: both cells run at ek0 = -60, and θ checks."""
    model = converted(tmp_path, [KGLOB], ["kglob.gbar", "kglob.ek0"])
    plain = cable_cell_spec(["kglob"], stimulus_nA=0.0)
    derived = cable_cell_spec(["kglob/ek0=-60"], stimulus_nA=0.0)
    for gradients in (False, True):
        v0 = model.simulate(plain, SITES, 20, 0.025, gradients=gradients).v
        v1 = model.simulate(derived, SITES, 20, 0.025, gradients=gradients).v
        assert np.max(np.abs(v1 - v0)) > 1.0  # the derived GLOBAL value is applied
    # θ = ek0 from the decor's value (-60), not the file's: the check's FD runs there too
    report = check_model(model, derived, SITES, 20, 0.0025, values={"kglob.ek0": -60.0})
    assert report.forward_max_abs_diff_mV <= 1e-8
    assert all(p["rel_error"] <= 1e-3 for p in report.parameters), report.parameters


def test_derived_name_of_an_unconverted_mechanism_is_named(tmp_path):
    model = converted(tmp_path, [KGLOB], ["kglob.gbar"])
    spec = cable_cell_spec(["kglob", "hh/gl=0.0003"], stimulus_nA=0.0)
    with pytest.raises(GradgenError, match="mechanism 'hh' is painted but was not converted"):
        model.simulate(spec, SITES, 1, 0.025)


@pytest.mark.skipif(not CATALOGUE.is_dir(), reason="Arbor's catalogue sources not present")
@pytest.mark.parametrize("file, theta", [("default/pas.mod", "pas.e"), ("default/kamt.mod", "kamt.sha"),
                                         ("allen/Ih.mod", "Ih.ehcn")])
def test_arbor_catalogue_global(tmp_path, file, theta):
    """Arbor's own files as written: the GLOBAL θ against FD of the original's GLOBAL."""
    name = theta.split(".")[0]
    model = converted(tmp_path, [CATALOGUE / file, MECHANISMS / "hh.mod"], [theta, "hh.gkbar"])
    spec = cable_cell_spec(["hh", name], stimulus_nA=0.1)
    report = check_model(model, spec, SITES, 20, 0.0025)
    # measured: forward ≤ 3e-11 mV; pas.e 5e-11, kamt.sha 1e-7, Ih.ehcn 4e-7 of FD
    assert report.forward_max_abs_diff_mV <= 1e-8
    assert report.parameters[0]["rel_error"] <= 1e-3


#: A GLOBAL compared for equality in a FUNCTION of a cnexp DERIVATIVE (every PARAMETER is
#: GLOBAL here: none is listed in RANGE), as many published files switch a rate's form.
FLAG_MOD = """
NEURON {
    SUFFIX flag
    NONSPECIFIC_CURRENT i
}
PARAMETER {
    g = 0.001 (S/cm2)
    form = 1
    vh = -40 (mV)
}
STATE { m }
INITIAL {
    m = 0
}
BREAKPOINT {
    SOLVE d METHOD cnexp
    i = g*m*(v + 70)
}
DERIVATIVE d {
    m' = (rate(v) - m)/2
}
FUNCTION rate(v) {
    if (form == 1) {
        rate = 1/(1 + exp(-(v - vh)/6))
    } else {
        rate = exp((v - vh)/6)
    }
    if (vh != 0) {
        rate = rate*1
    }
}
"""


def _flag_model(tmp_path: Path, params: list[str], carrier: str) -> GradientModel:
    (tmp_path / "flag.mod").write_text(FLAG_MOD)
    convert([tmp_path / "flag.mod"], tmp_path / "out", [ParamRef.parse(p) for p in params])
    use_translated_references(tmp_path / "out")  # modcc refuses `rate` read in its own FUNCTION
    return GradientModel.load(tmp_path / "out", carrier=carrier)


@pytest.mark.parametrize("carrier", ["exact", "ion"])
@pytest.mark.parametrize("values", [{}, {"flag.form": 2.0, "flag.vh": -35.0}])
def test_global_compared_for_equality_stays_exact(tmp_path, carrier, values):
    """The exact mechanism and the fused mechanisms (the ion carrier's) keep their members'
    GLOBALs GLOBAL, set through their derived name: painted RANGE, Arbor averaged the 1.0 over
    each CV's area and read 1 - 1.1e-16 on 17 of the cable's 50 CVs, where `form == 1` then took
    the other branch (V off by 0.785 mV, 52.9 mV in a variant). A θ value other than the
    default reaches them through the derived name, which the probes of u_k name too."""
    model = _flag_model(tmp_path, ["flag.g", "flag.form", "flag.vh"], carrier)
    spec = cable_cell_spec(["flag"], stimulus_nA=0.1)
    run = model.simulation(spec, SITES, values=values)
    assert run.exact == (carrier == "exact")
    assert all(hub.startswith("grad") and hub != "gradz_hub" for hub in run.hubs)  # exact or fused
    report = check_model(model, spec, SITES, 20, 0.0025, values=values)
    # measured: forward ≤ 7.2e-14 (exact) and 5.8e-12 mV (ion: the constant-radius cell);
    # dV/dθ ≤ 6e-9 (exact) and 3.5e-7 (ion) of FD, whose own convergence is 4e-9 to 7e-9
    assert report.forward_max_abs_diff_mV <= 1e-8
    compared = [p for p in report.parameters if p["moves_v"]]
    assert [p["name"] for p in compared] == ["flag.g", "flag.vh"]  # form is a switch: dV/dθ = 0
    for p in compared:
        assert p["rel_error"] <= 1e-5, p


def test_a_global_painted_with_two_values_runs_the_gradient_versions(tmp_path):
    """One exact or fused mechanism holds one value of each member GLOBAL: `flag` and
    `flag/form=2` on two halves of the cell run the hub design's gradient versions instead."""
    model = _flag_model(tmp_path, ["flag.g", "flag.vh"], "exact")
    spec = cable_cell_spec([], stimulus_nA=0.1, labels={"left": "(cable 0 0 0.5)", "right": "(cable 0 0.5 1)"})
    spec.decor.paint('"left"', arbor.density("flag"))
    spec.decor.paint('"right"', arbor.density("flag/form=2"))
    with pytest.warns(GradgenWarning, match="GLOBAL 'form' of 'flag' with different values on the cell"):
        run = model.simulation(spec, SITES)
    assert not run.exact and run.hubs[0] == "gradz_hub"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GradgenWarning)
        report = check_model(model, spec, SITES, 20, 0.0025)
    both = model.simulate(spec, SITES, 20, 0.0025, gradients=False).v
    spec_one = cable_cell_spec(["flag"], stimulus_nA=0.1)
    one = model.simulate(spec_one, SITES, 20, 0.0025, gradients=False).v
    assert np.max(np.abs(both - one)) > 0.1  # the right half really runs form = 2 (measured 0.58 mV)
    # measured: forward 4.8e-12 mV, dV/dθ ≤ 3.5e-7 of FD (the ion carrier)
    assert report.forward_max_abs_diff_mV <= 1e-8
    for p in report.parameters:
        assert p["rel_error"] <= 1e-5, p
