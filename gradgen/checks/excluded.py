"""θ that a finite-difference check cannot compare, each with the reason it is left out.

- A *switch time*: a parameter that a condition compares with the time t and nothing else
  (an electrode's ``del``/``dur`` in ``if (t >= del && t < del + dur)``), where the condition
  changes its truth value inside the run. V jumps in it wherever a step of θ moves the switch
  across a time step, so dV/dθ is not defined; the gradient is that of the branch taken. It
  is not FD-compared. (A condition that never changes in the run, e.g. 151825 epsp's cut-off
  ``(onset − t)/tau0 < −100``, switches nothing: its θ are compared as any other.)
- A θ that V does not *visibly* depend on: no two FD steps agree, and over all of them, up
  to a 10 % change of θ (30 % where tried), V moves by at most :data:`INVISIBLE_MV`, as the gradient predicts
  too. E.g. 180370 mAHP's ``cainf``, which its Ca-activated rate reads only as ``cai − cainf``
  with ``cai`` starting at ``cainf`` and relaxing towards it (V does not depend on it at
  all: the differences are rounding), or 17664 CalciumP's ``cainf`` and ``taur`` under
  ``taur = 1e10`` ms ("remove first-order decay"), which move V by 1e-11 mV. A wrong gradient
  cannot hide here: one that predicts a visible change of V is compared.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import sympy

from gradgen.nmodl.clock import CLOCK

#: A change of V this small (mV) under every FD step tried (up to 10–30 % of θ) is below what the check
#: resolves: a hundredth of its forward-fidelity bound (1e-8 mV). Measured: 180370 mAHP.cainf
#: moves V by 5e-13 mV (rounding), 17664 CalciumP's cainf and taur by 1e-11 mV (a floor of
#: 1e-12 mV); 243448 trpm8's p_ca and 145836 NMDA10_1's Rr2, which move V by 9e-11 mV at a
#: 1 % step (1e-9 mV at 10 %) and whose FD is noise-limited (3.5–4 % apart at 1 %), stay
#: compared (and agree, at 10 % against 30 %: gradgen.checks.fd.WIDEST_STEP).
INVISIBLE_MV = 1e-10
#: The retries must have reached the largest steps (h/10 to 1000·h, i.e. 10 % of θ), not
#: stopped early at a blow-up, for the differences to say that V does not move.
DECADES_NEEDED = 1e3


def switch_times(low, values: dict[str, float], dt: float, t_end: float) -> dict[str, str]:
    """Parameters of a lowered mechanism that switch something at a time inside the run
    (``values``: θ values; other parameters at their defaults, 0 where the file gives none,
    as NEURON), each with the reason it is not compared."""
    exprs = [*(c.expr for c in low.currents), *(c.conductance for c in low.currents if c.conductance is not None),
             *low.derivatives.values(), *low.explicit.values(), *low.equations, *low.events.values(),
             *low.post_events.values(), *([low.voltage] if low.voltage is not None else [])]
    known = {p.name: float(p.value) if p.value is not None else 0.0 for p in low.parameters}
    known.update({k: v for k, v in values.items() if k in known})
    # a comparison decided by t and parameters alone switches at a time θ sets; one that also
    # reads V or a state (116094 ShortDendrite's ``if (i > 0)``) is a threshold V crosses smoothly
    times = np.arange(int(round(t_end / dt))) * dt  # the clock at the start of each step
    found: set[str] = set()
    for expr in exprs:
        for relation in sympy.sympify(expr).atoms(sympy.core.relational.Relational):
            symbols = {s.name for s in relation.free_symbols}
            if CLOCK.name not in symbols or not symbols <= set(known) | {CLOCK.name, "dt"}:
                continue
            given = relation.subs({sympy.Symbol(n): known[n] for n in symbols & set(known)} | {sympy.Symbol("dt"): dt})
            clock = next(iter(given.free_symbols), None)
            if clock is None:
                continue  # decided by the parameters alone: the same all run
            try:
                with np.errstate(all="ignore"):
                    truth = np.broadcast_to(sympy.lambdify(clock, given, "numpy")(times), times.shape)
            except (NameError, TypeError):
                # gradgen's own functions (150288's nfloor of t/tone_period) have no numpy
                # form: such a θ is compared as any other, as before switch times were known
                continue
            if truth.any() and not truth.all():
                found |= symbols & set(known)
    return {name: (f"a switch time: a condition compares {name} with t and switches inside the run, "
                   "so V jumps in it (dV/dθ is not defined; not FD-compared)") for name in sorted(found)}


def _expressions(low) -> list[sympy.Expr]:
    """Every expression of a lowered mechanism: its fields' values, in dicts, lists and currents."""
    out: list[sympy.Expr] = []

    def take(value) -> None:
        if isinstance(value, sympy.Basic):
            out.append(value)
        elif isinstance(value, dict):
            for item in value.values():
                take(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                take(item)
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            for field in dataclasses.fields(value):
                if field.name != "mechanism":
                    take(getattr(value, field.name))

    take(low)
    return out


def equality_switches(low) -> dict[str, str]:
    """Parameters read only in ``==``/``!=`` comparisons (26997 kdr's ``maflag``, which picks
    one of three rate formulas): V is piecewise constant in them, so dV/dθ is 0 wherever it
    is defined, and a stepped value (maflag = 2.73) selects no formula at all. Not compared,
    and the check's loss target keeps them at their value."""
    inside: set[str] = set()
    outside: set[str] = set()
    for expr in _expressions(low):
        relations = [r for r in expr.atoms(sympy.Eq, sympy.Ne)]
        inside |= {s.name for r in relations for s in r.free_symbols}
        outside |= {s.name for s in expr.xreplace({r: sympy.Dummy() for r in relations}).free_symbols}
    names = {p.name for p in low.parameters}
    return {name: ("a switch: read only in == / != comparisons, so V is piecewise constant in it "
                   "(dV/dθ is 0 where defined; not FD-compared)") for name in sorted(names & inside - outside)}


def invisible(spans: list[tuple[float, float]], converged: bool, gradient_max: float) -> str | None:
    """Why a θ is left out because V does not visibly depend on it, or None.

    ``spans``: (step, max |ΔV| in mV) of each FD step tried, smallest first; ``converged``:
    whether two steps agreed; ``gradient_max``: max |dV/dθ| of the gradient (mV per unit).
    """
    if converged or len(spans) < 2:
        return None
    (small, small_span), (large, large_span) = spans[0], spans[-1]
    moved = max(span for _, span in spans)
    predicted = gradient_max * 2 * large
    if large < DECADES_NEEDED * small or max(moved, predicted) > INVISIBLE_MV:
        return None
    return (f"V does not visibly depend on it: no FD steps agree, and V moves by at most "
            f"{moved:.1e} mV (step {small:.1e}: {small_span:.1e} mV, step {large:.1e}: "
            f"{large_span:.1e} mV), the gradient predicts {predicted:.1e} mV: below {INVISIBLE_MV:g} mV")


__all__ = ["DECADES_NEEDED", "INVISIBLE_MV", "equality_switches", "invisible", "switch_times"]
