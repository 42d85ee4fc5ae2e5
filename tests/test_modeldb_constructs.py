"""NEURON constructs of published (ModelDB) mechanisms: read, or refused in one line.

Small files written for these tests (tests/data/modeldb/) imitate the styles found in the
ModelDB corpus (benchmarks/modeldb_coverage.py, docs/modeldb.md): states stepped by a
SOLVEd PROCEDURE, ASSIGNED values set in the SOLVEd block and read by BREAKPOINT,
``state_discontinuity``, the no-op ``VERBATIM return 0; ENDVERBATIM``. Each converts and
its gradient matches central finite differences of its translation (the reference modcc
compiles); corpus files are read by path where the corpus is present.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import sympy

from gradgen.checks.coverage import check_file, row_ok
from gradgen.errors import GradgenError
from gradgen.nmodl.lower import lower_file
from gradgen.nmodl.parser import parse_text
from gradgen.params import ParamRef
from gradgen.sensitivity.derive import derive_contributor
from gradgen.sensitivity.straight_line import Assignment, Code, stage_states
from gradgen.targets.arbor.build import modcc_accepts
from gradgen.targets.arbor.translate import translate_lowered

DATA = Path(__file__).parent / "data" / "modeldb"
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "modeldb"
DT, T_END = 0.0025, 20.0
FORWARD_BOUND_MV, GRADIENT_BOUND = 1e-8, 0.02  # the acceptance bounds


def test_solved_procedure_is_an_explicit_map_of_the_old_states():
    low = lower_file(DATA / "kx_explicit.mod")
    assert low.solve_method == "explicit" and not low.derivatives
    # one step by hand, statement after statement as NEURON runs the procedure
    v, dt, c, o = -30.0, 0.1, 0.7, 0.3
    a = 1 / (3 * (1 + math.exp(-(v + 40) / 9)))
    b = 1 / (3 * (1 + math.exp((v + 40) / 9)))
    c_new = c + dt * (b * o - a * c)
    o_new = o + dt * (a * c_new - b * o)  # reads the c just updated
    values = {"v": v, "dt": dt, "c": c, "o": o, "celsius": 6.3, "vh": -40, "slope": 9, "tau": 3}
    got = {s: float(e.subs(values)) for s, e in low.explicit.items()}
    assert got == pytest.approx({"c": c_new, "o": o_new}, rel=1e-14)
    text = translate_lowered(low)
    assert "SOLVE states\n" in text and "METHOD" not in text
    assert modcc_accepts(text)


def test_after_cvode_is_a_solved_procedure_under_the_fixed_step(tmp_path):
    """NEURON 9's fixed step runs a PROCEDURE solved with METHOD after_cvode once per step at
    V^{n+1}, as a METHOD-less SOLVE (measured: a counter in it counts steps, and the v it
    reads is the new one); 168858 vsource's clamp current."""
    text = (DATA / "kx_explicit.mod").read_text()
    solve = re.search(r"SOLVE (\w+)", text)
    after = tmp_path / "kx_explicit.mod"
    after.write_text(text[: solve.end()] + " METHOD after_cvode" + text[solve.end():])
    plain, via_after = lower_file(DATA / "kx_explicit.mod"), lower_file(after)
    assert via_after.solve_method == "explicit"
    assert via_after.explicit == plain.explicit


def test_staged_state_updates_do_not_see_each_other():
    """After CSE, a new value that names a state assigned before it is staged."""
    a, b = sympy.symbols("a b")
    code = Code([Assignment("a", a + b), Assignment("b", a * b)])
    stage_states(code, ["a", "b"], "gb")
    assert [(s.target, str(s.expr)) for s in code.statements] == [
        ("gbn0", "a + b"), ("gbn1", "a*b"), ("a", "gbn0"), ("b", "gbn1")]
    assert code.locals == ["gbn0", "gbn1"]
    plain = Code([Assignment("a", a + b), Assignment("b", b * 2)])
    stage_states(plain, ["a", "b"], "gb")
    assert [s.target for s in plain.statements] == ["a", "b"]


