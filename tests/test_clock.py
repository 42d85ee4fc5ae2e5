"""The time ``t`` read by a mechanism: its own clock, at the times NEURON's fixed step shows.

NEURON 9 is measured here (a mechanism that copies ``t`` in each block, built by nrnivmodl),
a time-driven mechanism's translation run in Arbor is compared with the original run in
NEURON, and the gradient of time-driven mechanisms against central finite differences of
their translation (``check_file``, as ``gradgen check`` does)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy

from gradgen.errors import GradgenError
from gradgen.nmodl.clock import CLOCK, DT
from gradgen.nmodl.lower import lower, lower_file
from gradgen.nmodl.parser import parse_text
from gradgen.nmodl.printer import nmodl
from gradgen.targets.arbor.build import modcc_accepts
from gradgen.targets.arbor.translate import translate_lowered

ROOT = Path(__file__).resolve().parent.parent
FORWARD_BOUND_MV, GRADIENT_BOUND = 1e-8, 0.02  # the acceptance bounds

#: Copies t in each block NEURON runs (nrn_cur, nrn_state, INITIAL, NET_RECEIVE).
PROBE = """NEURON { POINT_PROCESS TProbe RANGE tcur, tstate, tinit, tev NONSPECIFIC_CURRENT i }
ASSIGNED { tcur tstate tinit tev i (nA) }
INITIAL { tinit = t  tev = -1 }
BREAKPOINT {
    SOLVE upd
    tcur = t
    i = 0
}
PROCEDURE upd() { tstate = t }
NET_RECEIVE(w) { tev = t }
"""

PROBE_RUN = """
import json, sys
from neuron import h
h.nrn_load_dll(sys.argv[1])
s = h.Section()
p = h.TProbe(s(0.5))
stim = h.NetStim(); stim.number = 1; stim.start = 0
nc = h.NetCon(stim, p); nc.delay = 0.2137; nc.weight[0] = 1
h.dt = 0.025
h.finitialize(-65)
out = {"tinit": p.tinit, "steps": []}
for _ in range(12):
    h.fadvance()
    out["steps"].append([h.t, p.tcur, p.tstate])
out["tev"] = p.tev
print(json.dumps(out))
"""

#: A time-driven current (a switch at del, a sine of t passed to a FUNCTION) and a state
#: stepped by a SOLVEd PROCEDURE that reads t: both simulators step it identically.
TDRIVE = """NEURON {
    SUFFIX tdrive
    NONSPECIFIC_CURRENT i
    RANGE amp, period, tau, del
}
PARAMETER { amp = 0.002 (mA/cm2) period = 1.7 (ms) tau = 0.9 (ms) del = 2.0111 (ms) }
ASSIGNED { i (mA/cm2) }
STATE { m }
INITIAL { m = 0 }
BREAKPOINT {
    SOLVE upd
    if (t > del) {
        i = -amp*drive(t)*(1 + m)
    } else {
        i = -amp*m
    }
}
PROCEDURE upd() {
    m = m + dt*(drive(t) - m)/tau
}
FUNCTION drive(x (ms)) {
    drive = sin(6.283185307179586*x/period)
}
"""

NEURON_RUN = """
import json, sys
from neuron import h
h.nrn_load_dll(sys.argv[1])
s = h.Section(); s.L = s.diam = 10.0; s.nseg = 1; s.cm = 1.0; s.Ra = 100
s.insert("pas"); s(0.5).pas.g = 0.001; s(0.5).pas.e = -65
s.insert("tdrive")
h.dt = 0.025
h.finitialize(-65)
vs = [s(0.5).v]
for _ in range(400):
    h.fadvance(); vs.append(s(0.5).v)
print(json.dumps(vs))
"""

ARBOR_RUN = """
import json, sys
import arbor
from arbor import units as U
from gradgen.nmodl.lower import lower_file
from gradgen.targets.arbor.build import build_catalogue
from gradgen.targets.arbor.translate import translate_lowered
cat = build_catalogue({"tdrive.mod": translate_lowered(lower_file(sys.argv[1]))}, "timetest", vectorize=False)
tree = arbor.segment_tree()
tree.append(arbor.mnpos, arbor.mpoint(-5, 0, 0, 5), arbor.mpoint(5, 0, 0, 5), tag=1)
decor = arbor.decor()
decor.set_property(Vm=-65 * U.mV, cm=0.01 * U.F / U.m2, rL=100 * U.Ohm * U.cm)
decor.paint("(all)", arbor.density("pas/e=-65", {"g": 0.001}))
decor.paint("(all)", arbor.density("tdrive"))
cell = arbor.cable_cell(arbor.morphology(tree), decor, arbor.label_dict(), arbor.cv_policy_single())
props = arbor.neuron_cable_properties()
props.catalogue.extend(arbor.load_catalogue(str(cat)), "")
class Recipe(arbor.recipe):
    def __init__(self): arbor.recipe.__init__(self)
    def num_cells(self): return 1
    def cell_kind(self, gid): return arbor.cell_kind.cable
    def cell_description(self, gid): return cell
    def global_properties(self, kind): return props
    def probes(self, gid): return [arbor.cable_probe_membrane_voltage("(location 0 0.5)", "v")]
