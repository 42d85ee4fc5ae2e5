"""`gradgen translate`, the parser over published styles, and the coverage table.

Translations are checked by Arbor's real modcc (no C++ compile: fast); their numerics are
checked in test_mechanisms.py (the NEURON-dialect channel's gradient is compared with FD of
its translation) and below for a KINETIC scheme against modcc's own KINETIC solver.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import sympy
from conftest import MECHANISMS

from gradgen.checks.cells import cable_cell_spec
from gradgen.cli import main
from gradgen.convert import convert
from gradgen.errors import GradgenError
from gradgen.nmodl.ir import fabs
from gradgen.nmodl.lower import lower_file
from gradgen.params import ParamRef
from gradgen.sensitivity.discretize import MODCC_METHODS
from gradgen.targets.arbor.build import modcc_accepts
from gradgen.targets.arbor.model import GradientModel
from gradgen.targets.arbor.translate import translate, translate_lowered

STYLES = Path(__file__).parent / "data" / "parser" / "styles"
CONTINUOUS = sorted(p for p in STYLES.glob("*.mod") if p.name != "syn_netreceive.mod")
BLOCK_HEAD = re.compile(r"^(NEURON|PARAMETER|STATE|BREAKPOINT|INITIAL|DERIVATIVE \w+|LINEAR \w+) \{")


def test_neuron_dialect_channel_translates_into_what_modcc_accepts(tmp_path, capsys):
    source = MECHANISMS / "kdr_neuron.mod"
    assert not modcc_accepts(source.read_text())  # TABLE, INDEPENDENT, ... : needs translating
    assert main(["translate", str(source), "-o", str(tmp_path)]) == 0
    out = tmp_path / "kdrn.mod"
    assert capsys.readouterr().out.strip() == f"wrote {out}"
    text = out.read_text()
    assert modcc_accepts(text)
    code = "\n".join(line for line in text.splitlines() if not line.startswith(":"))
    for construct in ("TABLE", "INDEPENDENT", "UNITSOFF", "UNITSON", "derivimplicit", "(degC)", "vtrap"):
        assert construct not in code
    # derivimplicit is backward Euler; modcc's sparse takes no ODE with a constant term, so the
    # step is written out as a METHOD-less block modcc pastes into advance_state
    assert "SOLVE states\n" in text and "METHOD" not in code
    assert "exprelr(" in code and "if (" not in code  # vtrap's guarded quotient became exprelr
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if "LOCAL" in line:  # LOCALs only directly at the top of a block (after SOLVE)
            assert BLOCK_HEAD.match(lines[i - 1]) or "SOLVE" in lines[i - 1], line
        assert line.count(" = ") <= 1  # one statement per line


@pytest.mark.parametrize("path", CONTINUOUS, ids=lambda p: p.name)
def test_published_styles_parse_lower_and_translate(path, tmp_path):
    """Comments everywhere, odd spacing, units in expressions, nested if, INCLUDE, KINETIC."""
    low = lower_file(path)
    assert low.parameters and low.states and low.currents
    assert modcc_accepts(translate_lowered(low))


def test_style_details_survive_lowering():
    nap = lower_file(STYLES / "nap_modeldb.mod")
    # The nested if in settables() becomes a three-way Piecewise of mtau in m' = (minf - m)/mtau.
    assert len(nap.derivatives["m"].atoms(sympy.Piecewise)) >= 1
    inc = lower_file(STYLES / "ih_include.mod")  # FUNCTIONs from the INCLUDEd file
    assert inc.solve_method in MODCC_METHODS and "exp" in str(inc.derivatives["m"])
    kin = lower_file(STYLES / "kinetic_neuron.mod")
    assert kin.solve_method == "sparse" and set(kin.derivatives) == {"c1", "c2", "o", "i"}
    total = sum(kin.derivatives.values())
    assert sympy.simplify(total) == 0  # mass action conserves c1 + c2 + o + i
    catf = lower_file(STYLES / "cat_faraday.mod")
    assert catf.parameter_names() == ["gbar", "q"]


def test_net_receive_lowers_to_its_jump_and_translates():
    syn = lower_file(STYLES / "syn_netreceive.mod")
    g, weight = sympy.symbols("g weight")
    assert syn.events == {"g": g + weight} and syn.event_args == ["weight"]
    assert "NET_RECEIVE(weight) {" in translate_lowered(syn)


def test_post_event_lowers_to_its_jump_and_translates(tmp_path):
    stdp = tmp_path / "stdp.mod"
    stdp.write_text((STYLES / "syn_netreceive.mod").read_text() + "POST_EVENT(t) {\n    g = 0.5*g\n}\n")
    low = lower_file(stdp)
    assert low.post_events == {"g": 0.5 * sympy.Symbol("g")}
    assert "POST_EVENT(time) {" in translate_lowered(low)
    (tmp_path / "stdp_v.mod").write_text(stdp.read_text().replace("g = 0.5*g", "g = v"))
    with pytest.raises(GradgenError) as info:  # a jump that reads v is refused at its block
        lower_file(tmp_path / "stdp_v.mod")
    assert str(info.value).startswith(f"{tmp_path / 'stdp_v.mod'}:16:1: POST_EVENT sets 'g' from the voltage v")


def test_kinetic_scheme_translation_matches_modcc_kinetic(tmp_path):
    """The KINETIC block as DERIVATIVE + sparse, and STEADYSTATE as a closed form, are the
    same numerics as modcc's own KINETIC/STEADYSTATE (measured 1.7e-13 mV over 20 ms)."""
    convert([MECHANISMS / "kmarkov.mod", MECHANISMS / "hh.mod"], tmp_path,
            [ParamRef.parse("kmarkov.gbar")])
    spec = cable_cell_spec(["kmarkov", "hh"])
    sites = ["(location 0 0)", "(location 0 1)"]
    native = GradientModel.load(tmp_path).simulate(spec, sites, 20, 0.0025, gradients=False).v
    # the reference copy replaced by its translation (gradgen writes only into its own folders)
    shutil.copyfile(translate(MECHANISMS / "kmarkov.mod", tmp_path / "tr"), tmp_path / "original" / "kmarkov.mod")
    translated = GradientModel.load(tmp_path).simulate(spec, sites, 20, 0.0025, gradients=False).v
    assert np.ptp(native) > 50  # the cable spikes
    assert np.max(np.abs(native - translated)) < 1e-9