def test_assigned_set_by_the_solved_block_is_read_by_breakpoint():
    low = lower_file(DATA / "nap_minf.mod")
    (current,) = low.currents
    assert sympy.Symbol("minf") not in current.expr.free_symbols
    # minf(v) enters the current as NEURON's and modcc's LOCAL would: not in the conductance
    assert current.conductance is not None
    assert modcc_accepts(translate_lowered(low))


def test_state_discontinuity_is_the_event_assignment():
    low = lower_file(DATA / "syn_discontinuity.mod")
    assert low.events == {"g": sympy.Symbol("g") + sympy.Symbol("weight")}


@pytest.mark.parametrize("name", ["kx_explicit.mod", "nap_minf.mod", "syn_discontinuity.mod"])
def test_gradients_match_finite_differences(name):
    row = check_file(DATA / name, DT, T_END)
    assert row.error is None, row.error
    assert row.translated_reference
    assert row_ok(row, FORWARD_BOUND_MV, GRADIENT_BOUND), row


def _error(text: str) -> str:
    with pytest.raises(GradgenError) as err:
        lower_source(text)
    return str(err.value)


def lower_source(text: str):
    from gradgen.nmodl.lower import lower

    return lower(parse_text(text, "x.mod"))


CHANNEL = """NEURON {{ SUFFIX x NONSPECIFIC_CURRENT i }}
PARAMETER {{ g = 0.001 }}
ASSIGNED {{ v (mV) }}
STATE {{ s }}
BREAKPOINT {{ SOLVE d METHOD cnexp
  i = g*s*(v + 70) }}
DERIVATIVE d {{ {body} }}
{extra}
"""


@pytest.mark.parametrize("body, extra, message", [
    ("s' = scop_random() - s", "", "x.mod:7:21: random numbers (scop_random)"),
    ("s' = -s", "NET_RECEIVE(w) { net_send(1, 1) }", "x.mod:8:18: net_send (self-events) is not supported"),
    ("s' = -s\nVERBATIM\n x = 1;\nENDVERBATIM", "", "x.mod:8:1: VERBATIM is not supported yet"),
])
def test_neuron_only_constructs_are_refused_in_one_line(body, extra, message):
    error = _error(CHANNEL.format(body=body, extra=extra))
    assert error.startswith(message) and "\n" not in error


def test_no_op_verbatim_is_read():
    low = lower_source(CHANNEL.format(body="s' = -s\nVERBATIM\n  return 0;\nENDVERBATIM", extra=""))
    assert low.states == ["s"]


def test_printf_is_blanked_and_other_strings_are_refused():
    """printf only writes to the terminal; its string may hold ':' and parentheses."""
    body = 's\' = -s\n  printf("t: %g (ms)\\n", t)'
    low = lower_source(CHANNEL.format(body=body, extra=""))
    assert low.states == ["s"]
    assert _error(CHANNEL.format(body="s' = -s", extra='FUNCTION f() { f = "x" }')).startswith(
        "x.mod:8:20: strings are not supported yet")
    assert _error(CHANNEL.format(body='s\' = -s\n printf("(", 1', extra="")).startswith(
        "x.mod:8:2: printf( without its closing parenthesis")


def test_ceil_is_minus_floor_of_minus_x():
    from gradgen.nmodl.ir import nfloor

    low = lower_source(CHANNEL.format(body="s' = ceil(g*1000 + 0.5) - s", extra=""))
    rate = low.derivatives["s"]
    assert rate.has(nfloor)
    assert float(rate.subs(low.states[0], 0).subs(sympy.Symbol("g"), 0.001)) == math.ceil(1.5)


def test_floor_parses_and_explicit_gradients_use_the_target_methods():
    from gradgen.nmodl.ir import nfloor

    low = lower_source(CHANNEL.format(body="s' = floor(g) - s", extra=""))
    assert low.derivatives["s"].has(nfloor)  # printed in a form modcc compiles
    assert modcc_accepts(translate_lowered(low))
    explicit = lower_file(DATA / "kx_explicit.mod")
    system = derive_contributor(explicit, [ParamRef("kx", "gbar")])
    assert [s.target for s in system.phase_b.statements if s.target in ("c", "o")] == ["c", "o"]


