"""Straight-line generated code: assignments, their LOCALs, and the common-subexpression
elimination that turns a block's outputs into them.

Every block the contributor derives (:mod:`gradgen.sensitivity.derive`) is a :class:`Code`;
the targets print its statements in order.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy

from gradgen.nmodl.expression_graph import map_shared, subexpressions
from gradgen.protocol import diffusive


@dataclass
class Assignment:
    target: str
    expr: sympy.Expr


@dataclass
class Code:
    """Straight-line code: CSE temporaries (LOCALs) then assignments, in order."""

    statements: list[Assignment] = field(default_factory=list)
    locals: list[str] = field(default_factory=list)


def xd(ion: str) -> sympy.Symbol:
    """The symbol through which a mechanism passes a value on ``ion`` (its diffusive concentration)."""
    return sympy.Symbol(diffusive(ion))


def _whole_powers(expr: sympy.Expr) -> sympy.Expr:
    """``o^st·st/o`` (SymPy's ∂(o^st)/∂o) as ``st·o^(st−1)``, finite at o = 0.

    Only products in which a power with a symbolic exponent (a parameter) stands beside the
    reciprocal of its base are rewritten, so other expressions pay nothing (SymPy's powsimp
    over whole expressions made one ModelDB channel with a q10 factor take minutes).
    """
    def mergeable(term: sympy.Basic) -> sympy.Pow | None:
        if not term.is_Mul:
            return None
        return next((a for a in term.args if a.is_Pow and a.exp.free_symbols
                     and sympy.Pow(a.base, -1) in term.args), None)

    def merge(term: sympy.Mul) -> sympy.Expr:
        power = mergeable(term)
        rest = list(term.args)
        rest.remove(power)
        rest.remove(sympy.Pow(power.base, -1))
        return _whole_powers(sympy.Mul(*rest) * sympy.Pow(power.base, power.exp - 1, evaluate=False))

    # (each shared subexpression once: ``atoms`` walked the tree, minutes on ModelDB 150288 tone2pyrD)
    powers = {e for e in subexpressions(expr) if e.is_Pow}
    if not any(p.exp.free_symbols and sympy.Pow(p.base, -1) in powers for p in powers):
        return expr
    return map_shared(expr, lambda e: merge(e) if mergeable(e) is not None else e)


def cse(outputs: list[Assignment], prefix: str) -> Code:
    """Common-subexpression elimination over a block's outputs."""
    symbols = sympy.numbered_symbols(prefix)
    replacements, reduced = sympy.cse([_whole_powers(a.expr) for a in outputs], symbols=symbols,
                                      order="none")
    code = Code()
    for sym, expr in replacements:
        code.locals.append(sym.name)
        code.statements.append(Assignment(sym.name, expr))
    code.statements += [Assignment(a.target, e) for a, e in zip(outputs, reduced)]
    return code


def simultaneous(outputs: list[Assignment], prefix: str) -> Code:
    """Like :func:`cse`, but every right-hand side sees the values from before the block."""
    code = cse([Assignment(f"{prefix}n{i}", a.expr) for i, a in enumerate(outputs)], prefix)
    code.locals += [f"{prefix}n{i}" for i in range(len(outputs))]
    code.statements += [Assignment(a.target, sympy.Symbol(f"{prefix}n{i}")) for i, a in enumerate(outputs)]
    return code


def stage_states(code: Code, states: list[str], prefix: str) -> None:
    """Each new state value reads the states from before the step. Where a state assignment
    (after CSE) reads a state assigned before it, all of them go through staging LOCALs
    first, assigned after the last one (nothing after the updates reads a state)."""
    at = [i for i, a in enumerate(code.statements) if a.target in states]
    assigned: set[sympy.Symbol] = set()
    overlaps = False
    for i in at:
        overlaps |= bool(code.statements[i].expr.free_symbols & assigned)
        assigned.add(sympy.Symbol(code.statements[i].target))
    if not overlaps:
        return
    finals = []
    for j, i in enumerate(at):
        name, target = f"{prefix}n{j}", code.statements[i].target
        code.statements[i] = Assignment(name, code.statements[i].expr)
        code.locals.append(name)
        finals.append(Assignment(target, sympy.Symbol(name)))
    code.statements[at[-1] + 1:at[-1] + 1] = finals


def prepend(code: Code, statements: list[Assignment]) -> None:
    """Put LOCAL ``statements`` (an elimination) before ``code``'s own."""
    code.locals = [a.target for a in statements] + code.locals
    code.statements = statements + code.statements
