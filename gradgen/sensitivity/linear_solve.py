"""Linear solves written out as straight-line code: Gaussian elimination, one LOCAL per step.

A KINETIC scheme's backward-Euler step and a LINEAR block are linear systems in the states.
Their closed-form solution (SymPy's ``LUsolve`` on symbolic entries) nests one fraction per
elimination step: for a 12-state scheme it grows past gigabytes before it is differentiated.
The simulator itself eliminates numerically, so the gradient mechanism does the same: every
matrix entry, multiplier, updated entry and solution component is one LOCAL, structural
zeros are skipped (no fill-in where there is none), and the factors are computed once and
reused for every right-hand side (the new states, each σ_k = ds/dθ_k, ∂s/∂V).

Pivots stay on the diagonal where it is structurally nonzero (I − dt·J of a rate matrix is
diagonally dominant by columns); a structurally zero pivot (a LINEAR block whose equations
are not written state by state) swaps in the next row that has the column.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import count
from typing import Callable, Iterator

import sympy

from gradgen.errors import GradgenError, SourcePos
from gradgen.nmodl.lowered import V
from gradgen.protocol import elimination_local, sens_dv, sens_pre
from gradgen.sensitivity.discretize import LinearStep
from gradgen.sensitivity.straight_line import Assignment

#: One straight-line statement: LOCAL symbol := expression.
Statement = tuple[sympy.Symbol, sympy.Expr]


@dataclass
class Elimination:
    """The LU factors of a square matrix, as symbols assigned by :attr:`statements`."""

    size: int
    rows: list[int]  # the equation at each position after row swaps
    multipliers: dict[tuple[int, int], sympy.Symbol]  # (i, k), i > k: row i −= l_ik · row k
    upper: dict[tuple[int, int], sympy.Expr]  # (i, j), j ≥ i: nonzero entries of U
    names: Iterator[sympy.Symbol]
    statements: list[Statement] = field(default_factory=list)

    def local(self, expr: sympy.Expr) -> sympy.Expr:
        """``expr`` as a new LOCAL (numbers and symbols stay as they are)."""
        if expr.is_Atom:
            return expr
        symbol = next(self.names)
        self.statements.append((symbol, expr))
        return symbol

    def solve(self, rhs: list[sympy.Expr]) -> tuple[list[Statement], list[sympy.Expr]]:
        """Statements that solve ``A x = rhs`` with these factors, and x (symbols or 0)."""
        start = len(self.statements)
        replacements, reduced = sympy.cse([sympy.sympify(rhs[r]) for r in self.rows], symbols=self.names,
                                          order="none")
        self.statements += replacements
        y = [self.local(r) for r in reduced]
        for k in range(self.size):  # forward substitution with the stored multipliers
            for i in range(k + 1, self.size):
                if (i, k) in self.multipliers and y[k] != 0:
                    y[i] = self.local(y[i] - self.multipliers[(i, k)] * y[k])
        x: list[sympy.Expr] = [sympy.Integer(0)] * self.size
        for i in reversed(range(self.size)):
            total = y[i] - sympy.Add(*[self.upper[(i, j)] * x[j] for j in range(i + 1, self.size)
                                        if (i, j) in self.upper and x[j] != 0])
            x[i] = self.local(total / self.upper[(i, i)]) if total != 0 else sympy.Integer(0)
        solved = self.statements[start:]
        del self.statements[start:]
        return solved, x


def eliminate(matrix: sympy.Matrix, prefix: str) -> Elimination:
    """Factor ``matrix`` (entries in any symbols) by elimination without pivoting.

    Statements assign each nonzero entry, multiplier and updated entry to a LOCAL named
    from ``prefix``; raises ValueError if the matrix is structurally singular.
    """
    n = matrix.rows
    names = (sympy.Symbol(elimination_local(prefix, i)) for i in count())
    elim = Elimination(n, list(range(n)), {}, {}, names)
    nonzero = [(i, j) for i in range(n) for j in range(n) if matrix[i, j] != 0]
    replacements, entries = sympy.cse([matrix[ij] for ij in nonzero], symbols=names, order="none")
    elim.statements += replacements
    a = {ij: elim.local(entry) for ij, entry in zip(nonzero, entries)}
    for k in range(n):
        if (k, k) not in a:
            swap = next((i for i in range(k + 1, n) if (i, k) in a), None)
            if swap is None:
                raise ValueError(f"the linear system is structurally singular (column {k})")
            moved = {(k if i == swap else swap, j): v for (i, j), v in a.items() if i in (k, swap)}
            a = {ij: v for ij, v in a.items() if ij[0] not in (k, swap)} | moved
            elim.rows[k], elim.rows[swap] = elim.rows[swap], elim.rows[k]
            for j in range(k):  # multipliers already taken follow their rows
                mk, ms = elim.multipliers.pop((k, j), None), elim.multipliers.pop((swap, j), None)
                if mk is not None:
                    elim.multipliers[(swap, j)] = mk
                if ms is not None:
                    elim.multipliers[(k, j)] = ms
        pivot = a[(k, k)]
        for i in range(k + 1, n):
            if (i, k) not in a:
                continue
            factor = elim.local(a.pop((i, k)) / pivot)
            elim.multipliers[(i, k)] = factor
            for j in range(k + 1, n):
                if (k, j) in a:
                    a[(i, j)] = elim.local(a.get((i, j), 0) - factor * a[(k, j)])
    elim.upper = {(i, j): value for (i, j), value in a.items() if j >= i}
    return elim


__all__ = ["Elimination", "Statement", "eliminate"]


def solved_step(step: LinearStep, K: int, dtheta: Callable[[sympy.Expr, int], sympy.Expr], prefix: str,
                pos: SourcePos, with_v: bool = True, solve: bool = True
                ) -> tuple[list[Assignment], dict[str, sympy.Expr], list[Assignment]]:
    """A linear update M·x = r solved by elimination, and its sensitivities from the same factors.

    With R(x) = r − M·x = 0 at the solution, dx/dθ_k = M⁻¹·∂R/∂θ_k and ∂x/∂V = M⁻¹·∂R/∂V
    (x held fixed): σpre and JV without ever forming M⁻¹ symbolically. Returns the
    elimination statements, state -> new value, and the σpre (and JV) outputs. ``solve``
    False: x is already in the states (the simulator solved it); only the sensitivities.
    """
    try:
        elimination = eliminate(step.matrix, prefix)
    except ValueError as error:
        raise GradgenError(f"{error}: the states are not determined", pos,
                           hint="write one independent equation per state") from None
    if solve:
        statements, x = elimination.solve(step.rhs)
    else:
        statements, x = [], [sympy.Symbol(name) for name in step.names]
    n = len(x)
    entries = [(i, j) for i in range(n) for j in range(n) if step.matrix[i, j] != 0 and x[j] != 0]

    def residual_derivative(derivative: Callable[[sympy.Expr], sympy.Expr]) -> list[sympy.Expr]:
        """∂R/∂· = ∂r/∂· − ∂M/∂··x, entry by entry (small expressions, no product rule over M·x)."""
        out = [derivative(r) for r in step.rhs]
        for i, j in entries:
            out[i] -= derivative(step.matrix[i, j]) * x[j]
        return out

    outputs = []
    for k in range(K):
        more, dx = elimination.solve(residual_derivative(lambda e: dtheta(e, k)))
        statements += more
        outputs += [Assignment(sens_pre(name, k), d) for name, d in zip(step.names, dx)]
    if with_v:
        more, dx = elimination.solve(residual_derivative(lambda e: sympy.diff(e, V)))
        statements += more
        outputs += [Assignment(sens_dv(name), d) for name, d in zip(step.names, dx)]
    code = [Assignment(symbol.name, expr) for symbol, expr in elimination.statements + statements]
    return code, dict(zip(step.names, x)), outputs
