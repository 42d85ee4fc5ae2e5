"""NMODL arrays of constant size and FROM loops, unrolled into scalars by the parser.

Each arrayed mechanism here has a twin written by hand with one scalar per element: both
lower to the same equations (value for value), and the arrayed one's gradient matches
central finite differences of its own translation, as `gradgen check` does, and under NEURON
those of the arrayed original as nocmodl compiles it. Refusals are
one line with file:line:col. Corpus files that use arrays are read by path where present.
"""
from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
import sympy

from gradgen.checks.coverage import check_file, row_ok
from gradgen.errors import GradgenError
from gradgen.nmodl.initial_solve import initial_solve_source
from gradgen.nmodl.lower import lower, lower_file
from gradgen.nmodl.parser import parse_file, parse_text

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "modeldb"
DT, T_END = 0.0025, 20.0
FORWARD_BOUND_MV, GRADIENT_BOUND = 1e-8, 0.02  # the acceptance bounds

# Three gates in a row, their rates from a PROCEDURE with a LOCAL array, a PARAMETER array,
# a size from DEFINE, loops in INITIAL, DERIVATIVE and the PROCEDURE, BY and nested loops.
GATES = """NEURON { SUFFIX kg NONSPECIFIC_CURRENT i RANGE g, vh }
DEFINE N 3
PARAMETER { g = 0.002 (S/cm2) vh[2] = -40 (mV) e = -80 (mV) }
ASSIGNED { v (mV) i (mA/cm2) inf[N] tau[N] (ms) }
STATE { s[N] }
INITIAL { rates(v) FROM k = 0 TO N-1 { s[k] = inf[k] } }
BREAKPOINT { SOLVE d METHOD cnexp
  i = g*s[0]*s[1]*s[2]*(v - e) }
DERIVATIVE d { rates(v)
  FROM k = 0 TO N-1 { s'[k] = (inf[k] - s[k])/tau[k] } }
PROCEDURE rates(v (mV)) { LOCAL q[2]
  q[0] = 1  q[1] = 0.5
  FROM k = 0 TO N-1 BY 2 { inf[k] = 1/(1 + exp(-(v - vh[0] - 5*k)/7)) }
  inf[1] = 1/(1 + exp(-(v - vh[1])/9))
  FROM k = 0 TO N-1 {
    tau[k] = q[0] + k*q[1]
    FROM j = 0 TO k { tau[k] = tau[k] + 0.1*j }
    if (k == 2) { tau[k] = 2*tau[k] } }
}
"""
GATES_TWIN = """NEURON { SUFFIX kg NONSPECIFIC_CURRENT i RANGE g, vh_0, vh_1 }
PARAMETER { g = 0.002 (S/cm2) vh_0 = -40 (mV) vh_1 = -40 (mV) e = -80 (mV) }
ASSIGNED { v (mV) i (mA/cm2) inf_0 inf_1 inf_2 tau_0 tau_1 tau_2 (ms) }
STATE { s_0 s_1 s_2 }
INITIAL { rates(v) s_0 = inf_0 s_1 = inf_1 s_2 = inf_2 }
BREAKPOINT { SOLVE d METHOD cnexp
  i = g*s_0*s_1*s_2*(v - e) }
DERIVATIVE d { rates(v)
  s_0' = (inf_0 - s_0)/tau_0  s_1' = (inf_1 - s_1)/tau_1  s_2' = (inf_2 - s_2)/tau_2 }
PROCEDURE rates(v (mV)) { LOCAL q0, q1
  q0 = 1  q1 = 0.5
  inf_0 = 1/(1 + exp(-(v - vh_0)/7))
  inf_2 = 1/(1 + exp(-(v - vh_0 - 10)/7))
  inf_1 = 1/(1 + exp(-(v - vh_1)/9))
  tau_0 = q0
  tau_1 = q0 + q1 + 0.1
  tau_2 = 2*(q0 + 2*q1 + 0.1 + 0.2)
}
"""