sim = arbor.simulation(Recipe())
handle = sim.sample((0, "v"), arbor.regular_schedule(0.025 * U.ms))
sim.run(10 * U.ms, 0.025 * U.ms)
data, _ = sim.samples(handle)[0]
print(json.dumps([float(x) for x in data[:, 1]]))
"""


def _nrnivmodl(tmp_path: Path, name: str, text: str) -> Path:
    (tmp_path / f"{name}.mod").write_text(text)
    bin_dir = Path(sys.executable).parent
    proc = subprocess.run([str(bin_dir / "nrnivmodl"), f"{name}.mod"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return next(p for p in tmp_path.rglob("libnrnmech*.so"))


def _run(script: str, *args: str) -> object:
    proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_neuron_shows_t_to_each_block(tmp_path):
    """What gradgen.nmodl.clock reproduces, measured on NEURON's fixed step (dt 0.025):
    INITIAL at 0, BREAKPOINT at t_n + dt/2, the SOLVEd block at t_{n+1}, NET_RECEIVE at the
    event's own time (0.2137, inside a step)."""
    pytest.importorskip("neuron")
    out = _run(PROBE_RUN, str(_nrnivmodl(tmp_path, "tprobe", PROBE)))
    assert out["tinit"] == 0
    dt = 0.025
    for n, (t_after, t_current, t_state) in enumerate(out["steps"]):
        assert t_after == pytest.approx((n + 1) * dt, abs=1e-12)
        assert t_current == pytest.approx(n * dt + dt / 2, abs=1e-12)
        assert t_state == pytest.approx((n + 1) * dt, abs=1e-12)
    assert out["tev"] == pytest.approx(0.2137, abs=1e-15)


def test_a_time_driven_mechanism_runs_in_arbor_as_in_neuron(tmp_path):
    """The translation (clock in an ASSIGNED) run by Arbor against the original run by NEURON,
    one CV with pas, dt 0.025, 10 ms (V moves 1.08 mV). Measured: max |ΔV| = 2.1e-13 mV; the
    same translation with the current read at t_n instead of t_n + dt/2: 4.5e-2 mV."""
    pytest.importorskip("neuron")
    library = _nrnivmodl(tmp_path, "tdrive", TDRIVE)
    v_neuron = np.array(_run(NEURON_RUN, str(library)))
    v_arbor = np.array(_run(ARBOR_RUN, str(tmp_path / "tdrive.mod")))
    assert len(v_arbor) == 400 and np.ptp(v_neuron) > 1.0  # the drive moves V
    # rounding only: both simulators take the same implicit step at the same times
    assert np.abs(v_arbor - v_neuron[:400]).max() <= 1e-9


def _lower(text: str):
    return lower(parse_text(text, "x.mod"))


def test_each_block_reads_its_own_time():
    """BREAKPOINT reads clock + dt/2, the SOLVEd block clock + dt, INITIAL 0, NET_RECEIVE
    the clock; a value BREAKPOINT passes to the state update keeps BREAKPOINT's time."""
    low = _lower("""NEURON { POINT_PROCESS x NONSPECIFIC_CURRENT i }
PARAMETER { g = 0.001 }
ASSIGNED { i  a  t0 }
STATE { s r q }
INITIAL { s = t  r = 0  q = 0 }
BREAKPOINT { SOLVE d METHOD cnexp
  a = t
  i = g*(t + r)*(v + 70) }
DERIVATIVE d { s' = (t - s)  r' = a - r }
NET_RECEIVE(w) { q = t }
""")
    assert low.currents[0].expr == sympy.Symbol("g") * (CLOCK + DT / 2 + sympy.Symbol("r")) * (sympy.Symbol("v") + 70)
    assert sympy.simplify(low.derivatives["s"] - (CLOCK + DT - sympy.Symbol("s"))) == 0
    assert sympy.simplify(low.derivatives["r"] - (CLOCK + DT / 2 - sympy.Symbol("r"))) == 0
    assert low.initial["s"] == 0
    assert low.events["q"] == CLOCK
    assert low.keeps_clock()


