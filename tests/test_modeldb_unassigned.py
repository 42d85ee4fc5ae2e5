"""Values a NEURON block reads on paths that assign them nothing (docs/modeldb.md, "What is
left"): each read as NEURON's generated C reads it, checked against central finite
differences of the translation (the reference modcc compiles) and, where the value is
NEURON's, against the lowering evaluated by hand.
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import pytest
import sympy

from gradgen.checks.coverage import check_file, row_ok
from gradgen.errors import GradgenWarning
from gradgen.nmodl.lower import lower_file
from gradgen.targets.arbor.build import modcc_accepts
from gradgen.targets.arbor.translate import translate_lowered

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "modeldb"
DT, T_END = 0.0025, 20.0
FORWARD_BOUND_MV, GRADIENT_BOUND = 1e-8, 0.02  # the acceptance bounds

#: ModelDB 26997's geneval_cvode.inc in small: the rate's form is chosen by a flag, and a
#: flag other than 1 or 2 assigns no result (NEURON returns an uninitialised C double).
FLAGGED_RATE = """NEURON { SUFFIX flagged NONSPECIFIC_CURRENT i RANGE g, flag }
PARAMETER { g = 0.002 (S/cm2) e = -80 (mV) flag = 1 vh = -40 (mV) k = 6 (mV) tau = 2 (ms) }
ASSIGNED { v (mV) minf }
STATE { m }
INITIAL { minf = rate(v) m = minf }
BREAKPOINT { SOLVE states METHOD cnexp  i = g*m*(v - e) }
DERIVATIVE states { minf = rate(v)  m' = (minf - m)/tau }
FUNCTION rate(v) {
  if (flag == 1) {
    rate = 1/(1 + exp(-(v - vh)/k))
  } else if (flag == 2) {
    rate = exp((v - vh)/k)
  }
}
"""


def test_a_function_result_unassigned_on_a_path_is_zero_there_with_a_warning(tmp_path):
    source = tmp_path / "flagged.mod"
    source.write_text(FLAGGED_RATE)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        low = lower_file(source)
    said = [str(w.message) for w in caught if issubclass(w.category, GradgenWarning)]
    assert len(said) == 1 and "FUNCTION 'rate' assigns no result on some path" in said[0], said
    assert "flagged.mod:8:1" in said[0]  # where the FUNCTION is
    rate = low.derivatives["m"] * 2 + sympy.Symbol("m")  # tau = 2: m' = (minf - m)/tau
    point = {"v": -30.0, "vh": -40.0, "k": 6.0, "m": 0.0, "tau": 2.0}
    for flag, expected in [(1, 1 / (1 + math.exp(-10 / 6))), (2, math.exp(10 / 6)), (3, 0.0)]:
        got = float(rate.xreplace({sympy.Symbol(n): x for n, x in {**point, "flag": flag}.items()}))
        assert got == pytest.approx(expected, rel=1e-14)
    assert modcc_accepts(translate_lowered(low))


def test_a_function_result_unassigned_on_a_path_matches_finite_differences(tmp_path):
    source = tmp_path / "flagged.mod"
    source.write_text(FLAGGED_RATE)
    row = check_file(source, DT, T_END)
    assert row.error is None, row.error
    assert row_ok(row, FORWARD_BOUND_MV, GRADIENT_BOUND), row


@pytest.mark.skipif(not CORPUS.is_dir(), reason="the ModelDB corpus is not available")
@pytest.mark.parametrize("rel", ["26997/kdr.mod", "26997/naf.mod"])
def test_published_flagged_rates_translate(rel):
    """26997's alpha(v, j) and beta(v, j) assign nothing for a flag other than 1, 2, 3."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GradgenWarning)
        low = lower_file(CORPUS / rel)
    assert modcc_accepts(translate_lowered(low))


#: ModelDB 185513 DCNsyn's guard in small: INITIAL overwrites a PARAMETER, and NEURON (as
#: Arbor) keeps the new value for the whole run.
CLAMPED_TAU = """NEURON { SUFFIX clamped NONSPECIFIC_CURRENT i RANGE g, tau, taumin }
PARAMETER { g = 0.002 (S/cm2) e = -80 (mV) tau = 1 (ms) taumin = 3 (ms) }
STATE { m }
INITIAL {
  if (tau < taumin) { tau = taumin }
  m = 0.2
}
BREAKPOINT {
  SOLVE states METHOD cnexp
  i = g*m*(v - e)
}
DERIVATIVE states { m' = (1/(1 + exp(-(v + 40)/6)) - m)/tau }
"""


def test_a_parameter_initial_overwrites_is_the_new_value_everywhere(tmp_path):
    source = tmp_path / "clamped.mod"
    source.write_text(CLAMPED_TAU)
    low = lower_file(source)
    rate = low.derivatives["m"].xreplace({sympy.Symbol("m"): 0, sympy.Symbol("v"): -40})  # 0.5/tau
    for tau, taumin, used in [(1.0, 3.0, 3.0), (5.0, 3.0, 5.0)]:
        got = float(rate.xreplace({sympy.Symbol("tau"): tau, sympy.Symbol("taumin"): taumin}))
        assert got == pytest.approx(0.5 / used, rel=1e-14)
    assert not modcc_accepts(source.read_text())  # modcc: a PARAMETER is no lvalue
    row = check_file(source, DT, T_END)  # so the reference is the translation, checked above
    assert row.error is None, row.error
    assert row.translated_reference
    assert row_ok(row, FORWARD_BOUND_MV, GRADIENT_BOUND), row


#: ModelDB 185513 DCNsynGABA's giveFractionG() in small: a FUNCTION NET_RECEIVE calls keeps
#: memory between events in ASSIGNED values it reads before it assigns them.
COUNTING_SYNAPSE = """NEURON { POINT_PROCESS counting NONSPECIFIC_CURRENT i RANGE g, e }
PARAMETER { g = 0.001 (uS) e = 0 (mV) tau = 3 (ms) }
ASSIGNED { v (mV) i (nA) seen count n }
STATE { s }
INITIAL { s = 0 seen = 0 }
BREAKPOINT { SOLVE states METHOD cnexp  i = g*s*n*(v - e) }
DERIVATIVE states { s' = -s/tau }
NET_RECEIVE(weight) { n = counted()  s = s + weight }
FUNCTION counted() {
  if (seen) {
    count = count + 1
  } else {
    seen = 1
    count = 1
  }
  counted = count
}
"""


def test_memory_a_function_of_the_events_keeps_is_a_state_that_jumps():
    from gradgen.nmodl.lower import lower
    from gradgen.nmodl.parser import parse_text

    low = lower(parse_text(COUNTING_SYNAPSE, "counting.mod"))
    assert {"seen", "count", "n"} <= set(low.states)
    seen, count = sympy.symbols("seen count")
    # three events by hand, as NEURON runs NET_RECEIVE: 1, 2, 3 spikes counted
    values = {seen: 0.0, count: 0.0}
    for expected in (1.0, 2.0, 3.0):
        new = {sym: float(low.events[sym.name].xreplace(values)) for sym in (seen, count)}
        assert float(low.events["n"].xreplace(values)) == expected == new[count]
        values = new
    assert values[seen] == 1.0


NEURON_RELEASE_SCRIPT = """
import json
from neuron import h  # loads the mechanisms nrnivmodl built in the working directory
soma = h.Section(name="soma")
syn = h.GABAa(soma(0.5))
rec = h.Vector().record(syn._ref_R)
h.dt = 0.025
h.usetable_GABAa = 0  # exptable exact, as modcc and gradgen drop TABLE
h.finitialize(-65)
while h.t < 12.0 - h.dt / 2:
    h.fadvance()
print(json.dumps(list(rec)))
"""


@pytest.mark.slow
@pytest.mark.skipif(not CORPUS.is_dir(), reason="the ModelDB corpus is not available")
def test_values_a_solved_procedure_reads_before_assigning_are_last_steps_as_in_neuron(tmp_path):
    """123897 GABAa: ``release()`` (SOLVEd without METHOD) keeps R0, R1, C and lastrelease
    from step to step. The lowered map, iterated here, against NEURON running the original
    (nrnivmodl, dt 0.025 ms, 12 ms: six releases, exptable exact). R agrees to rounding."""
    import subprocess
    import sys

    pytest.importorskip("neuron")
    source = CORPUS / "123897" / "mechanism_gabaa.mod"
    low = lower_file(source)
    assert {"R", "R0", "R1", "C", "lastrelease"} <= set(low.states) and low.solve_method == "explicit"
    (tmp_path / "gabaa.mod").write_text(source.read_text())
    nrnivmodl = Path(sys.executable).parent / "nrnivmodl"
    subprocess.run([str(nrnivmodl), "gabaa.mod"], cwd=tmp_path, capture_output=True, check=True, timeout=600)
    script = tmp_path / "run.py"
    script.write_text(NEURON_RELEASE_SCRIPT)
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
                          check=True, timeout=600)
    neuron_r = [float(x) for x in proc.stdout.strip().splitlines()[-1].strip("[]").split(",")]

    dt = 0.025
    params = {p.name: p.value for p in low.parameters}
    fixed = {sympy.Symbol(n): value for n, value in {**params, "dt": dt, "v": -65.0}.items()}
    states = {sympy.Symbol(s): float(e.xreplace(fixed)) for s, e in low.initial.items()}
    updates = {sympy.Symbol(s): e.xreplace(fixed) for s, e in low.explicit.items()}
    # the update reads t_{n+1} as clock + dt; NEURON's t adds dt/2 twice per step, and the
    # release ends where q = t - lastrelease - Cdur is 0 to rounding (t = 1.025 ms), so the
    # map is evaluated at NEURON's own t_{n+1}
    t_next = sympy.Symbol("t_next")
    updates = {s: e.xreplace({sympy.Symbol("gg_t"): t_next - dt}) for s, e in updates.items()}
    ours, t = [states[sympy.Symbol("R")]], 0.0
    for _ in range(len(neuron_r) - 1):
        t = t + dt / 2 + dt / 2
        states = {s: float(e.xreplace({**states, t_next: t})) for s, e in updates.items()}
        ours.append(states[sympy.Symbol("R")])
    assert max(neuron_r) > 0.5  # releases happened
    assert ours == pytest.approx(neuron_r, abs=1e-12)


def test_a_nested_condition_with_a_constant_branch_prints_without_a_literal_truth():
    """ITE(a, false, c) from nested Piecewise conditions (168858 peak.mod's recorders, once
    their memory is kept): ``… && (1 == 0)`` is a scalar modcc's SIMD printer cannot combine
    with a mask; SymPy folds it away first."""
    from sympy.logic.boolalg import ITE

    from gradgen.nmodl.printer import nmodl

    a, c, x = sympy.symbols("a c x")
    text = nmodl(ITE(sympy.Ne(a, 0), sympy.false, sympy.Eq(c, 1)))
    assert "1 == 0" not in text and "1 == 1" not in text
    assert text == "(a == 0) && (c == 1)"
    assert nmodl(sympy.Not(ITE(sympy.Ne(a, 0), x > 1, sympy.true))).count("1 ==") == 0