# (17664/NaF.mod, 7.5 S/cm², is too stiff for dt 0.0025 on the test cable: docs/modeldb.md)
SOLVED_PROCEDURES = ["17664/KA.mod", "17664/K2.mod", "121600/model_4_HH.mod"]


@pytest.mark.skipif(not CORPUS.is_dir(), reason="the ModelDB corpus is not available")
@pytest.mark.parametrize("rel", SOLVED_PROCEDURES)
def test_published_solved_procedures_match_finite_differences(rel):
    """Published channels stepped by a SOLVEd PROCEDURE (Miyasho et al. 2001; Meuth et al.
    2005), as their authors wrote them."""
    row = check_file(CORPUS / rel, DT, T_END)
    assert row.error is None, row.error
    assert row_ok(row, FORWARD_BOUND_MV, GRADIENT_BOUND), row


def test_valid_neuron_syntax_parses():
    """Forms NEURON accepts that gave parse errors: two INITIAL blocks (run in order), a
    derivative read after its assignment (D'), a FUNCTION called as a statement, cosh."""
    low = lower_source("""NEURON { SUFFIX y NONSPECIFIC_CURRENT i }
PARAMETER { g = 0.001 }
ASSIGNED { v (mV) q }
STATE { s r }
INITIAL { s = 0.5 }
BREAKPOINT { SOLVE d METHOD cnexp
  i = g*s*r*(v + 70) }
DERIVATIVE d { setq(v)
  s' = (q - s)/cosh(v/20)
  r' = s' - r }
FUNCTION setq(x) { q = 1/(1 + exp(-x/10))  setq = 0 }
INITIAL { r = s }
""")
    s, r, v = sympy.symbols("s r v")
    assert low.initial == {"s": 0.5, "r": 0.5}
    assert sympy.simplify(low.derivatives["r"] - (low.derivatives["s"] - r)) == 0
    assert not low.derivatives["s"].has(sympy.cosh)  # modcc has no cosh


def test_initial_inside_net_receive_is_refused_in_one_line():
    error = _error("""NEURON { POINT_PROCESS z NONSPECIFIC_CURRENT i }
STATE { g }
BREAKPOINT { SOLVE d METHOD cnexp
  i = g*v }
DERIVATIVE d { g' = -g }
NET_RECEIVE(weight, n) {
  INITIAL { n = 0 }
  g = g + weight
}
""")
    assert error.startswith("x.mod:7:3: INITIAL inside NET_RECEIVE") and "\n" not in error


SATURATING = """NEURON {{ POINT_PROCESS sat NONSPECIFIC_CURRENT i }}
PARAMETER {{ tau1 = 1 tau2 = 5 gmax = 0.01 e = 0 }}
ASSIGNED {{ v g }}
STATE {{ A B }}
INITIAL {{ A = 0 B = 0 }}
BREAKPOINT {{ SOLVE d METHOD cnexp
  g = B - A
  if ({cond}) {{ g = gmax }}
  i = g*(v - e) }}
DERIVATIVE d {{ A' = -A/tau1  B' = -B/tau2 }}
NET_RECEIVE(w) {{ A = A + w  B = B + w }}
"""


def test_if_else_in_a_current_converts(tmp_path):
    """A saturating conductance (ModelDB 139421): the branch holds no v, so modcc's
    conductance of the LOCAL it becomes is exact; a branch on v is a LOCAL holding v, read
    by modcc's conductance rule like any other."""
    from gradgen.convert import convert

    for n, cond in enumerate(["g > gmax", "v > 0"]):
        source = tmp_path / f"sat{n}.mod"
        source.write_text(SATURATING.format(cond=cond))
        low = lower_file(source)
        assert (low.currents[0].conductance is None) == (n == 0)
        assert modcc_accepts(translate_lowered(low))
        convert([source], tmp_path / f"out{n}", None)