def test_a_translation_keeps_its_clock_and_reads_back_the_same(tmp_path):
    path = tmp_path / "tdrive.mod"
    path.write_text(TDRIVE)
    low = lower_file(path)
    text = translate_lowered(low)
    assert "SOLVE gg_clock" in text and modcc_accepts(text)
    copy = tmp_path / "translated.mod"
    copy.write_text(text)
    again = lower_file(copy)
    assert again.keeps_clock()
    assert sympy.simplify(again.currents[0].expr - low.currents[0].expr) == 0
    assert sympy.simplify(again.explicit["m"] - low.explicit["m"]) == 0


def test_at_time_is_neurons_fixed_step_flag_and_a_no_op_as_a_statement():
    low = _lower("""NEURON { SUFFIX x NONSPECIFIC_CURRENT i }
PARAMETER { g = 0.001  te = 1 }
BREAKPOINT {
  at_time(te)
  i = g*at_time(te)*(v + 70) }
""")
    expr = low.currents[0].expr
    value = {sympy.Symbol("g"): 1, sympy.Symbol("te"): 1.0, sympy.Symbol("v"): -69, DT: 0.025}
    # BREAKPOINT's t = t_n + dt/2: the flag is 1 in the one step with t - dt < te <= t
    flags = [float(expr.subs({**value, CLOCK: n * 0.025})) for n in range(35, 45)]
    assert flags == [0, 0, 0, 0, 0, 1, 0, 0, 0, 0]  # n = 40: t = 1.0125, the first t ≥ te - 1e-11


@pytest.mark.parametrize("x", [0.0, 0.3, 0.5, 1.5, 2.5, 2.999999999, 3.0, -0.5, -1.0, -1.2, -2.5, 1e6 + 0.75,
                               1.0 / 3.0 * 3.0, 41.99999999999999, 1e-300, -1e-300])
def test_floor_without_a_library_call(x):
    """floor(t/period) (ModelDB 150288's dopamine windows) as the generated code computes it:
    r = (x + 1.5·2^52) - 1.5·2^52 in float64 (round to nearest), less 1 where r > x."""
    import math

    from gradgen.nmodl.ir import ROUNDING_SHIFT, floor_form, nfloor, round_even

    shift = float(ROUNDING_SHIFT)
    rounded = (x + shift) - shift  # the printed form, left to right
    assert rounded - (1 if rounded > x else 0) == math.floor(x)
    assert floor_form(sympy.Float(x)) == math.floor(x)
    assert sympy.diff(floor_form(sympy.Symbol("x")), sympy.Symbol("x")) == 0
    assert sympy.diff(nfloor(sympy.Symbol("x") ** 2), sympy.Symbol("x")) == 0 and nfloor(sympy.Float(x)) == math.floor(x)
    assert nmodl(round_even(sympy.Symbol("x"))) == "(x + 6755399441055744.0 - 6755399441055744.0)"


def test_an_if_else_that_sets_one_new_value_in_both_branches():
    """ModelDB 150288 na3DA's DA1(t) at t = 0 (INITIAL): both branches of the inner if/else
    give DA1 the same value; it is the function's value (it was lost as "unchanged")."""
    low = _lower("""NEURON { SUFFIX x NONSPECIFIC_CURRENT i }
PARAMETER { g = 0.001  a = 2 }
BREAKPOINT { i = g*f(a)*(v + 70) }
FUNCTION f(x) { if (x > 1) { f = 3 } else { f = 3 } }
""")
    g, v = sympy.symbols("g v")
    assert low.currents[0].expr == 3 * g * (v + 70)


def test_an_events_flag_is_0():
    """NEURON's NET_RECEIVE ``flag`` is 0 for events from a NetCon (ModelDB 145836's
    ``if (flag == 0) { tRel = t ... }``); only net_send, refused for Arbor, sets another."""
    low = _lower("""NEURON { POINT_PROCESS x NONSPECIFIC_CURRENT i }
STATE { s  tRel }
BREAKPOINT { i = s*exp(-tRel)*(v + 70) }
NET_RECEIVE(w) { if (flag == 0) { s = s + w  tRel = t } }
""")
    assert low.events == {"s": sympy.Symbol("s") + sympy.Symbol("w"), "tRel": CLOCK}


def test_a_switch_in_time_runs_with_the_ion_carrier():
    """The fused and exact mechanisms print a member's current as one expression: a current
    with an if/else is no member (it falls back to the ion carrier instead of crashing)."""
    from gradgen.params import ParamRef
    from gradgen.sensitivity.derive import derive_contributor
    from gradgen.targets.arbor.emit_fused import fusable

    low = _lower(TDRIVE)
    reason = fusable(derive_contributor(low, [ParamRef("tdrive", "amp")], direct=True), exact=True)
    assert reason and "if/else" in reason


