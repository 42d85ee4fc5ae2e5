"""Refuse mechanisms that would convert into wrong or uncompilable code, at their source line.

The parser accepts any well-formed NMODL, and lowering any mechanism it can execute; these
checks catch what only shows later as a compile error in a temporary directory or as a
silently wrong number: names the gradient mechanism itself generates or that Arbor
reserves, numbers that are not finite in float64, a division by zero folded into the code
(SymPy's ``zoo``/``nan``). Coupled ODEs under cnexp are not refused: NEURON steps them one
after another in the block's order, which gradgen reproduces (and ``translate`` writes for
modcc through LOCALs, as modcc refuses an ODE naming another state).
"""
from __future__ import annotations

import math
from collections.abc import Iterator

import sympy

from gradgen import protocol
from gradgen.errors import GradgenError, SourcePos
from gradgen.nmodl.ir import Mechanism, Variable
from gradgen.nmodl.lowered import BUILTIN_NAMES, LoweredMechanism

#: Longest mechanism name: it becomes file names (its gradient mechanism and modcc's
#: C++ file for it: 13 more bytes) that must fit the 255-byte limit of common file
#: systems, with room for the temporary names around them.
MAX_MECHANISM_NAME = 200



def check_convertible(low: LoweredMechanism) -> None:
    """Raise a GradgenError for the first construct that would not convert correctly."""
    mech = low.mechanism
    _check_mechanism_name(mech)
    _check_names(low)
    _check_numbers(low)


def _check_mechanism_name(mech: Mechanism) -> None:
    if len(mech.name) > MAX_MECHANISM_NAME:
        raise GradgenError(f"the mechanism name is {len(mech.name)} characters long; gradgen "
                           f"accepts at most {MAX_MECHANISM_NAME}", mech.pos,
                           hint="it becomes file names; choose a shorter SUFFIX")
    if mech.name == protocol.HUB_NAME:
        raise GradgenError(f"'{protocol.HUB_NAME}' is the name of the mechanism gradgen generates",
                           mech.pos, hint="rename the SUFFIX")


def _declared(mech: Mechanism) -> Iterator[tuple[str, Variable]]:
    for kind, variables in (("PARAMETER", mech.parameters), ("CONSTANT", mech.constants),
                            ("ASSIGNED", mech.assigned), ("STATE", mech.states)):
        for variable in variables:
            yield kind, variable


def _check_names(low: LoweredMechanism) -> None:
    mech = low.mechanism
    currents = {c.name for c in low.currents}
    for kind, variable in _declared(mech):
        name = variable.name
        # NEURON-dialect files list v, celsius, ... as PARAMETER/ASSIGNED to mean the built-in.
        if kind == "STATE" and name in BUILTIN_NAMES:
            raise GradgenError(f"STATE '{name}' has the name of a simulator built-in", variable.pos,
                               hint="rename it (v, t, dt, celsius, area and diam are taken)")
        if kind in ("STATE", "PARAMETER") and name in currents:
            raise GradgenError(f"{kind} '{name}' is also a current the mechanism writes",
                               variable.pos, hint="rename one of them")
        if protocol.is_reserved(name) and not (kind == "ASSIGNED" and name == protocol.CLOCK):  # a translation's clock
            raise GradgenError(f"{kind} '{name}' has the form of a name gradgen generates",
                               variable.pos, hint=f"rename it (names like {protocol.weight(0)}, "
                                                  f"{protocol.CONDUCTANCE_ION}d, {protocol.VPREV} "
                                                  "are taken by the gradient code)")
    for ion in mech.ions:
        if protocol.is_reserved(ion.name):
            raise GradgenError(f"ion '{ion.name}' has the form of an ion gradgen generates",
                               ion.pos, hint=f"rename the ion (ions like {protocol.carrier_ion(0)}, "
                                             f"{protocol.scratch_ion(0)}, {protocol.CONDUCTANCE_ION} "
                                             "carry the sensitivities)")


def _check_numbers(low: LoweredMechanism) -> None:
    mech = low.mechanism
    for kind, variable in _declared(mech):
        if variable.value is not None and not math.isfinite(variable.value):
            raise GradgenError(f"{kind} '{variable.name}' = {variable.value}: not a finite "
                               "float64", variable.pos, hint="|values| must stay below 1.8e308")
    for what, expr, pos in _expressions(low):
        bad = _nonfinite(expr)
        if bad is not None:
            raise GradgenError(f"the {what} contains {bad}", pos,
                               hint="a constant division by zero or a number beyond float64")


def _expressions(low: LoweredMechanism) -> Iterator[tuple[str, sympy.Basic, SourcePos]]:
    mech = low.mechanism
    breakpoint_pos = mech.breakpoint.pos if mech.breakpoint else mech.pos
    for cur in low.currents:
        yield f"current '{cur.name}'", cur.expr, breakpoint_pos
    solved = next(iter(mech.derivatives.values()), None) or next(iter(mech.kinetics.values()), None)
    for state, expr in low.derivatives.items():
        yield f"derivative of '{state}'", expr, solved.pos if solved else mech.pos
    for state, expr in low.initial.items():
        yield f"initial value of '{state}'", expr, mech.initial.pos if mech.initial else mech.pos
    for expr in low.equations:
        yield "LINEAR equation", expr, mech.pos
    for state, expr in low.initial_equations.items():
        yield f"initial equation of '{state}'", expr, mech.initial.pos
    for state, expr in low.events.items():
        yield f"NET_RECEIVE update of '{state}'", expr, mech.net_receive.pos
    for state, expr in low.explicit.items():
        yield f"update of '{state}' in the SOLVEd PROCEDURE", expr, mech.pos
    for _, total in low.conserved:
        yield "CONSERVE total", total, mech.pos


def _nonfinite(expr: sympy.Basic) -> str | None:
    """How ``expr`` fails to be finite float64 code: zoo, nan, oo or a too large number."""
    if expr.has(sympy.zoo):
        return "a division by zero (zoo)"
    if expr.has(sympy.nan):
        return "an undefined value (nan)"
    if expr.has(sympy.oo) or expr.has(-sympy.oo):
        return "an infinity"
    for number in expr.atoms(sympy.Number):  # Floats and Integers (9999...9) beyond float64
        if not math.isfinite(float(number)):
            return f"the number {str(number)[:20]}..., beyond float64"
    return None