def test_event_jumps_with_if_else_translate(tmp_path):
    """The staged values of NET_RECEIVE and the LOCALs of its if/else have distinct names
    (ModelDB 139421 MyExp2SynBB, 145836: modcc rejected "pe0" declared twice)."""
    low = lower_source("""NEURON { POINT_PROCESS z NONSPECIFIC_CURRENT i }
PARAMETER { tau1 = 1 tau2 = 5 }
STATE { A B }
BREAKPOINT { SOLVE d METHOD cnexp
  i = (B - A)*v }
DERIVATIVE d { A' = -A/tau1  B' = -B/tau2 }
NET_RECEIVE(w) {
  if (w > 0) { A = A + w } else { A = A - w }
  B = B + w
}
""")
    assert modcc_accepts(translate_lowered(low))


TWO_CURRENTS = """NEURON { POINT_PROCESS two NONSPECIFIC_CURRENT inmda, iampa RANGE e }
PARAMETER { tau1 = 1 tau2 = 5 gn = 0.5 ga = 1 e = 0 }
ASSIGNED { v inmda iampa }
STATE { A B }
INITIAL { A = 0 B = 0 }
BREAKPOINT { SOLVE d METHOD cnexp
  inmda = gn*B*(v - e)/(1 + exp(-0.06*v))
  iampa = ga*A*(v - e) }
DERIVATIVE d { A' = -A/tau1  B' = -B/tau2 }
NET_RECEIVE(srcgid, w) { A = A + w  B = B + w }
"""


def test_two_nonspecific_currents_and_a_weight_vector(tmp_path):
    """Arbor's modcc takes one NONSPECIFIC_CURRENT and one NET_RECEIVE argument (ModelDB
    139421 CA1ika, MyExp2SynAlpha): the currents are summed into the first, and the argument
    the event reads receives Arbor's weight; gradients against finite differences."""
    from gradgen.targets.arbor.dialect import event_arguments

    source = tmp_path / "two.mod"
    source.write_text(TWO_CURRENTS)
    low = lower_file(source)
    assert event_arguments(low) == ["w"]
    text = translate_lowered(low)
    assert "NONSPECIFIC_CURRENT inmda\n" in text and "iampa" not in text and "NET_RECEIVE(w)" in text
    assert modcc_accepts(text)
    row = check_file(source, DT, T_END)
    assert row.error is None, row.error
    assert row_ok(row, FORWARD_BOUND_MV, GRADIENT_BOUND), row


def test_an_event_reading_two_arguments_is_refused_for_arbor():
    low = lower_source(TWO_CURRENTS.replace("A = A + w  B = B + w", "A = A + w  B = B + srcgid"))
    from gradgen.targets.arbor.dialect import event_arguments

    with pytest.raises(GradgenError, match=r"x.mod:10:1: NET_RECEIVE reads 2 arguments"):
        event_arguments(low)


IN_DERIVATIVE = """NEURON { POINT_PROCESS bg NONSPECIFIC_CURRENT i }
PARAMETER { tau1 = 1 tau2 = 5 gmax = 0.5 e = 0 }
ASSIGNED { v i g }
STATE { A B }
INITIAL { A = 0 B = 0 }
BREAKPOINT { SOLVE d METHOD cnexp }
DERIVATIVE d {
  A' = -A/tau1
  B' = -B/tau2
  g = B - A
  if (g > gmax) { g = gmax }
  i = g*(v - e)
}
NET_RECEIVE(w) { A = A + w  B = B + w }
"""


def test_current_assigned_only_in_the_derivative_block(tmp_path):
    """A current set after the ODEs in the SOLVEd block (ModelDB 150288 bg2pyr): NEURON's
    nrn_cur reads the value nrn_state left (the same closed form at the new states and v)
    and its numerical conductance is 0, as BREAKPOINT never changes it."""
    source = tmp_path / "bg.mod"
    source.write_text(IN_DERIVATIVE)
    (current,) = lower_file(source).currents
    assert current.conductance == 0 and current.expr.has(sympy.Symbol("v"))
    row = check_file(source, DT, T_END)
    assert row.error is None, row.error
    assert row_ok(row, FORWARD_BOUND_MV, GRADIENT_BOUND), row


