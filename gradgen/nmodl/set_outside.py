"""RANGE variables declared ASSIGNED that the mechanism reads but never assigns.

NEURON models set such a value from hoc (``eh_h = -30``, a reversal potential per section)
and NEURON starts it at 0. The mechanism itself treats it as a PARAMETER with default 0,
which is what it becomes here: Arbor paints it, and it can be a θ like any parameter.
"""
from __future__ import annotations

import sympy

from gradgen.nmodl.ir import Assign, Block, Mechanism, Statement, Variable, walk


def _blocks(mech: Mechanism) -> list[Block]:
    blocks = [b for b in (mech.initial, mech.breakpoint, mech.net_receive, mech.post_event) if b]
    for table in (mech.functions, mech.procedures, mech.derivatives, mech.kinetics, mech.linears):
        blocks += table.values()
    return blocks


def _read_names(stmt: Statement) -> set[str]:
    """Names in the expressions of one statement (not the targets it assigns)."""
    names: set[str] = set()
    for value in vars(stmt).values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, sympy.Basic):
                names |= {s.name for s in item.free_symbols}
    return names


def set_outside(mech: Mechanism) -> list[Variable]:
    """Move the RANGE ASSIGNED values set from outside into ``mech.parameters`` (default 0);
    return them."""
    ions = {var for ion in mech.ions for var in ion.read + ion.write} | set(mech.nonspecific_currents)
    assigned, read = set(), set()
    for block in _blocks(mech):
        for stmt in walk(block.body):
            if isinstance(stmt, Assign):
                assigned.add(stmt.target)
            read |= _read_names(stmt)
    moved = [a for a in mech.assigned if a.name in mech.range_names and a.name in read
             and a.name not in assigned and a.name not in ions]
    for var in moved:
        var.value = 0.0
    mech.assigned = [a for a in mech.assigned if a not in moved]
    mech.parameters += moved
    return moved


__all__ = ["set_outside"]