def test_a_voltage_process_that_reads_t_is_refused():
    with pytest.raises(GradgenError, match="x.mod:1:26: a VOLTAGE_PROCESS that reads the time t"):
        _lower("""NEURON { VOLTAGE_PROCESS x }
PARAMETER { v0 = -65  t1 = 2 }
BREAKPOINT { if (t < t1) { v = v0 } }
""")


def test_protect_is_a_plain_assignment():
    low = _lower("""NEURON { POINT_PROCESS x NONSPECIFIC_CURRENT i GLOBAL Rinf }
PARAMETER { g = 0.001  a = 2  b = 3 }
ASSIGNED { i  Rinf }
STATE { s }
INITIAL { PROTECT Rinf = a/(a + b)  s = Rinf }
BREAKPOINT { i = g*s*(v + 70) }
""")
    assert low.initial["s"] == sympy.Symbol("a") / (sympy.Symbol("a") + sympy.Symbol("b"))


def test_mutexlock_is_still_refused():
    with pytest.raises(GradgenError, match="MUTEXLOCK"):
        _lower("""NEURON { SUFFIX x }
INITIAL { MUTEXLOCK }
""")


#: A stimulus that switches on and decays (ModelDB 116094's shunting inhibition), its own
#: switch off-grid (a switch time on t_n + dt/2 is a tie any rounding decides).
SHUNT = """NEURON {
    POINT_PROCESS Shunt
    RANGE del, dur, amp, tau, Erev
    ELECTRODE_CURRENT i
}
UNITS { (nA) = (nanoamp) }
PARAMETER { del = 2.3 (ms)  dur = 1.5 (ms)  amp = 0.02  tau = 0.8 (ms)  Erev = -90 (mV) }
ASSIGNED { i (nA) }
INITIAL { i = 0 }
BREAKPOINT { LOCAL g
    at_time(del)
    if (t < del + dur && t >= del) {
        g = amp*exp(-(t - del)/tau)
        i = g*(v - Erev)
    } else {
        i = 0
    }
}
"""

#: A density mechanism whose current switches at del and decays in t, with a gate driven by
#: t through a PROCEDURE argument (ModelDB 145836's rates(v, t)), under cnexp.
TLEAK = """NEURON {
    SUFFIX tleak
    NONSPECIFIC_CURRENT i
    RANGE g, e, del, tau
}
PARAMETER { g = 0.0003 (S/cm2) e = -60 (mV) del = 1.3 (ms) tau = 2 (ms) }
ASSIGNED { i (mA/cm2) ginf }
STATE { m }
INITIAL { m = 0 }
BREAKPOINT {
    SOLVE states METHOD cnexp
    if (t > del) {
        i = g*(1 + m)*(v - e)*exp(-(t - del)/tau)
    } else {
        i = g*m*(v - e)
    }
}
DERIVATIVE states {
    rates(t)
    m' = (ginf - m)/tau
}
PROCEDURE rates(tt (ms)) {
    ginf = 0.5*(1 + tanh((tt - del)/0.5))
}
"""


@pytest.mark.slow
@pytest.mark.parametrize("name, text", [("shunt.mod", SHUNT), ("tleak.mod", TLEAK)])
def test_time_driven_mechanisms_pass_check(tmp_path, name, text):
    """Forward and dV/dθ against central FD of the translation (modcc rejects ``t``), 5 ms at
    dt 0.0025. Measured: tleak forward 1.8e-12 mV, dV/dθ ≤ 2.7e-8 (del included: the
    derivative of the branch taken; FD with a small step crosses no switch)."""
    from gradgen.checks.coverage import check_file, row_ok

    (tmp_path / name).write_text(text)
    row = check_file(tmp_path / name, 0.0025, 5.0)
    assert row.error is None, row.error
    assert row.translated_reference
    assert row_ok(row, FORWARD_BOUND_MV, GRADIENT_BOUND), row


@pytest.mark.slow
def test_the_clock_runs_in_neuron_as_neurons_own_t(tmp_path):
    """NEURON target: the gradient version, which reads its own clock, against the original,
    which reads NEURON's t (BREAKPOINT and a cnexp DERIVATIVE), 5 ms at dt 0.0025. Measured:
    forward 4.8e-13 mV, dV/dθ ≤ 5.1e-9 of FD (del included)."""
    pytest.importorskip("neuron")
    (tmp_path / "tleak.mod").write_text(TLEAK)
    proc = subprocess.run([sys.executable, "-m", "gradgen.cli", "check", str(tmp_path / "tleak.mod"), "--all-params",
                           "--target", "neuron", "--dt", "0.0025", "--tfinal", "5", "--json"],
                          capture_output=True, text=True, cwd=ROOT, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["forward_max_abs_diff_mV"] <= 1e-9  # tests/test_neuron.py's bound (rounding)
    assert max(max(e) for e in report["dv_rel_error"]) <= 1e-6  # the shadow carrier's FD floor
