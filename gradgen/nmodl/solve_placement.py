"""Where NEURON runs a SOLVE that BREAKPOINT writes inside an if/else.

nocmodl takes every SOLVE out of BREAKPOINT into nrn_state, where it runs on every step
whatever the condition; the if/else stays, without the SOLVE, after it. ModelDB 139421
capr (``if (cai < 0) { cai = 0 } else { SOLVE state METHOD cnexp }``) thus integrates cai
and then clamps it at 0; nrn_cur does not run that if/else (checked in the C++ nrnivmodl
generates). BREAKPOINT keeps the SOLVE in its place, and the if/else without it moves to
``Mechanism.after_solve``, which lowering runs after the state update. An ``AFTER SOLVE``
block runs there too, after that if/else (nocmodl emits it at the end of nrn_state).
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
    if/else without it to ``mech.after_solve``, then the AFTER SOLVE block's statements."""
    if mech.breakpoint is None:
        mech.after_solve += mech.after_solve_block.body if mech.after_solve_block else []
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
    mech.after_solve += mech.after_solve_block.body if mech.after_solve_block else []


__all__ = ["hoist_branch_solves"]
