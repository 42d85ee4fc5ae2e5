"""PARAMETERs that INITIAL assigns, read by the other blocks as NEURON reads them.

A PARAMETER is a variable of the mechanism's instance in NEURON (and in Arbor): INITIAL may
overwrite it (ModelDB 185513 DCNsyn: ``if (tauRise/tauFall > .9999) { tauRise = .9999*tauFall }``,
exp2syn's guard), and every block after it reads the new value for the whole run. gradgen
substitutes INITIAL's closed form of the value (a function of the parameters) wherever the
other blocks read the parameter, so that the ODE and the event's factor see the same value.
"""
from __future__ import annotations

import sympy

from gradgen.errors import GradgenError
from gradgen.nmodl.assigned_roles import assigned_outside_initial
from gradgen.nmodl.ir import Mechanism, Variable


def parameters_set_in_initial(mech: Mechanism, parameters: list[Variable], initial_values: dict[str, sympy.Expr],
                              varying: set[sympy.Symbol]) -> dict[str, sympy.Expr]:
    """INITIAL's final value of each PARAMETER only INITIAL assigns, by name. A value that
    depends on ``varying`` (v or a state at t = 0) would be a per-instance constant the
    gradient code cannot hold as a parameter: refused."""
    outside = assigned_outside_initial(mech)
    out: dict[str, sympy.Expr] = {}
    for param in parameters:
        value = initial_values.get(param.name)
        if value is None or value == sympy.Symbol(param.name) or param.name in outside:
            continue
        if value.free_symbols & varying:
            raise GradgenError(f"INITIAL sets the PARAMETER '{param.name}' from the voltage or a state",
                               mech.initial.pos, hint="declare it ASSIGNED")
        out[param.name] = value
    return out


__all__ = ["parameters_set_in_initial"]
