"""Conditions that read an if/else value, written as plain logic of their branches.

``if (fabs(dW) > maxChange)`` where ``dW`` was set by an if/else is a condition holding a
``Piecewise``. SymPy folds such a condition itself whenever a Piecewise is built on it: it
rewrites the condition as an ITE and runs ``simplify_logic`` over it, which simplifies every
relation and took over a minute for one ModelDB synapse (150288 tone2pyrD). The same truth
value, written here as ``Or(And(branch guard, relation on that branch's value), …)`` with
mutually exclusive guards, costs nothing to build and evaluates the same comparisons on
the same values as the original's C code.
"""
from __future__ import annotations

import sympy
from sympy.core.relational import Relational


def _outermost_piecewise(expr: sympy.Basic) -> sympy.Piecewise | None:
    for node in sympy.preorder_traversal(expr):
        if isinstance(node, sympy.Piecewise):
            return node
    return None


def branches(expr: sympy.Basic) -> list[tuple[sympy.Basic, sympy.Basic]]:
    """``expr`` as (value without Piecewise, guard) pairs whose guards exclude one another
    and together cover every case; one Piecewise at a time, each occurrence of it at once."""
    piecewise = _outermost_piecewise(expr)
    if piecewise is None:
        return [(expr, sympy.true)]
    out: list[tuple[sympy.Basic, sympy.Basic]] = []
    earlier: list[sympy.Basic] = []  # conditions of the branches before: NEURON tests in order
    for value, cond in piecewise.args:
        cond = fold_condition(cond)
        guard = sympy.And(cond, *[sympy.Not(c) for c in earlier])
        earlier.append(cond)
        if guard == sympy.false:
            continue
        for inner, inner_guard in branches(expr.xreplace({piecewise: value})):
            both = sympy.And(guard, inner_guard)
            if both != sympy.false:
                out.append((inner, both))
        if cond == sympy.true:
            break
    return out


def fold_condition(cond: sympy.Basic) -> sympy.Basic:
    """``cond`` without Piecewise inside it: each relation that compares an if/else value
    becomes the disjunction, over the value's branches, of guard and comparison."""
    if not isinstance(cond, sympy.Basic) or not cond.has(sympy.Piecewise):
        return cond
    if isinstance(cond, Relational):
        pairs = branches(sympy.Tuple(cond.lhs, cond.rhs))
        return sympy.Or(*[sympy.And(guard, cond.func(*sides.args)) for sides, guard in pairs])
    if isinstance(cond, (sympy.And, sympy.Or, sympy.Not)):
        return cond.func(*[fold_condition(a) for a in cond.args])
    return cond


__all__ = ["branches", "fold_condition"]
