"""The coefficient a of an ODE s' = a·s + b as NEURON's cnexp reads the DERIVATIVE block.

nocmodl differentiates each ODE's right-hand side as written: a name the block assigned
before the ODE (an ASSIGNED ``Icatotal``, a LOCAL, a STATE ``W`` updated in place) is a
number there, holding the value the block gave it at this step. So in ModelDB 150288
tone2interD, ``capoolcon' = -fCan*Afactor*Icatotal + (Cainf - capoolcon)/tauCa`` is linear
with a = −1/tauCa, although ``Icatotal`` reads the weight ``W`` that the block updated
from ``capoolcon`` a few lines before (nocmodl's C: ``capoolcon = capoolcon + (1. -
exp(dt*((-1.0)/tauCa)))*(-(…*Icatotal + Cainf/tauCa)/((-1.0)/tauCa) - capoolcon)``).
With those values inlined, ∂rhs/∂s is another number, or not even free of s; the update
keeps NEURON's a and b = rhs − a·s, both at the step's values.
"""
from __future__ import annotations

from typing import Mapping

import sympy
from sympy.core.function import AppliedUndef


def written_coefficient(expr: sympy.Expr, state: str, values: Mapping[str, sympy.Expr]) -> sympy.Expr | None:
    """∂expr/∂state with every other name held fixed, still in the block's names (to be
    evaluated where the ODE stands), where that differs from differentiating the values
    inlined: a name it reads holds a value (``values``, the block's so far) that depends on
    the state. None otherwise, where the state is an argument of a FUNCTION call (inlined,
    it is differentiated as a whole) or where the ODE as written is not linear."""
    s = sympy.Symbol(state)
    held = [n for n in expr.free_symbols if n != s and n.name in values and s in values[n.name].free_symbols]
    if not held or any(s in call.free_symbols for call in expr.atoms(AppliedUndef)):
        return None
    a = sympy.diff(expr, s)
    return None if a.has(s) else a


__all__ = ["written_coefficient"]