def test_a_function_reads_assigned_values_set_before_the_call():
    """``T = 273.15 + celsius`` in INITIAL, read inside a FUNCTION of the current (ModelDB
    185513 CaHVA, 243446 mod_CaP); the caller's LOCALs stay invisible to it."""
    low = lower_source("""NEURON { SUFFIX ghk USEION ca READ cai, cao WRITE ica }
PARAMETER { perm = 7.5e-6 }
ASSIGNED { v cai cao ica celsius T }
INITIAL { T = 273.15 + celsius }
BREAKPOINT { LOCAL perm
  perm = 1
  ica = perm*v*(cai - cao*f(v))
}
FUNCTION f(v) { f = exp(-23.2*v/T)*perm }
""")
    (current,) = low.currents
    celsius, perm, v = sympy.symbols("celsius perm v")
    assert current.expr.has(celsius) and not current.expr.has(sympy.Symbol("T"))
    # the function's perm is the PARAMETER, not the caller's LOCAL perm = 1
    assert current.expr.has(perm) and modcc_accepts(translate_lowered(low))


def test_a_holder_of_range_values_without_breakpoint_runs_beside(tmp_path):
    """NEURON takes a mechanism without BREAKPOINT (ModelDB 95960 spines: a spine scale
    factor other code reads); it computes nothing, so it is checked running beside the
    background channel, forward fidelity and the background's gradients."""
    source = tmp_path / "spines.mod"
    source.write_text("NEURON { SUFFIX spines RANGE scale }\nPARAMETER { scale = 1 }\n")
    low = lower_file(source)
    assert not low.currents and not low.states
    assert modcc_accepts(translate_lowered(low))
    row = check_file(source, DT, T_END)
    assert row.error is None and row.runs_beside, row
    assert row_ok(row, FORWARD_BOUND_MV, GRADIENT_BOUND), row
    with pytest.raises(GradgenError, match="x.mod:1:17: the mechanism has no BREAKPOINT block"):
        lower_source("NEURON { SUFFIX y NONSPECIFIC_CURRENT i }\nASSIGNED { i }\n")


def test_a_range_value_set_from_outside_is_a_parameter():
    """A RANGE ASSIGNED the mechanism reads but never assigns (ModelDB 185513 h: ``eh``, set
    from hoc) is a PARAMETER with NEURON's start value 0; an assigned one stays ASSIGNED."""
    low = lower_source("""NEURON { SUFFIX hx NONSPECIFIC_CURRENT ih RANGE gbar, eh, minf }
PARAMETER { gbar = 0.001 }
ASSIGNED { v ih eh minf }
BREAKPOINT { minf = 1/(1 + exp(v/10))
  ih = gbar*minf*(v - eh) }
""")
    assert low.parameter_names() == ["gbar", "eh"]
    assert low.mechanism.parameter("eh").value == 0.0 and low.mechanism.parameter("minf") is None
    assert modcc_accepts(translate_lowered(low))


def test_a_value_an_event_changes_is_not_fixed_at_initial():
    """``t0 = -1`` in INITIAL and ``t0 = t`` in NET_RECEIVE (ModelDB 150288 tone2pyrD): t0
    is no constant but a state the event sets to the clock (gradgen.nmodl.clock), so the
    branch on it is lowered (before, it was dropped as never taken)."""
    from gradgen.nmodl.clock import CLOCK

    low = lower_source("""NEURON { POINT_PROCESS z NONSPECIFIC_CURRENT i }
PARAMETER { Cd = 1 }
ASSIGNED { t0 on v i }
STATE { r }
INITIAL { t0 = -1  on = 0 }
BREAKPOINT { SOLVE d METHOD cnexp
  i = r*v }
DERIVATIVE d {
  if (t0 > 0) {
    if (t - t0 < Cd) { on = 1 } else { on = 0 }
  }
  r' = on - r
}
NET_RECEIVE(w) { t0 = t }
""")
    assert low.events["t0"] == CLOCK
    assert low.derivatives["r"].has(sympy.Piecewise) and low.derivatives["r"].has(sympy.Symbol("t0"))