# Calcium in three shells, as the ModelDB diffusion models write it: volumes from a
# PROCEDURE loop, COMPARTMENT i, vol[i], diffusion and buffering reactions in FROM loops,
# an influx from a store into the outer shell; the current reads the inner shell (V sees
# every θ). Linear and homogeneous, as gradgen and modcc's sparse take KINETIC schemes: the
# buffer binds at a fixed free-buffer level, the influx is first order in the store.
SHELLS = """NEURON {
  SUFFIX shells
  NONSPECIFIC_CURRENT i
  RANGE gk, influx, D, kf, kb, btot }
DEFINE NS 3
PARAMETER { gk = 0.01 (S/cm2) e = -80 (mV) influx = 2e-5 D = 0.6 kf = 50 kb = 0.5
  btot = 0.02 r = 0.5 kd = 0.001 }
ASSIGNED { v (mV) i (mA/cm2) vol[NS] frat[NS] }
STATE { ca[NS] CaB[NS] src }
INITIAL { volumes()
  FROM k = 0 TO NS-1 { ca[k] = 5e-5  CaB[k] = btot*kf/kb*ca[k] }  src = 1 }
BREAKPOINT { SOLVE scheme METHOD sparse
  i = gk*ca[NS-1]/(ca[NS-1] + kd)*(v - e) }
PROCEDURE volumes() { LOCAL dr
  dr = r/NS
  FROM k = 0 TO NS-1 { vol[k] = (r - k*dr)^2 - (r - (k + 1)*dr)^2  frat[k] = 2*(r - k*dr)/dr }
}
KINETIC scheme { LOCAL w
  COMPARTMENT k, vol[k] {ca CaB}
  ~ src <-> ca[0] (influx*exp(v/30), 0)
  FROM k = 0 TO NS-2 { ~ ca[k] <-> ca[k+1] (D*frat[k+1], D*frat[k+1]) }
  FROM k = 0 TO NS-1 {
    w = vol[k]
    ~ ca[k] <-> CaB[k] (kf*btot*w, kb*w) }
}
"""
SHELLS_TWIN = """NEURON { SUFFIX shells NONSPECIFIC_CURRENT i
  RANGE gk, influx, D, kf, kb, btot }
PARAMETER { gk = 0.01 (S/cm2) e = -80 (mV) influx = 2e-5 D = 0.6 kf = 50 kb = 0.5
  btot = 0.02 r = 0.5 kd = 0.001 }
ASSIGNED { v (mV) i (mA/cm2) vol_0 vol_1 vol_2 frat_0 frat_1 frat_2 }
STATE { ca_0 ca_1 ca_2 CaB_0 CaB_1 CaB_2 src }
INITIAL { volumes()
  ca_0 = 5e-5  CaB_0 = btot*kf/kb*ca_0
  ca_1 = 5e-5  CaB_1 = btot*kf/kb*ca_1
  ca_2 = 5e-5  CaB_2 = btot*kf/kb*ca_2  src = 1 }
BREAKPOINT { SOLVE scheme METHOD sparse
  i = gk*ca_2/(ca_2 + kd)*(v - e) }
PROCEDURE volumes() { LOCAL dr
  dr = r/3
  vol_0 = r^2 - (r - dr)^2  frat_0 = 2*r/dr
  vol_1 = (r - dr)^2 - (r - 2*dr)^2  frat_1 = 2*(r - dr)/dr
  vol_2 = (r - 2*dr)^2 - (r - 3*dr)^2  frat_2 = 2*(r - 2*dr)/dr
}
KINETIC scheme {
  COMPARTMENT vol_0 {ca_0 CaB_0}
  COMPARTMENT vol_1 {ca_1 CaB_1}
  COMPARTMENT vol_2 {ca_2 CaB_2}
  ~ src <-> ca_0 (influx*exp(v/30), 0)
  ~ ca_0 <-> ca_1 (D*frat_1, D*frat_1)
  ~ ca_1 <-> ca_2 (D*frat_2, D*frat_2)
  ~ ca_0 <-> CaB_0 (kf*btot*vol_0, kb*vol_0)
  ~ ca_1 <-> CaB_1 (kf*btot*vol_1, kb*vol_1)
  ~ ca_2 <-> CaB_2 (kf*btot*vol_2, kb*vol_2)
}
"""

# A chain started at its steady state (STEADYSTATE in INITIAL): the original's own solve is
# not pasted into the gradient mechanism (modcc reads no arrays); it is solved by elimination.
CHAIN = """NEURON {
  SUFFIX chain
  NONSPECIFIC_CURRENT i
  RANGE g, a0, b0
}
PARAMETER { g = 0.02 (S/cm2) e = -80 (mV) a0 = 0.4 b0 = 0.2 }
ASSIGNED { v (mV) i (mA/cm2) }
STATE { c[4] }
INITIAL { SOLVE scheme STEADYSTATE sparse }
BREAKPOINT { SOLVE scheme METHOD sparse
  i = g*c[3]*(v - e) }
KINETIC scheme {
  FROM k = 0 TO 2 { ~ c[k] <-> c[k+1] (a0*exp((v + 40 - 5*k)/20), b0*exp(-(v + 40)/25)) }
  CONSERVE c[0] + c[1] + c[2] + c[3] = 1
}
"""


