"""ASSIGNED values that NEURON keeps as a mechanism's own memory, given their roles.

- A RANGE value the mechanism reads but never assigns is set from hoc (``eh_h = -30``, a
  reversal potential per section); NEURON starts it at 0. It is a PARAMETER with default 0:
  Arbor paints it, and it can be a θ like any parameter.
- A value set only in INITIAL and by events (``wf = weight*factor`` in NET_RECEIVE) and read
  by another block holds its value between events: a STATE that only jumps. Taken as a
  constant of INITIAL it would be silently wrong after the first event.
- An ion concentration the mechanism writes (``WRITE cai``) in a DERIVATIVE or KINETIC block
  without declaring it a STATE (``cai = ca`` after ``ca' = …``, ``cai = ca[0]`` after a
  buffer scheme) is set there once per step, as NEURON's nrn_state leaves it: a STATE the
  solved block assigns.
- A value a DERIVATIVE block reads before it assigns it (``s1' = a·s0 - …`` then
  ``s0 = 1 - s1 - s2``) is, in NEURON, the value the previous step left: a STATE the
  solved block assigns, read one step late.
"""
from __future__ import annotations

import sympy
from sympy.core.function import AppliedUndef

from gradgen.nmodl.ir import Assign, Block, Call, If, Mechanism, Solve, Statement, Variable, walk
from gradgen.protocol import CLOCK


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
    assigned, read = _uses(mech.blocks())
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


def _read_early(mech: Mechanism, blocks: list[Block]) -> set[str]:
    """Names some block reads before it assigns them on some path: the value an earlier run
    of the blocks left (``if (notFirstSpike) {…}`` in 185513 DCNsynGABA's FUNCTION that
    NET_RECEIVE calls). Each block is scanned from its start, a FUNCTION's result excluded."""
    early: set[str] = set()
    for block in blocks:
        found: set[str] = set()
        _derivative_scan(mech, block.body, set(block.args), found)
        early |= found - {block.name}
    return early


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
    others = [b for b in mech.blocks() if (b not in events or b in elsewhere) and b is not mech.initial]
    assigned_elsewhere, read_elsewhere = _uses(others)
    moved = [a for a in mech.assigned if a.name in set_by_events and a.name not in assigned_elsewhere
             and (a.name in read_elsewhere or a.name in _read_early(mech, events))]
    mech.assigned = [a for a in mech.assigned if a not in moved]
    mech.states += moved
    return moved


def _derivative_scan(mech: Mechanism, body: list[Statement], assigned: set[str], early: set[str],
                     depth: int = 0) -> None:
    """Walk a block as it runs (PROCEDUREs entered), adding to ``assigned`` what it sets and
    to ``early`` what it reads before setting; a branch counts as set only in both arms."""
    for stmt in body:
        if isinstance(stmt, If):
            early |= {s.name for s in stmt.cond.free_symbols} - assigned
            then, orelse = set(assigned), set(assigned)
            _derivative_scan(mech, stmt.then, then, early, depth)
            _derivative_scan(mech, stmt.orelse, orelse, early, depth)
            assigned |= then & orelse
            continue
        early |= _read_names(stmt) - assigned
        if isinstance(stmt, Assign):
            assigned.add(stmt.target)
        elif isinstance(stmt, Call) and stmt.name in mech.procedures and depth < 20:
            proc = mech.procedures[stmt.name]
            inner = set(assigned) | set(proc.args)
            _derivative_scan(mech, proc.body, inner, early, depth + 1)
            assigned |= inner - set(proc.args)


def assigned_in_derivatives(mech: Mechanism) -> list[Variable]:
    """Move into ``mech.states`` the written ion concentrations a DERIVATIVE or KINETIC block
    assigns and the ASSIGNED values it reads before assigning them; return them (see the
    module doc)."""
    written = {var for ion in mech.ions for var in ion.write if var in (f"{ion.name}i", f"{ion.name}o")}
    ions = {var for ion in mech.ions for var in ion.read + ion.write} | set(mech.nonspecific_currents)
    states = {s.name for s in mech.states}
    before_solve = mech.breakpoint.body if mech.breakpoint else []
    set_by_breakpoint, _ = _uses([Block("breakpoint", before_solve, mech.pos)])
    moved: list[Variable] = []
    for block in [*mech.derivatives.values(), *mech.kinetics.values()]:
        assigned, early = set(), set()
        _derivative_scan(mech, block.body, assigned, early)
        for table in (mech.assigned, mech.parameters):
            for var in table:
                concentration = var.name in written and var.name in assigned
                # (a translation's clock is read back as the time: gradgen.nmodl.clock)
                # (not in KINETIC: NEURON's Newton evaluations of it see the last evaluation's value)
                lagged = (var.name in early and var.name in assigned and table is mech.assigned
                          and mech.derivatives.get(block.name) is block and var.name not in ions
                          and var.name not in set_by_breakpoint and var.name != CLOCK)
                if (concentration or lagged) and var.name not in states:
                    moved.append(var)
                    states.add(var.name)
    for name in written - states:  # a concentration assigned there but declared nowhere
        if any(name in _derivative_written(mech, b) for b in [*mech.derivatives.values(), *mech.kinetics.values()]):
            moved.append(Variable(name, mech.pos))
            states.add(name)
    mech.assigned = [a for a in mech.assigned if a not in moved]
    mech.parameters = [p for p in mech.parameters if p not in moved]
    mech.states += moved
    return moved


def held_by_solved_procedures(mech: Mechanism) -> list[Variable]:
    """Move into ``mech.states`` the ASSIGNED values a SOLVEd PROCEDURE (no METHOD) reads
    before it assigns them on some path and assigns on another (123897 GABAa's ``R0 = R`` at
    a release, read by every later step): NEURON's nrn_state runs it once per step, and what it
    does not assign keeps the last step's value. Return them."""
    ions = {var for ion in mech.ions for var in ion.read + ion.write} | set(mech.nonspecific_currents)
    body = mech.breakpoint.body if mech.breakpoint else []
    solved = [mech.procedures[s.block] for s in walk(body)
              if isinstance(s, Solve) and s.method is None and s.block in mech.procedures]
    moved: list[Variable] = []
    for block in solved:
        assigned, early = set(), set()
        _derivative_scan(mech, block.body, assigned, early)
        everywhere, _ = _uses([block, *called_blocks(mech, [block])])
        moved += [a for a in mech.assigned if a.name in early and a.name in everywhere
                  and a.name not in ions and a.name != CLOCK and a not in moved]
    mech.assigned = [a for a in mech.assigned if a not in moved]
    mech.states += moved
    return moved


def _derivative_written(mech: Mechanism, block: Block) -> set[str]:
    assigned: set[str] = set()
    _derivative_scan(mech, block.body, assigned, set())
    return assigned


def assigned_outside_initial(mech: Mechanism) -> set[str]:
    """Names some block other than INITIAL assigns (PROCEDUREs and FUNCTIONs counted wherever called)."""
    assigned, _ = _uses([b for b in mech.blocks() if b is not mech.initial])
    return assigned


def read_before_assigned(mech: Mechanism, block: Block) -> tuple[set[str], set[str]]:
    """(names the block reads before it assigns them, names it assigns), PROCEDUREs entered."""
    assigned, early = set(), set()
    _derivative_scan(mech, block.body, assigned, early)
    return early, assigned


__all__ = ["assigned_in_derivatives", "assigned_outside_initial", "called_blocks", "event_blocks",
           "held_between_events", "held_by_solved_procedures", "read_before_assigned", "set_outside"]
