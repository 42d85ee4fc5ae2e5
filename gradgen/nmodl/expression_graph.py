"""Walks over an expression that visit each shared subexpression once.

The closed forms of a mechanism with if/else values read by later if/else statements
(ModelDB 150288 na3DA: a threshold shifted by two piecewise functions of t, read by every
rate) are small graphs but large trees: a few hundred distinct subexpressions in a tree
of millions of nodes. SymPy's ``xreplace``, ``replace``, ``atoms`` and ``free_symbols``
walk the tree; these walk the graph. A Piecewise they rebuild keeps its branches as they
are: SymPy's evaluation of one canonicalises every relation of its conditions, walking
them as trees.
"""
from __future__ import annotations

from typing import Callable, Mapping

import sympy


def subexpressions(expr: sympy.Basic) -> set[sympy.Basic]:
    """Every distinct subexpression of ``expr`` (itself included)."""
    seen: set[sympy.Basic] = set()
    pending = [expr]
    while pending:
        e = pending.pop()
        if e not in seen:
            seen.add(e)
            pending.extend(e.args)
    return seen


def _rebuilt(e: sympy.Basic, args: list[sympy.Basic]) -> sympy.Basic:
    if all(a is b for a, b in zip(args, e.args)):
        return e
    if isinstance(e, sympy.Piecewise):
        return sympy.Piecewise(*args, evaluate=False)
    return e.func(*args)


def map_shared(expr: sympy.Basic, transform: Callable[[sympy.Basic], sympy.Basic],
               rule: Mapping[sympy.Basic, sympy.Basic] | None = None) -> sympy.Basic:
    """``expr`` rebuilt bottom-up, ``transform`` applied to each rebuilt subexpression (as
    SymPy's ``replace`` does), a subexpression found in ``rule`` replaced whole first (as
    ``xreplace``); each distinct subexpression once."""
    rule = rule or {}
    done: dict[sympy.Basic, sympy.Basic] = {}

    def walk(e: sympy.Basic) -> sympy.Basic:
        if e in rule:
            return rule[e]
        if e not in done:
            done[e] = transform(_rebuilt(e, [walk(a) for a in e.args]) if e.args else e)
        return done[e]

    return walk(expr)


def xreplace_shared(expr: sympy.Basic, rule: Mapping[sympy.Basic, sympy.Basic]) -> sympy.Basic:
    """``expr.xreplace(rule)``, each distinct subexpression rebuilt once."""
    return map_shared(expr, lambda e: e, rule)


__all__ = ["map_shared", "subexpressions", "xreplace_shared"]
