"""Forms of the derived expressions that keep the gradient finite where the model is."""
from __future__ import annotations

import sympy

from gradgen.nmodl.lower import lower
from gradgen.nmodl.parser import parse_text
from gradgen.params import ParamRef
from gradgen.sensitivity.derive import derive_contributor

POWER = """
NEURON { SUFFIX kpow USEION k READ ek WRITE ik RANGE gbar, st }
PARAMETER { gbar = 0.01 st = 1 }
STATE { o }
INITIAL { o = 0 }
BREAKPOINT { SOLVE s METHOD cnexp
    ik = gbar*o^st*(v - ek) }
DERIVATIVE s { o' = (0.5 - o)/5 }
"""


def test_power_with_a_parameter_exponent_is_differentiated_finite_at_zero():
    """SymPy writes ∂(o^st)/∂o as o^st·st/o: NaN at o = 0 (a closed channel, a Ca-activated
    K channel at rest); st·o^(st−1) is the same function and finite there."""
    system = derive_contributor(lower(parse_text(POWER)), [ParamRef.parse("kpow.gbar")])
    o, st = sympy.symbols("o st")
    exprs = [s.expr for s in system.phase_a.statements]
    assert any(e.has(sympy.Pow(o, st - 1)) for e in exprs)
    at_zero = {o: 0, st: 1, sympy.Symbol("gbar"): 0.01}
    for e in exprs:
        value = e.subs(at_zero)
        assert value.is_finite is not False and value != sympy.nan, e
