"""What a NEURON mechanism's blocks read where the file leaves it implicit, as NEURON runs them.

Each case is NEURON's generated C (nocmodl) taken at its word: the value a statement finds
in a variable is whatever the last block that ran left there. Used by the lowering
(:mod:`gradgen.nmodl.lower`), which passes its tables in and gets them changed in place.
"""
from __future__ import annotations

import sympy

from gradgen import protocol
from gradgen.errors import GradgenError
from gradgen.nmodl.ir import Mechanism
from gradgen.nmodl.lowered import Current


def rates_read_early(derivatives: dict[str, sympy.Expr]) -> None:
    """``A' = -(A - w·D')/tau`` before ``D' = …`` (ModelDB 145836 SynExp5NMDA2): NEURON's
    derivimplicit evaluates the block until Newton's method converges, each evaluation
    reading the D' the last one left, so at the solution D' is D's rate at the new states:
    substituted here (in place)."""
    rates = {sympy.Symbol(f"{name}'"): expr for name, expr in derivatives.items()}
    for _ in range(len(rates)):  # a rate may read another rate read early
        if not any(expr.has(*rates) for expr in derivatives.values()):
            return
        for name in derivatives:
            derivatives[name] = derivatives[name].xreplace(rates)
        rates = {sympy.Symbol(f"{name}'"): expr for name, expr in derivatives.items()}


def read_own_currents(mech: Mechanism, states: list[str], currents: list["Current"], derivatives: dict[str, sympy.Expr],
                       assigned: dict[str, sympy.Expr], after_solve: dict[str, sympy.Expr],
                       init_states: dict[str, sympy.Expr]) -> list[str]:
    """A current the mechanism writes and its DERIVATIVE block reads (``drive = -ica/…``,
    ModelDB 180370 mAHP): NEURON's nrn_state reads the value nrn_cur left, the current at
    the step's old voltage and states, which is the current at the new ones of the step
    before. A STATE (:func:`gradgen.protocol.last_current`) set after each state update and
    at INITIAL (finitialize runs nrn_cur); the tables are changed in place."""
    read = {s.name for e in [*derivatives.values(), *assigned.values()] for s in e.free_symbols}
    own = [c for c in currents if c.name in read]
    if not own:
        return states
    declared = {v.name for v in mech.parameters + mech.assigned + mech.states + mech.constants}
    for cur in own:
        if protocol.last_current(cur.name) in declared:
            raise GradgenError(f"'{protocol.last_current(cur.name)}' is the name gradgen gives the value of "
                               f"'{cur.name}' the DERIVATIVE block reads", mech.pos, hint="rename the variable")
    last = {sympy.Symbol(c.name): sympy.Symbol(protocol.last_current(c.name)) for c in own}
    for table in (derivatives, assigned):
        for name in table:
            table[name] = table[name].xreplace(last)
    at_start = {sympy.Symbol(s): e for s, e in init_states.items()}
    for cur in own:
        after_solve[protocol.last_current(cur.name)] = cur.expr
        init_states[protocol.last_current(cur.name)] = cur.expr.xreplace(at_start)
    return states + [protocol.last_current(c.name) for c in own]


def zero_base_powers(expr: sympy.Expr) -> sympy.Expr:
    """``0^x`` (x a parameter: ``(cai - cainf)^caix`` at cai = cainf in INITIAL, ModelDB 180370
    kca2) as 0, its value for every x > 0 (a Hill exponent); SymPy's ∂/∂x of it is
    0·log(0), a literal nan in the generated code."""
    if not any(p.base == 0 and p.exp.free_symbols for p in expr.atoms(sympy.Pow)):
        return expr
    return expr.replace(lambda e: e.is_Pow and e.base == 0 and bool(e.exp.free_symbols), lambda e: sympy.Integer(0))


def hold_initial_values(frozen: dict[str, sympy.Expr], states: list[str], solve_method: str | None,
                        init_states: dict[str, sympy.Expr], derivatives: dict[str, sympy.Expr],
                        explicit: dict[str, sympy.Expr], read: list[sympy.Expr]) -> list[str]:
    """A value INITIAL computes from v and only INITIAL sets (``factor`` from the rates at v,
    read by NET_RECEIVE: ModelDB 145836 SynExp5NMDA2) keeps NEURON's value at V^0: a STATE
    that never changes, where another block reads it; the tables are changed in place."""
    used = {s.name for e in read for s in e.free_symbols}
    held = [name for name in frozen if name in used and name not in states]
    if not held or solve_method == "linear":
        return states
    for name in held:
        init_states[name] = frozen[name]
        if solve_method == "explicit":
            explicit[name] = sympy.Symbol(name)
        elif solve_method is not None:
            derivatives[name] = sympy.Integer(0)
    return states + held


__all__ = ["hold_initial_values", "rates_read_early", "read_own_currents", "zero_base_powers"]
