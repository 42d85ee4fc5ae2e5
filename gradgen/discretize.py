"""The discrete state update the simulator applies, as symbolic maps.

modcc's ``cnexp`` treats each ODE s' = a·s + b on its own, with a and b evaluated at the
new voltage, and applies the Padé(1,1) step

    s ← (s + b/a)·(2 + a·dt)/(2 − a·dt) − b/a,

state after state in the order of the DERIVATIVE block, overwriting s in place (so a later
equation sees the earlier states' new values). Differentiating this map, not the ODE, makes
the sensitivities those of the simulated system.
"""
from __future__ import annotations

import sympy

from gradgen.errors import GradgenError
from gradgen.lower import LoweredMechanism

DT = sympy.Symbol("dt")


def cnexp_update(low: LoweredMechanism) -> dict[str, sympy.Expr]:
    """New value of every state as an expression of the old states (and v, p, dt)."""
    current: dict[sympy.Symbol, sympy.Expr] = {}
    new: dict[str, sympy.Expr] = {}
    for name, rhs in low.derivatives.items():
        s = sympy.Symbol(name)
        a = sympy.diff(rhs, s)
        if a.has(s):
            raise GradgenError(
                f"the ODE of '{name}' is not linear in '{name}': cnexp would linearise it "
                "silently", low.mechanism.pos, hint="write it as s' = (sinf - s)/tau")
        b = rhs.subs(s, 0)
        a, b = a.xreplace(current), b.xreplace(current)
        if a == 0:
            value = s + b * DT
        else:
            ba = b / a
            value = (s + ba) * (2 + a * DT) / (2 - a * DT) - ba
        new[name] = value
        current[s] = value
    return new
