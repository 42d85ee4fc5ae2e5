"""ASSIGNED values that NEURON keeps as a mechanism's own memory, given their roles.

- A RANGE value the mechanism reads but never assigns is set from hoc (``eh_h = -30``, a
  reversal potential per section); NEURON starts it at 0. It is a PARAMETER with default 0:
  Arbor paints it, and it can be a θ like any parameter.
- A value set only in INITIAL and by events (``wf = weight*factor`` in NET_RECEIVE) and read
  by another block holds its value between events: a STATE that only jumps. Taken as a
  constant of INITIAL it would be silently wrong after the first event.
"""
from __future__ import annotations

import sympy
from sympy.core.function import AppliedUndef

from gradgen.nmodl.ir import Assign, Block, Call, Mechanism, Statement, Variable, walk


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


def _uses(blocks: list[Block]) -> tuple[set[str], set[str]]:
    """(names assigned, names read) in these blocks."""
    assigned, read = set(), set()
    for block in blocks:
        for stmt in walk(block.body):
            if isinstance(stmt, Assign):
                assigned.add(stmt.target)
            read |= _read_names(stmt)
    return assigned, read


def set_outside(mech: Mechanism) -> list[Variable]:
    """Move the RANGE ASSIGNED values set from outside into ``mech.parameters`` (default 0);
    return them."""
    ions = {var for ion in mech.ions for var in ion.read + ion.write} | set(mech.nonspecific_currents)
    assigned, read = _uses(_blocks(mech))
    moved = [a for a in mech.assigned if a.name in mech.range_names and a.name in read
             and a.name not in assigned and a.name not in ions]
    for var in moved:
        var.value = 0.0
    mech.assigned = [a for a in mech.assigned if a not in moved]
    mech.parameters += moved
    return moved


def called_blocks(mech: Mechanism, roots: list[Block]) -> list[Block]:
    """The FUNCTIONs and PROCEDUREs these blocks call, directly or through one another."""
    callable_ = {**mech.functions, **mech.procedures}
    found: list[Block] = []
    pending = list(roots)
    while pending:
        for stmt in walk(pending.pop().body):
            names = {stmt.name} if isinstance(stmt, Call) else set()
            for value in vars(stmt).values():
                for item in value if isinstance(value, list) else [value]:
                    if isinstance(item, sympy.Basic):
                        names |= {f.func.__name__ for f in item.atoms(AppliedUndef)}
            for block in (callable_[n] for n in sorted(names) if n in callable_):
                if block not in found:
                    found.append(block)
                    pending.append(block)
    return found


def event_blocks(mech: Mechanism) -> list[Block]:
    """NET_RECEIVE, POST_EVENT and what they call: an ASSIGNED they set changes at events."""
    events = [b for b in (mech.net_receive, mech.post_event) if b]
    return events + called_blocks(mech, events)


def held_between_events(mech: Mechanism) -> list[Variable]:
    """Move the ASSIGNED values only INITIAL and the events set, and another block reads,
    into ``mech.states``; return them. A FUNCTION only the events call is part of them."""
    events = event_blocks(mech)
    if not events:
        return []
    set_by_events, _ = _uses(events)
    roots = [b for b in (mech.initial, mech.breakpoint) if b]
    roots += [*mech.derivatives.values(), *mech.kinetics.values(), *mech.linears.values()]
    elsewhere = roots + called_blocks(mech, roots)
    others = [b for b in _blocks(mech) if (b not in events or b in elsewhere) and b is not mech.initial]
    assigned_elsewhere, read_elsewhere = _uses(others)
    moved = [a for a in mech.assigned if a.name in set_by_events and a.name in read_elsewhere
             and a.name not in assigned_elsewhere]
    mech.assigned = [a for a in mech.assigned if a not in moved]
    mech.states += moved
    return moved


__all__ = ["called_blocks", "event_blocks", "held_between_events", "set_outside"]