def _same_value(a: sympy.Expr, b: sympy.Expr, point: dict[sympy.Symbol, float]) -> bool:
    x, y = complex(a.subs(point)), complex(b.subs(point))
    return abs(x - y) <= 1e-12 * max(abs(x), abs(y), 1e-300)


@pytest.mark.parametrize("arrayed, twin", [(GATES, GATES_TWIN), (SHELLS, SHELLS_TWIN)])
def test_unrolled_mechanism_lowers_as_its_scalar_twin(arrayed, twin):
    a, b = lower(parse_text(arrayed, "a.mod")), lower(parse_text(twin, "b.mod"))
    assert a.states == b.states and a.parameter_names() == b.parameter_names()
    assert a.mechanism.range_names == b.mechanism.range_names
    pairs = [(a.derivatives[s], b.derivatives[s]) for s in b.states]
    pairs += [(a.initial[s], b.initial[s]) for s in b.states]
    pairs += [(x.expr, y.expr) for x, y in zip(a.currents, b.currents, strict=True)]
    symbols = set().union(*(x.free_symbols | y.free_symbols for x, y in pairs))
    rng = random.Random(7)  # a generic point: positive values in the ranges the models use
    point = {s: rng.uniform(0.2, 0.9) * (-60 if s.name == "v" else 1) for s in symbols}
    assert all(_same_value(x, y, point) for x, y in pairs)


@pytest.mark.parametrize("text", [GATES, SHELLS, CHAIN], ids=["gates", "shells", "chain"])
def test_arrayed_gradients_match_finite_differences(text, tmp_path):
    path = tmp_path / "arrayed.mod"
    path.write_text(text)
    assert initial_solve_source(lower_file(path)) is None  # the arrayed source is never pasted
    row = check_file(path, DT, T_END)
    assert row.error is None, row.error
    assert row_ok(row, FORWARD_BOUND_MV, GRADIENT_BOUND), row
    assert row.worst_rel_error is not None and not row.runs_beside


def test_unrolled_kinetic_scheme_matches_neurons_own_arrays(tmp_path):
    """NEURON compiles the arrayed original as written (nocmodl's arrays and loops): the
    unrolled gradient mechanism's V against it, and dV/dθ against FD of it. Measured: V within
    4.5e-12 mV, dV/dθ within 7.1e-8 (D), as for hand-written scalar files (test_neuron.py)."""
    pytest.importorskip("neuron")
    path = tmp_path / "shells.mod"
    path.write_text(SHELLS)
    proc = subprocess.run([sys.executable, "-m", "gradgen.cli", "check", str(path), "--all-params",
                           "--target", "neuron", "--dt", str(DT), "--tfinal", str(T_END), "--json"],
                          check=False, capture_output=True, text=True, timeout=1800)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(report["parameters"]) == 9
    assert report["forward_max_abs_diff_mV"] <= 1e-9  # the NEURON target's bound (test_neuron.py)
    assert max(max(e) for e in report["dv_rel_error"]) <= 1e-5  # the shadow carrier: FD error only


def test_element_names_avoid_the_users_names():
    mech = parse_text("NEURON { SUFFIX x }\nPARAMETER { s_1 = 2 }\nASSIGNED { s[2] }\n"
                      "BREAKPOINT { s[1] = s_1 }", "x.mod")
    assert [a.name for a in mech.assigned] == ["s__0", "s__1"]
    assert mech.breakpoint.body[0].target == "s__1"
    assert mech.breakpoint.body[0].expr == sympy.Symbol("s_1")


def test_a_parameter_bounding_a_loop_becomes_a_constant():
    """NEURON reads the bound at run time; fixed at its default, Arbor refuses to set it."""
    mech = parse_text("NEURON { SUFFIX x }\nPARAMETER { n = 3 g = 1 }\nASSIGNED { p }\nSTATE { m }\n"
                      "BREAKPOINT { p = 1  FROM k = 1 TO n { p = p*m } }", "x.mod")
    assert [p.name for p in mech.parameters] == ["g"]
    assert [(c.name, c.value) for c in mech.constants] == [("n", 3.0)]
    assert len(mech.breakpoint.body) == 4


HEAD = "NEURON { SUFFIX x }\nDEFINE N 2\nPARAMETER { n = 2 }\nASSIGNED { a[N] b }\nSTATE { m }\n"


