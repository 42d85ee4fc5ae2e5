"""Where NEURON runs a SOLVE that BREAKPOINT writes inside an if/else.

nocmodl takes every SOLVE out of BREAKPOINT into nrn_state, where it runs on every step
whatever the condition; the if/else stays, without the SOLVE, after it. ModelDB 139421
capr (``if (cai < 0) { cai = 0 } else { SOLVE state METHOD cnexp }``) thus integrates cai
and then clamps it at 0; nrn_cur does not run that if/else (checked in the C++ nrnivmodl
generates). BREAKPOINT keeps the SOLVE in its place, and the if/else without it moves to
``Mechanism.after_solve``, which lowering runs after the state update. An ``AFTER SOLVE``
block runs there too, after that if/else (nocmodl emits it at the end of nrn_state).

A mechanism that writes no current (a Ca pool: ``USEION ca READ ica WRITE cai``) has an
empty nrn_cur: nocmodl runs its whole BREAKPOINT in nrn_state, so the statements after the
SOLVE (168858 cad's clamp ``if (cai > ceiling) { cai = ceiling }``) run after each state
update, as ``Mechanism.after_solve`` too (checked in the C++ nrnivmodl 9 generates).
"""
from __future__ import annotations

from gradgen.nmodl.ir import If, Mechanism, Solve, Statement


def _without_solves(body: list[Statement], found: list[Solve]) -> list[Statement]:
    out: list[Statement] = []
    for stmt in body:
        if isinstance(stmt, Solve):
            found.append(stmt)
        elif isinstance(stmt, If):
            out.append(If(stmt.cond, _without_solves(stmt.then, found),
                          _without_solves(stmt.orelse, found), stmt.pos))
        else:
            out.append(stmt)
    return out


def hoist_branch_solves(mech: Mechanism) -> None:
    """Move each SOLVE nested in a BREAKPOINT if/else to that if/else's place, and the
    if/else without it to ``mech.after_solve``."""
    if mech.breakpoint is None:
        return
    body: list[Statement] = []
    for stmt in mech.breakpoint.body:
        found: list[Solve] = []
        stripped = _without_solves([stmt], found) if isinstance(stmt, If) else [stmt]
        if found:
            body += found
            mech.after_solve += stripped
        else:
            body.append(stmt)
    mech.breakpoint.body = body


def _writes_currents(mech: Mechanism) -> bool:
    return bool(mech.nonspecific_currents) or any(f"i{ion.name}" in ion.write for ion in mech.ions)


def hoist_after_solve_without_currents(mech: Mechanism) -> None:
    """In a mechanism without currents, move BREAKPOINT's statements after its SOLVE to
    ``mech.after_solve``, after the if/else :func:`hoist_branch_solves` put there (it held the SOLVE)."""
    if mech.breakpoint is None or _writes_currents(mech):
        return
    body = mech.breakpoint.body
    last = max((i for i, stmt in enumerate(body) if isinstance(stmt, Solve)), default=None)
    if last is None:
        return
    mech.after_solve = mech.after_solve + body[last + 1:]
    mech.breakpoint.body = body[:last + 1]


def append_after_solve_block(mech: Mechanism) -> None:
    """The AFTER SOLVE block's statements, last in ``mech.after_solve`` (after BREAKPOINT's
    statements that nrn_state runs: nocmodl emits the block at the end of nrn_state)."""
    if mech.after_solve_block is not None:
        mech.after_solve = mech.after_solve + mech.after_solve_block.body


__all__ = ["append_after_solve_block", "hoist_after_solve_without_currents", "hoist_branch_solves"]
