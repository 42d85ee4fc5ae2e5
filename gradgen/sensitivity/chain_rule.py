"""d/dθ_k of a mechanism's expressions: the chain rule through every input that carries a
sensitivity.

θ_k reaches an expression of a mechanism through its states (σ_{s,k}), the coupled ion
quantities it reads (concentrations, currents, and reversal potentials that follow a
concentration; :mod:`gradgen.sensitivity.coupling`), its own parameter that θ_k binds to
(weight w_k) and V (u_k). Phase A and phase B (:mod:`gradgen.sensitivity.phases`) ask for
the same partial derivatives for every θ_k, so each is taken once per subexpression
(:mod:`gradgen.sensitivity.dag_diff`).
"""
from __future__ import annotations

from typing import Callable

import sympy

from gradgen.nmodl.lowered import LoweredMechanism, V
from gradgen.protocol import current_store, sens
from gradgen.sensitivity.coupling import Coupling, concentrations_read
from gradgen.sensitivity.dag_diff import Differentiator
from gradgen.sensitivity.nernst import reversal_slope
from gradgen.sensitivity.straight_line import xd


class ChainRule:
    """One mechanism's inputs with their dθ_k, and the total derivative through them."""

    def __init__(self, low: LoweredMechanism, coupling: Coupling, owned: dict[int, str],
                 u: list[sympy.Symbol], w: list[sympy.Symbol]) -> None:
        self.low, self.coupling, self.owned, self.u, self.w = low, coupling, owned, u, w
        self.K = len(u)
        self.conc_read = concentrations_read(low, coupling)
        self.current_read = [c for c in coupling.currents if c in low.ion_reads]
        # inputs whose dθ_k is a symbol: own states, read concentrations, read currents, and
        # reversal potentials that follow a concentration (0 unless the nernst flag is painted)
        carried: dict[sympy.Symbol, Callable[[int], sympy.Expr]] = {
            sympy.Symbol(s): (lambda k, s=s: sympy.Symbol(sens(s, k))) for s in low.states + self.conc_read}
        for reversal, conc in coupling.followed(low).items():
            slope = reversal_slope(low, reversal)
            carried[sympy.Symbol(reversal)] = lambda k, slope=slope, conc=conc: slope * sympy.Symbol(sens(conc, k))
        carried.update({sympy.Symbol(c): (lambda k, c=c: xd(current_store(c, k))) for c in self.current_read})
        self.carried = carried
        self._differentiators: dict[sympy.Symbol, Differentiator] = {}

    def partial(self, expr: sympy.Expr, x: sympy.Symbol) -> sympy.Expr:
        """∂expr/∂x, each subexpression's taken once (:mod:`gradgen.sensitivity.dag_diff`):
        dtheta asks for the same ones for every θ_k."""
        if x not in self._differentiators:
            self._differentiators[x] = Differentiator(x)
        return self._differentiators[x](expr)

    def dtheta(self, expr: sympy.Expr, k: int, with_u: bool) -> sympy.Expr:
        """d expr/dθ_k through states, coupled ion inputs, the owned parameter and (optionally) V."""
        total = sympy.Add(*[self.partial(expr, s) * d(k) for s, d in self.carried.items()
                            if self.partial(expr, s) != 0])
        if k in self.owned:
            total += self.partial(expr, sympy.Symbol(self.owned[k])) * self.w[k]
        if with_u:
            total += self.partial(expr, V) * self.u[k]
        return total
