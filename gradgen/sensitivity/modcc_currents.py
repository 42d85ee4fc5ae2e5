"""The original's current assignments as modcc must see them to derive its conductance.

modcc takes the conductance of Arbor's implicit step from the current statements, with
LOCALs independent of v; where the original hides v in a LOCAL or a call, the conductance
modcc derives from the original (``Current.conductance``, :mod:`gradgen.nmodl.lower`) is
written out. The gradient version (:class:`gradgen.sensitivity.derive.ContributorSystem`'s
``currents``) and the plain translation (:mod:`gradgen.targets.arbor.translate`) both print
these statements.
"""
from __future__ import annotations

import sympy

from gradgen.nmodl.lowered import LoweredMechanism, V
from gradgen.protocol import LOCAL_PREFIX
from gradgen.sensitivity.straight_line import Assignment


def modcc_currents(low: LoweredMechanism) -> tuple[list[Assignment], list[str]]:
    """The current assignments, written so that modcc derives the original's conductance.

    Where modcc's conductance g is not ∂i/∂v (v inside a LOCAL or a call of the original),
    ``i = I + g·(v − v₀)`` with I, g and v₀ = v in LOCALs: the value is I, and modcc, taking
    LOCALs as independent of v, derives g.
    """
    prefix = LOCAL_PREFIX["current_conductance"]
    out: list[Assignment] = []
    names: list[str] = []
    for n, c in enumerate(low.currents):
        if c.conductance is None:
            out.append(Assignment(c.name, c.expr))
            continue
        value, slope, v0 = (sympy.Symbol(f"{prefix}{part}{n}") for part in ("i", "g", "v"))
        out += [Assignment(value.name, c.expr), Assignment(slope.name, c.conductance),
                Assignment(v0.name, V), Assignment(c.name, value + slope * (V - v0))]
        names += [value.name, slope.name, v0.name]
    return out, names