def test_coverage_table_over_a_directory(tmp_path, capsys):
    """A LINEAR gate (compared with modcc's own LINEAR solver), a NEURON-style synapse (on
    the test cable with a spike train), a POST_EVENT synapse that conversion refuses (its jump
    reads v) and a
    file with a syntax error, one row each."""
    (tmp_path / "gate.mod").write_text((STYLES / "gate_linear.mod").read_text())
    syn = (STYLES / "syn_netreceive.mod").read_text()
    (tmp_path / "syn.mod").write_text(syn)
    (tmp_path / "stdp.mod").write_text(syn.replace("expsyn2", "stdp") + "POST_EVENT(t) {\n    g = v\n}\n")
    (tmp_path / "broken.mod").write_text("NEURON { SUFFIX b }\nBREAKPOINT { x = }\n")
    args = ["--all-params", "--dt", "0.01", "--tfinal", "15", "--tolerance", "0.02"]
    code = main(["check", str(tmp_path), "--json", *args])
    rows = {Path(r["file"]).name: r for r in json.loads(capsys.readouterr().out)}
    assert code == 1  # two files cannot be checked
    assert rows["broken.mod"]["parsed"] is False and "broken.mod:2:" in rows["broken.mod"]["error"]
    assert rows["stdp.mod"]["parsed"] and rows["stdp.mod"]["converted"] is False
    assert "POST_EVENT" in rows["stdp.mod"]["error"]
    syn = rows["syn.mod"]
    # measured at dt 0.01 over 15 ms: 2.9e-11 mV, 3.0e-3 (tau)
    assert syn["compiled"] and syn["forward_max_abs_diff_mV"] < 1e-9 and syn["worst_rel_error"] < 0.02
    gate = rows["gate.mod"]
    assert gate["compiled"] and not gate["translated_reference"]
    # measured 9e-12 mV and 1.2e-4 at dt 0.0025 over 20 ms; dt 0.01 here (HH background)
    assert gate["forward_max_abs_diff_mV"] < 1e-9 and gate["worst_rel_error"] < 0.02
    assert main(["check", str(tmp_path / "gate.mod"), "--coverage", *args]) == 0
    table = capsys.readouterr().out
    assert table.startswith("| file | parsed | converted | compiled |")
    assert "| gate.mod | yes | yes | yes |" in table


def test_only_vtrap_style_guards_become_exprelr():
    from gradgen.nmodl.ir import exprelr
    from gradgen.nmodl.exprelr_guards import guards_to_exprelr

    v, y = sympy.symbols("v y")
    x = -(v + 40)
    vtrap = sympy.Piecewise((y * (1 - x / y / 2), fabs(x / y) < 1e-6), (x / (sympy.exp(x / y) - 1), True))
    assert guards_to_exprelr(0.1 * vtrap) == 0.1 * y * exprelr(x / y)
    other = sympy.Piecewise((y, v < 0), (x / (sympy.exp(x / y) - 1), True))  # guard is not the limit
    assert guards_to_exprelr(other) == other
    clamp = sympy.Piecewise((1, v < -60), (v / 10, True))
    assert guards_to_exprelr(clamp) == clamp


def test_units_modcc_rejects_are_dropped_not_copied(tmp_path):
    """`kappa = -6 (-mV)` (ModelDB 180370), `(mM-cm2/ms-mA)` (ModelDB 98017): the unit is
    documentation; copied into the translation or the gradient version it failed modcc."""
    source = tmp_path / "negunit.mod"
    source.write_text("NEURON { SUFFIX negunit NONSPECIFIC_CURRENT i RANGE g }\n"
                      "PARAMETER { g = 0.001 (S/cm2) kappa = -6 (-mV) alpha = 1 (mM-cm2/ms-mA) }\n"
                      "BREAKPOINT { i = g*(v + 65)/(1 + exp((v + 40)/kappa)) }\n")
    text = translate_lowered(lower_file(source))
    assert "(-mV)" not in text and "(S/cm2)" in text and "ms-mA" not in text
    assert modcc_accepts(text)
    convert([source], tmp_path / "out", [ParamRef.parse("negunit.kappa")])
    gradient = next((tmp_path / "out").glob("*negunit.mod")).read_text()
    assert "(-mV)" not in gradient and modcc_accepts(gradient)
