"""Partial derivatives of expressions that share subexpressions, each one taken once.

A value an if/else sets and later statements read (ModelDB 150288's learning rule: the
weight change ``dW``, clipped, scaled, added to ``W``, which feeds the Ca pool) appears
many times in the closed form of a state update: the expression is a small graph but a
large tree. SymPy's ``diff`` works on the tree, and each ``Derivative`` it builds walks the
whole subtree below it for its free symbols, so differentiating one such update took
seconds per symbol and converting the file minutes. Here each distinct subexpression is
differentiated once per symbol, by the same rules SymPy applies (sum, product, power and
chain rules, each function's own ``fdiff``, a Piecewise branch by branch; conditions are
not differentiated), and the results are shared across every expression differentiated
by the same symbol.
"""
from __future__ import annotations

import sympy
from sympy.core.function import AppliedUndef


class Differentiator:
    """∂/∂x of any number of expressions, memoised on their subexpressions."""

    def __init__(self, x: sympy.Symbol):
        self.x = x
        self._depends: dict[sympy.Basic, bool] = {}
        self._derivative: dict[sympy.Basic, sympy.Expr] = {}

    def depends(self, e: sympy.Basic) -> bool:
        """Whether ``e`` contains x (outside nothing: conditions count too)."""
        if e not in self._depends:
            self._depends[e] = e == self.x if not e.args else any(self.depends(a) for a in e.args)
        return self._depends[e]

    def __call__(self, e: sympy.Basic) -> sympy.Expr:
        if e not in self._derivative:
            self._derivative[e] = self._rule(e)
        return self._derivative[e]

    def _rule(self, e: sympy.Basic) -> sympy.Expr:
        if not self.depends(e):
            return sympy.Integer(0)
        if e == self.x:
            return sympy.Integer(1)
        if e.is_Add:
            return sympy.Add(*[self(a) for a in e.args])
        if e.is_Mul:
            args = list(e.args)
            return sympy.Add(*[sympy.Mul(*args[:i], self(a), *args[i + 1:])
                               for i, a in enumerate(args) if self.depends(a)])
        if e.is_Pow:  # SymPy's rule: b^p·(p'·log b + b'·p/b)
            base, power = e.args
            return e * (self(power) * sympy.log(base) + self(base) * power / base)
        if isinstance(e, sympy.Piecewise):  # (its conditions as they are: SymPy's evaluation
            # canonicalises every relation of every condition, minutes on ModelDB 150288 na3DA)
            branches = [(self(value), cond) for value, cond in e.args]
            if all(value == 0 for value, _ in branches):
                return sympy.Integer(0)
            return sympy.Piecewise(*branches, evaluate=False)
        if isinstance(e, sympy.Function) and not isinstance(e, AppliedUndef):
            return sympy.Add(*[e.fdiff(i + 1) * self(a) for i, a in enumerate(e.args) if self.depends(a)])
        return sympy.diff(e, self.x)  # anything else, as SymPy does it


__all__ = ["Differentiator"]
