"""The time ``t`` as NEURON's fixed step shows it to each block, read from a mechanism's own clock.

Arbor does not pass the time to mechanisms (modcc has no ``t``; ``dt`` is the step). A
mechanism that reads ``t`` (a stimulus that switches on at ``del``, a plasticity window, a
release time kept in NET_RECEIVE) gets a clock of its own: the ASSIGNED
:data:`gradgen.protocol.CLOCK`, set to 0 in INITIAL and advanced by the step's own ``dt``
as the last statement of the state update (Arbor shortens the step at the end of an epoch,
so the clock adds each step's dt, never a fixed one). Between state updates it holds
t_n, the time at the start of the step.

Which time each block sees in NEURON 9's fixed step (measured with a POINT_PROCESS that
copies ``t`` in BREAKPOINT, in a SOLVEd PROCEDURE, in INITIAL and in NET_RECEIVE, built with
nrnivmodl; dt = 0.025 ms, a NetCon event at 0.2137 ms; ``tests/test_clock.py`` repeats it):

- INITIAL: t = 0;
- BREAKPOINT (nrn_cur): t = t_n + dt/2 (0.0125 in the first step, 0.0375 in the second);
- the SOLVEd block (nrn_state): t = t_{n+1} (0.025, then 0.05);
- NET_RECEIVE: t = the event's own time (0.2137, off the step grid). NEURON delivers an event
  due by t_n + dt/2 before the step's currents; Arbor delivers the events of [t_n, t_{n+1})
  before the step's currents, where the clock reads t_n: the two agree for events on the step
  grid (spike sources at multiples of dt), not inside a step.

The lowering reads ``t`` as a marker per block (:data:`T_CURRENT`, :data:`T_STATE`,
:data:`T_EVENT`; 0 in INITIAL), and :func:`resolve` writes each lowered expression's markers
in the clock for the block that computes it: a value passes between blocks as NEURON passes
it (BREAKPOINT's value, read by the state update of the same step, still holds t_n + dt/2;
the state update's value, read by the next step's BREAKPOINT, holds t_{n+1}, which the clock
reads by then). ``gradgen translate`` writes the clock out (ASSIGNED, INITIAL, a METHOD-less
block :data:`CLOCK_PROCEDURE` SOLVEd after the states); lowering such a translation reads its
clock back as the clock (the check converts the translation where modcc rejects the
original). The clock's sensitivity is 0 (time is no θ); a condition on the time
(``t > del``) is piecewise, differentiated in the branch taken.
"""
from __future__ import annotations

import sympy

from gradgen.nmodl.expression_graph import subexpressions, xreplace_shared
from gradgen.protocol import CLOCK as CLOCK_NAME
from gradgen.protocol import CLOCK_PROCEDURE

#: The clock: t_n between state updates.
CLOCK = sympy.Symbol(CLOCK_NAME)
DT = sympy.Symbol("dt")
#: ``t`` as read in BREAKPOINT, in the SOLVEd block and in NET_RECEIVE/POST_EVENT.
T_CURRENT = sympy.Symbol("t@current")
T_STATE = sympy.Symbol("t@state")
T_EVENT = sympy.Symbol("t@event")
MARKERS = (T_CURRENT, T_STATE, T_EVENT)

#: Where an expression is evaluated -> each marker in the clock there.
_ROLES: dict[str, dict[sympy.Symbol, sympy.Expr]] = {
    # compute_currents of step n (clock t_n); a state update's value is from step n-1 (t_n)
    "current": {T_CURRENT: CLOCK + DT / 2, T_STATE: CLOCK, T_EVENT: CLOCK},
    # a current assigned only in the SOLVEd block: computed at t_n (the update before), with
    # the values BREAKPOINT passed it then (t_n - dt/2 for a step of the same dt)
    "solved current": {T_CURRENT: CLOCK - DT / 2, T_STATE: CLOCK, T_EVENT: CLOCK},
    # advance_state of step n, before the clock moves: BREAKPOINT's values of the same step
    "state": {T_CURRENT: CLOCK + DT / 2, T_STATE: CLOCK + DT, T_EVENT: CLOCK},
    # events between steps: the clock reads the step start
    "event": {T_CURRENT: CLOCK + DT / 2, T_STATE: CLOCK, T_EVENT: CLOCK},
}


def resolve(expr: sympy.Expr, role: str) -> sympy.Expr:
    """``expr`` with the time markers written in the clock of the block ``role``."""
    markers = subexpressions(expr) & set(MARKERS)
    return xreplace_shared(expr, _ROLES[role]) if markers else expr


def reads_time(exprs: list[sympy.Expr]) -> bool:
    """Whether any of ``exprs`` reads the clock (the mechanism then keeps one)."""
    return any(CLOCK in subexpressions(e) for e in exprs)


def at_time(event_time: sympy.Expr) -> sympy.Expr:
    """NEURON's ``at_time(te)`` under the fixed step: 1 in the step whose time t satisfies
    t - dt < te - 1e-11 <= t, else 0 (nrnoc's at_time; under CVODE it also makes the solver
    stop at te, which the fixed step never needs). Called as a statement, it is a no-op."""
    shifted = event_time - sympy.Float(1e-11)
    t = sympy.Symbol("t")
    return sympy.Piecewise((sympy.Integer(1), sympy.And(t - DT < shifted, shifted <= t)),
                           (sympy.Integer(0), True))


__all__ = ["CLOCK", "CLOCK_PROCEDURE", "MARKERS", "T_CURRENT", "T_EVENT", "T_STATE", "at_time", "reads_time", "resolve"]