HELD = """NEURON {{ POINT_PROCESS held NONSPECIFIC_CURRENT i RANGE wf }}
PARAMETER {{ tau1 = 1 tau2 = 5 tauV = 20 factor = 2 }}
ASSIGNED {{ v i wf }}
STATE {{ A B gV }}
INITIAL {{ A = 0 B = 0 gV = 0.5 wf = 1 }}
BREAKPOINT {{ SOLVE d METHOD {method}
  i = (B - A)*gV*v }}
DERIVATIVE d {{
  A' = -A/tau1
  B' = -B/tau2
  gV' = {rate}*(1 - gV)/tauV
}}
NET_RECEIVE(weight) {{ wf = weight*factor  A = A + wf  B = B + wf }}
"""


@pytest.mark.parametrize("method, rate", [("cnexp", "0.1/wf"), ("derivimplicit", "(0.1 + B)/wf")])
def test_a_value_held_between_events_is_a_state_that_jumps(tmp_path, method, rate):
    """``wf`` set in INITIAL and NET_RECEIVE and read by the ODEs (ModelDB 145836
    Exp3NMDA/Exp4NMDA) keeps its value between events: a STATE that only jumps, not the
    constant 1 of INITIAL. modcc's cnexp refuses an ODE naming another state (gV' reads B
    under derivimplicit): the translation reads it through a LOCAL set after the earlier
    ODEs, as NEURON's and gradgen's updates do; gradients against finite differences."""
    source = tmp_path / f"held_{method}.mod"
    source.write_text(HELD.format(method=method, rate=rate))
    low = lower_file(source)
    assert "wf" in low.states and low.events["wf"] == sympy.Symbol("factor") * sympy.Symbol("weight")
    assert modcc_accepts(translate_lowered(low))
    row = check_file(source, DT, T_END)
    assert row.error is None, row.error
    assert row_ok(row, FORWARD_BOUND_MV, GRADIENT_BOUND), row


def test_units_modcc_rejects_are_dropped():
    """modcc rejects "-" and "*" in a unit (ModelDB 144007 CaInternal: (mM*cm2/ms/mA));
    units are documentation once values are folded, so such a unit is dropped."""
    from gradgen.nmodl.printer import modcc_unit

    assert [modcc_unit(u) for u in ("mM*cm2/ms/mA", "-mV", "mM cm2/ms/mA", "mho/cm2")] == [
        None, None, "mM cm2/ms/mA", "mho/cm2"]
    low = lower_source("NEURON { SUFFIX u RANGE a }\nPARAMETER { a = 1 (mM*cm2/ms/mA) }\n")
    assert modcc_accepts(translate_lowered(low))


def test_a_written_concentration_starts_at_the_ion_value():
    """A Ca pool whose INITIAL does not set its STATE cai (ModelDB 98017 Cai) starts at the
    ion's value, which NEURON copies into the state (cai0_ca_ion = 5e-5 mM), not at 0 (a
    Nernst eca of 0 mM is infinite; Arbor leaves such a state NaN)."""
    low = lower_source("""NEURON { SUFFIX cpool USEION ca READ ica WRITE cai }
PARAMETER { tau = 240 }
STATE { cai }
BREAKPOINT { SOLVE s METHOD cnexp }
DERIVATIVE s { cai' = -0.0006*ica - cai/tau }
""")
    assert low.initial == {"cai": 5e-5}


BRANCHED_CURRENT = """NEURON { SUFFIX kb USEION k READ ek WRITE ik RANGE gbar, c }
PARAMETER { gbar = 0.01 c = 200 }
ASSIGNED { v ek ik }
STATE { m }
INITIAL { m = 1/(1 + exp(-(v + 40)/9)) }
BREAKPOINT { SOLVE s METHOD cnexp
  if (0.004*c < 1) {
    ik = gbar*m*0.004*c*(v - ek)
  } else {
    ik = gbar*m*(v - ek)
  }
}
DERIVATIVE s { m' = (1/(1 + exp(-(v + 40)/9)) - m)/5 }
"""