@pytest.mark.parametrize("code, message, col", [
    ("BREAKPOINT { b = a[m] }", "the index of a[m] is not a whole-number constant (m)", 14),
    ("BREAKPOINT { a[2] = 1 }", "index 2 of a[…] is outside the array (size 2)", 14),
    ("BREAKPOINT { b = a }", "array a is used without an index", 14),
    ("BREAKPOINT { a = 1 }", "array a is assigned without an index", 14),
    ("BREAKPOINT { b = m[0] }", "m[…]: m is not declared as an array", 14),
    ("BREAKPOINT { FROM k = 0 TO m { b = k } }", "a bound of FROM k = … is not a whole-number constant (m)", 14),
    ("BREAKPOINT { n = 3 FROM k = 0 TO n { b = k } }",
     "a bound of FROM k = … is not a whole-number constant (n)", 20),  # n is assigned: not fixed
    ("BREAKPOINT { FROM k = 0 TO 1 BY 0 { b = k } }", "FROM k = … BY 0: the step must be positive", 14),
    ("BREAKPOINT { FROM k = 0 TO 1 { k = 2 } }", "the loop variable k is assigned inside its FROM loop", 32),
    ("ASSIGNED { c[M] }", "the size of array c[M] is not a number, a DEFINE or a CONSTANT", 12),
    ("ASSIGNED { c[5000] }", "array c[5000] cannot be unrolled (1 to 1000 elements)", 12),
    ("BREAKPOINT { while (b < 1) { b = b + 1 } }", "while is not supported yet", 14),
    ("BREAKPOINT { COMPARTMENT i, 2 {a} }", "COMPARTMENT statements are only allowed in a KINETIC block", 14),
    ("KINETIC k { COMPARTMENT i, 2 {m} }", "COMPARTMENT i, … names the scalar STATE m", 13),
])
def test_array_refusals_are_one_line_at_the_construct(code, message, col):
    with pytest.raises(GradgenError) as err:
        parse_text(HEAD + code, "x.mod")
    assert str(err.value).startswith(f"x.mod:6:{col}: {message}") and "\n" not in str(err.value)


#: ModelDB files that used to stop at "arrays are not supported" (docs/modeldb.md)
CORPUS_ARRAYS = ["26997/kdr.mod", "26997/naf.mod", "37856/Ksyn.mod", "95960/synampa.mod", "102288/cad.mod",
                 "116094/ShortDendrite_currentGauss.mod", "116094/ShortDendrite_ipscGauss.mod",
                 "151825/epsp.mod", "185513/DCNsynGABA.mod", "243446/mod_cdp_AIS.mod",
                 "243446/mod_cdp_smooth.mod", "243446/mod_cdp_soma.mod", "243446/mod_cdp_spiny.mod",
                 "243446/mod_syn2.mod", "243448/cadyn.mod", "243448/ip3_diff.mod",
                 "244687/cadifusnpumpOGBendodif.mod"]


@pytest.mark.parametrize("name", CORPUS_ARRAYS)
def test_corpus_arrays_parse_or_are_refused_for_another_construct(name):
    path = CORPUS / name
    if not path.exists():
        pytest.skip("the ModelDB corpus is not present")
    try:
        parse_file(path)
    except GradgenError as err:
        assert "array" not in err.message and "FROM" not in err.message, err


def test_a_loop_in_a_linear_block_unrolls_into_equations():
    mech = parse_text("NEURON { SUFFIX lin }\nDEFINE N 3\nPARAMETER { k = 2 }\nSTATE { x[N] }\n"
                      "BREAKPOINT { SOLVE eqs }\nLINEAR eqs {\n"
                      "  FROM i = 0 TO N-2 BY 1 { ~ x[i] - k*x[i+1] = 0 }\n  ~ x[N-1] = 1\n}", "x.mod")
    x0, x1, x2, k = sympy.symbols("x_0 x_1 x_2 k")
    assert [(e.lhs, e.rhs) for e in mech.linears["eqs"].body] == [(x0 - k * x1, 0), (x1 - k * x2, 0), (x2, 1)]


def test_the_neuron_target_refuses_an_element_of_a_parameter_array_as_theta(tmp_path):
    """nocmodl compiles the original with its array: ``Dk[0]`` has no hoc name ``Dk_0`` to set
    for finite differences or a user's model (a traceback before this refusal)."""
    from gradgen.convert import convert
    from gradgen.params import parse_param_list

    path = tmp_path / "shells.mod"
    path.write_text(SHELLS.replace("PARAMETER { gk", "PARAMETER { Dk[2] gk")
                    .replace("(D*frat[k+1], D*frat[k+1])", "((D + Dk[k])*frat[k+1], (D + Dk[k])*frat[k+1])"))
    with pytest.raises(GradgenError) as err:
        convert([path], tmp_path / "out", parse_param_list(["shells.Dk_1"]), target="neuron")
    assert str(err.value).startswith(f"{path}:6:13: θ shells.Dk_1 is an element of the PARAMETER array Dk")
    assert convert([path], tmp_path / "arbor", parse_param_list(["shells.Dk_1"])).parameters
