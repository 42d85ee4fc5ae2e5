"""NEURON's guarded 0/0 quotients (vtrap: an if/else around u/(exp(u) − 1)) rewritten as exprelr."""
from __future__ import annotations

import sympy

from gradgen.nmodl.ir import exprelr, fabs


def _exprelr_form(piecewise: sympy.Piecewise) -> sympy.Expr:
    """``c·exprelr(u)`` if ``piecewise`` is a guarded c·u/(exp(u) − 1) (NEURON's vtrap), else itself.

    The guard must be |w| < eps (eps ≤ 0.01) and its branch the limit c or the first-order
    series c·(1 − u/2); exprelr is exact there, smooth, and has no if/else for modcc or the
    derivatives.
    """
    if len(piecewise.args) != 2 or piecewise.args[1].cond is not sympy.true:
        return piecewise
    guard = piecewise.args[0].cond  # must be |w| < eps, eps small: the guard of a 0/0
    small = isinstance(guard, (sympy.StrictLessThan, sympy.LessThan)) and guard.rhs.is_Number
    if not (small and isinstance(guard.lhs, fabs) and 0 < guard.rhs <= 1e-2):
        return piecewise
    guarded, quotient = piecewise.args[0].expr, piecewise.args[1].expr
    exps = list(quotient.atoms(sympy.exp))
    if len(exps) != 1:
        return piecewise
    u = exps[0].args[0]
    scale = sympy.simplify(quotient * (exps[0] - 1) / u)
    if scale.has(sympy.exp):
        return piecewise
    if not any(sympy.simplify(guarded - series) == 0 for series in (scale, scale * (1 - u / 2))):
        return piecewise
    return scale * exprelr(u)


def guards_to_exprelr(expr: sympy.Expr) -> sympy.Expr:
    """Replace every vtrap-style guarded quotient in ``expr`` by exprelr (see _exprelr_form)."""
    if not expr.has(sympy.Piecewise):
        return expr
    return expr.replace(lambda e: isinstance(e, sympy.Piecewise), _exprelr_form)