def test_a_current_assigned_in_both_branches_of_an_if_else(tmp_path):
    """``if (0.004*cai < 1) { ik = … (v - ek) } else { ik = … }`` (ModelDB 168858 kc): the
    conductance is the slope of the branch taken (NEURON's numerical one), written out for
    modcc; gradients against finite differences on either side of the branch."""
    for n, c in enumerate(["200", "300"]):
        source = tmp_path / f"kb{n}.mod"
        source.write_text(BRANCHED_CURRENT.replace("c = 200", f"c = {c}"))
        low = lower_file(source)
        assert low.currents[0].conductance is not None
        assert modcc_accepts(translate_lowered(low))
        row = check_file(source, DT, T_END)
        assert row.error is None, row.error
        assert row_ok(row, FORWARD_BOUND_MV, GRADIENT_BOUND), row


ELECTRODE = """NEURON { POINT_PROCESS shunt ELECTRODE_CURRENT i RANGE g, e, amp }
PARAMETER { g = 0.002 (uS) e = -40 (mV) amp = 0.01 (nA) }
ASSIGNED { v i }
BREAKPOINT { i = amp - g*(v - e) }
"""


def test_an_electrode_current_is_the_membrane_current_of_opposite_sign(tmp_path):
    """ELECTRODE_CURRENT (ModelDB 116094 shuntI without its time window): NEURON adds i to
    the cell (inward positive), so it is the nonspecific membrane current -i; gradients of
    the injected amplitude and the shunt against finite differences."""
    source = tmp_path / "shunt.mod"
    source.write_text(ELECTRODE)
    (current,) = lower_file(source).currents
    g, e, amp, v = sympy.symbols("g e amp v")
    assert sympy.simplify(current.expr - (g * (v - e) - amp)) == 0
    assert modcc_accepts(translate_lowered(lower_file(source)))
    row = check_file(source, DT, T_END)
    assert row.error is None, row.error
    assert row_ok(row, FORWARD_BOUND_MV, GRADIENT_BOUND), row


def test_the_time_an_event_keeps_is_the_clock():
    """``tlast = t`` in NET_RECEIVE, read by BREAKPOINT: a state the event sets to the clock."""
    from gradgen.nmodl.clock import CLOCK

    low = lower_source("""NEURON { POINT_PROCESS z NONSPECIFIC_CURRENT i }
ASSIGNED { tlast v i }
INITIAL { tlast = -1e9 }
BREAKPOINT { i = 0.001*exp(-(tlast + 5))*v }
NET_RECEIVE(w) { tlast = t }
""")
    assert low.events == {"tlast": CLOCK}
    assert low.currents[0].expr.has(sympy.Symbol("tlast"))


def test_a_global_named_like_an_ion_is_no_parameter_for_arbor(tmp_path):
    """``GLOBAL k`` in a channel that uses the ion k (ModelDB 183300 KS): Arbor would read the
    original's ``IKs/k=1.5`` as an ion renaming (a RuntimeError deep in the simulation);
    refused at conversion, naming the parameter."""
    from gradgen.convert import convert

    source = tmp_path / "ks.mod"
    source.write_text("""NEURON { SUFFIX IKs USEION k READ ek WRITE ik RANGE gbar GLOBAL k }
PARAMETER { gbar = 0.01 k = 1.5 }
ASSIGNED { v ek ik }
BREAKPOINT { ik = gbar*k*(v - ek) }
""")
    with pytest.raises(GradgenError, match=r"ks.mod:2:25: GLOBAL 'k' of 'IKs' cannot be a parameter"):
        convert([source], tmp_path / "out", [ParamRef("IKs", "k")])
    convert([source], tmp_path / "out2", [ParamRef("IKs", "gbar")])


