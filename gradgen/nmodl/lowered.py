"""What lowering makes of a mechanism: its currents, ODEs, events and initial values as closed forms.

The types every later stage reads (:class:`LoweredMechanism`, :class:`Current`) and the
symbols their expressions are written in (v, the peer's v, t, the simulator's built-ins).
Made by :func:`gradgen.nmodl.lower.lower`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy

from gradgen.nmodl.clock import reads_time
from gradgen.nmodl.ir import Mechanism, Variable

#: Names the simulator provides; NEURON-style files also declare some as PARAMETER/ASSIGNED.
BUILTIN_NAMES = {"v", "celsius", "dt", "t", "area", "diam"}
#: Built-ins a lowered expression may still contain (read-only inputs; time ``t`` is
#: unavailable in Arbor: it becomes the mechanism's clock, gradgen.nmodl.clock). diam [µm]
#: and area [µm²] are those of the CV.
FREE_BUILTINS = {"v", "celsius", "diam", "area"}

V = sympy.Symbol("v")
#: The peer CV's voltage, which a JUNCTION_PROCESS reads (V^n in its current).
V_PEER = sympy.Symbol("v_peer")
TIME = sympy.Symbol("t")


@dataclass
class Current:
    """One membrane current the mechanism writes: an ion current or a nonspecific one."""

    name: str
    ion: str | None
    expr: sympy.Expr
    #: the conductance modcc derives, where it is not ∂expr/∂v: modcc differentiates the
    #: assignment as written, taking LOCALs and FUNCTION calls as independent of v
    conductance: sympy.Expr | None = None


@dataclass
class LoweredMechanism:
    """Closed forms of one mechanism; every expression uses the symbols listed here."""

    mechanism: Mechanism
    parameters: list[Variable]  # differentiable PARAMETERs (built-ins removed), file order
    states: list[str]
    currents: list[Current]
    derivatives: dict[str, sympy.Expr]  # state -> ds/dt, in DERIVATIVE statement order
    initial: dict[str, sympy.Expr]  # state -> initial value
    ion_reads: dict[str, str] = field(default_factory=dict)  # variable -> ion ("ena" -> "na")
    #: a DERIVATIVE METHOD as written, "sparse" (KINETIC), "linear" or "explicit" (a PROCEDURE)
    solve_method: str | None = None
    conserved: list[tuple[dict[str, int], sympy.Expr]] = field(default_factory=list)
    equations: list[sympy.Expr] = field(default_factory=list)  # LINEAR: each = 0 at V^{n+1}
    concentration_writes: dict[str, str] = field(default_factory=dict)  # state -> ion ("cai" -> "ca")
    events: dict[str, sympy.Expr] = field(default_factory=dict)  # state -> value after NET_RECEIVE
    event_args: list[str] = field(default_factory=list)  # NET_RECEIVE arguments ("weight")
    #: state -> value after a spike of the cell (POST_EVENT; plasticity traces and weights)
    post_events: dict[str, sympy.Expr] = field(default_factory=dict)
    #: VOLTAGE_PROCESS: the voltage it sets, F(v, p), applied after the voltage solve
    voltage: sympy.Expr | None = None
    #: States INITIAL sets by a linear solve (STEADYSTATE of a KINETIC block, SOLVE of a
    #: LINEAR block): each expression is 0 at the initial states. Kept as equations, not
    #: solved here: a closed form of a 12-state scheme outgrows memory. Their ``initial``
    #: entries are the states' own symbols.
    initial_equations: dict[str, sympy.Expr] = field(default_factory=dict)
    #: SOLVE of a PROCEDURE: state -> its value after one step, from the old states, v and dt
    explicit: dict[str, sympy.Expr] = field(default_factory=dict)
    #: STATEs a solved DERIVATIVE block assigns (``m = minf``, ``cai = ca``): state -> the
    #: value assigned, a function of the states and of v; which state values (old or new)
    #: it reads is the SOLVE method's (:func:`gradgen.sensitivity.discretize.state_update`)
    state_assignments: dict[str, sympy.Expr] = field(default_factory=dict)
    #: the solved block's steps in order: ``"s'"`` integrates s, ``"s"`` assigns it (its last assignment)
    solve_order: list[str] = field(default_factory=list)
    #: STATEs an if/else that held the SOLVE assigns (``if (cai < 0) { cai = 0 } else { SOLVE … }``):
    #: NEURON runs it in nrn_state after the update, on the new states
    after_solve: dict[str, sympy.Expr] = field(default_factory=dict)
    #: STATEs BREAKPOINT assigns (``if (cai > ceiling) { cai = ceiling }``, ``g = gbar*m*m*h``):
    #: nrn_cur sets them, so the next state update starts from these values
    breakpoint_states: dict[str, sympy.Expr] = field(default_factory=dict)
    #: cnexp: state -> a of its ODE s' = a·s + b as NEURON reads it, where the ODE depends on
    #: its state through values the block assigned before it (they are held fixed:
    #: :mod:`gradgen.nmodl.cnexp_coefficient`); a function of the step's states and v
    cnexp_coefficients: dict[str, sympy.Expr] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.mechanism.name

    def initial_closed_form(self) -> dict[str, sympy.Expr]:
        """``initial`` with the linearly solved states in closed form (small systems only)."""
        if not self.initial_equations:
            return dict(self.initial)
        symbols = [sympy.Symbol(n) for n in self.initial_equations]
        equations = sympy.Matrix(list(self.initial_equations.values()))
        solution = equations.jacobian(symbols).LUsolve(-equations.xreplace({s: 0 for s in symbols}))
        return {**self.initial, **{s.name: value for s, value in zip(symbols, solution)}}

    def parameter_names(self) -> list[str]:
        return [p.name for p in self.parameters]

    def total_current(self) -> sympy.Expr:
        return sympy.Add(*[c.expr for c in self.currents])

    def keeps_clock(self) -> bool:
        """Whether the mechanism reads the time t, and so keeps a clock (gradgen.nmodl.clock)."""
        exprs = [*(c.expr for c in self.currents), *(c.conductance for c in self.currents if c.conductance is not None),
                 *self.derivatives.values(), *self.explicit.values(), *self.equations, *self.events.values(),
                 *self.post_events.values(), *([self.voltage] if self.voltage is not None else [])]
        return reads_time(exprs)