def test_the_nernst_slope_is_zero_not_nan_with_a_fixed_reversal_at_zero_concentration():
    """A Ca pool whose INITIAL sets cai = 0 beside a channel reading eca (ModelDB 139421
    caolmw): with a fixed reversal potential (flag 0) the slope flag·(−c/cai) was 0·∞,
    NaN in every dV/dθ from the first step; an if/else on the flag gives 0."""
    from gradgen.protocol import nernst_flag
    from gradgen.sensitivity.nernst import reversal_slope

    low = lower_source("""NEURON { SUFFIX c USEION ca READ eca WRITE ica }
PARAMETER { g = 0.001 }
ASSIGNED { v eca ica celsius }
BREAKPOINT { ica = g*(v - eca) }
""")
    slope = reversal_slope(low, "eca")
    flag, cai, celsius = sympy.Symbol(nernst_flag("ca")), sympy.Symbol("cai"), sympy.Symbol("celsius")
    assert slope.subs({flag: 0, cai: 0, celsius: 6.3}) == 0
    nernst = 8.31446261815324 * 279.45 / (2 * 96485.3321233100184) * 1000  # mV, Arbor's constants
    assert float(slope.subs({flag: 1, cai: 5e-5, celsius: 6.3})) == pytest.approx(-nernst / 5e-5, rel=1e-12)


def test_a_value_a_function_of_the_events_sets_is_not_its_initial_value():
    """185513 DCNsynGABA's NET_RECEIVE calls a FUNCTION that sets ``notFirstSpike``: taken as
    INITIAL's 0, every event was a first one (silently); it changes at events, so it is a
    STATE that jumps there (gradgen.nmodl.assigned_roles), the function's assignment kept."""
    low = lower_source("""NEURON { POINT_PROCESS seen NONSPECIFIC_CURRENT i }
PARAMETER { tau = 2 (ms) e = 0 (mV) }
ASSIGNED { v (mV) i (nA) first }
STATE { g }
INITIAL { g = 0  first = 1 }
BREAKPOINT { SOLVE d METHOD cnexp  i = g*(v - e) }
DERIVATIVE d { g' = -g/tau }
NET_RECEIVE(w) { g = g + w*size() }
FUNCTION size() { if (first) { size = 1 } else { size = 2 }  first = 0 }
""")
    assert "first" in low.states and low.initial["first"] == 1
    g, first, w = sympy.symbols("g first w")
    values = {g: 0.0, first: 1.0, w: 1.0}
    for expected in (1.0, 3.0, 5.0):  # the first event adds w, each later one 2w
        values = {**values, g: float(low.events["g"].xreplace(values)),
                  first: float(low.events["first"].xreplace(values))}
        assert values[g] == expected


def test_translate_names_the_range_values_it_does_not_keep(tmp_path):
    """A monitor's RANGE outputs (168858 Voffset's Vshift) move nothing Arbor keeps: said."""
    from gradgen.errors import GradgenWarning
    from gradgen.targets.arbor.translate import translate

    mod = tmp_path / "mon.mod"
    mod.write_text("""NEURON { SUFFIX mon RANGE vshift, voff }
PARAMETER { voff = -65 (mV) }
ASSIGNED { v (mV) vshift (mV) }
BREAKPOINT { vshift = v - voff }
""")
    with pytest.warns(GradgenWarning, match=r"RANGE vshift of 'mon': no current, state or ion depends"):
        translate(mod, tmp_path / "out")


def test_after_solve_runs_after_the_state_update():
    """NEURON 9 (measured): with s' = 1 under cnexp, dt 0.025 and AFTER SOLVE
    { if (s > 0.06) { s = 0 } }, s reads 0.025, 0.05, 0, 0.025 after the first four steps."""
    low = lower_source("""NEURON { SUFFIX as NONSPECIFIC_CURRENT i }
PARAMETER { g = 0.001 }
STATE { s }
INITIAL { s = 0 }
BREAKPOINT { SOLVE d METHOD cnexp
  i = g*s }
DERIVATIVE d { s' = 1 }
AFTER SOLVE { if (s > 0.06) { s = 0 } }
""")
    clamp, s, dt = low.after_solve["s"], sympy.Symbol("s"), 0.025
    values = [0.0]
    for _ in range(4):
        values.append(float(clamp.subs(s, values[-1] + dt)))
    assert values[1:] == pytest.approx([0.025, 0.05, 0.0, 0.025], abs=1e-15)
    assert modcc_accepts(translate_lowered(low))
    assert _error("NEURON { SUFFIX x }\nAFTER INITIAL { }\n").startswith(
        "x.mod:2:1: AFTER blocks other than AFTER SOLVE are not supported yet")
