"""Derive a mechanism's part of the model's gradient system (the *contributor*).

Every mechanism on a CV carries σ_{s,k} = ds/dθ_k for every model parameter θ_k (its
states depend on V, and V on every θ). Per simulation step the contributor

- phase A (BREAKPOINT, at V^n): completes σ^n = σpre + JV·u^n with u^n read from the carrier
  ion; adds its conductance g = ∂I/∂V to the per-CV conductance accumulator and its source
  term B_k = ∂I/∂s·σ_k + ∂I/∂p·w_k to θ_k's scratch ion; keeps dG_k = dg/dθ_k for phase B;
- phase B (advance_state, at V^{n+1}): applies the state update Φ (modcc's cnexp map),
  keeps σpre = ∂Φ/∂s·σ + ∂Φ/∂p·w and JV = ∂Φ/∂V, and adds the conductance-change source
  dG_k·(V^{n+1} − V^n) to θ_k's scratch ion.

Every generated name comes from :mod:`gradgen.protocol`. Phases A and B are derived in
:mod:`gradgen.sensitivity.phases` (d/dθ_k by :mod:`gradgen.sensitivity.chain_rule`); this
module adds INITIAL, the events and a voltage process, and puts the system together.

The hub mechanism (see :mod:`gradgen.targets.arbor.emit`) turns these per-CV sums into u^{n+1}.
w_k is the fraction of θ_k that binds to this mechanism's parameter on this CV (a RANGE
parameter painted 1 on θ_k's region).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Collection, Mapping

import sympy

from gradgen.errors import GradgenError
from gradgen.nmodl.clock import CLOCK, DT
from gradgen.nmodl.initial_solve import InitialSolveSource, initial_solve_source
from gradgen.nmodl.lowered import LoweredMechanism, V
from gradgen.params import ParamRef
from gradgen.protocol import (
    LOCAL_PREFIX,
    VPREV,
    carrier_ion,
    clamp_store,
    concentration_dv_store,
    concentration_store,
    current_dv_store,
    current_store,
    dcond,
    peer_carrier,
    sens,
    sens_dv,
    sens_pre,
    seen,
    weight,
)
from gradgen.sensitivity.chain_rule import ChainRule
from gradgen.sensitivity.coupling import Coupling, concentrations_read
from gradgen.sensitivity.discretize import MODCC_METHODS, linear_system
from gradgen.sensitivity.linear_solve import solved_step
from gradgen.sensitivity.modcc_currents import modcc_currents
from gradgen.sensitivity.phases import derive_phase_a, derive_phase_b, pool_first_publish
from gradgen.sensitivity.straight_line import Assignment, Code, cse, prepend, simultaneous, xd


@dataclass
class ContributorSystem:
    """Everything the emitter needs for one gradient mechanism."""

    lowered: LoweredMechanism
    params: list[ParamRef]
    owned: dict[int, str]  # k -> this mechanism's parameter that θ_k binds to
    coupling: Coupling
    initial: Code
    phase_a: Code
    currents: list[Assignment]  # the original current assignments, kept whole for modcc
    phase_b: Code
    events: Code  # NET_RECEIVE: state jumps and their sensitivities
    post_events: Code  # POST_EVENT (a spike of the cell): state jumps and their sensitivities
    current_locals: list[str] = field(default_factory=list)  # LOCALs the currents use
    pool_first: bool = False  # the coupling's order (derive_contributor's ``pool_first``)
    #: the original's initial SOLVEs, for the target to paste before ``initial``
    #: (derive_contributor's ``simulator_solves_initial``)
    initial_solve: InitialSolveSource | None = None

    @property
    def name(self) -> str:
        return self.lowered.name

    def assigned_names(self) -> list[str]:
        names = [sens(s, k) for s in self.lowered.states for k in range(len(self.params))]
        names += [sens_pre(s, k) for s in self.lowered.states for k in range(len(self.params))]
        names += [sens_dv(s) for s in self.lowered.states]
        names += [sens(c, k) for c in self.concentrations_read() for k in range(len(self.params))]
        names += [dcond(k) for k in range(len(self.params))] + [VPREV]
        if self.lowered.keeps_clock():
            names.append(CLOCK.name)
        if self.lowered.mechanism.kind == "junction":
            names += [peer_carrier(k) for k in range(len(self.params))]
        if self.pool_first:
            for c in self.concentrations_read():
                names += [seen(c), seen(concentration_dv_store(c))]
                names += [seen(concentration_store(c, k)) for k in range(len(self.params))]
        return names

    def concentrations_read(self) -> list[str]:
        """Coupled concentrations this mechanism reads, directly or through a Nernst reversal
        potential (their dc/dθ is kept per phase A)."""
        return concentrations_read(self.lowered, self.coupling)

    def nernst_reversals(self) -> dict[str, str]:
        """Reversal potentials that follow a concentration where the flag is set: var -> conc."""
        return self.coupling.followed(self.lowered)

    def store_ions(self) -> dict[str, bool]:
        """Coupling store ions this mechanism uses -> whether it writes them."""
        low, K = self.lowered, len(self.params)
        stores: dict[str, bool] = {}
        for c in self.coupling.currents:
            if c in low.ion_reads or any(cur.name == c for cur in low.currents):
                # where the reader runs first it also empties the store (pool_first)
                writes = self.pool_first or any(cur.name == c for cur in low.currents)
                for k in range(K):
                    stores[current_store(c, k)] = writes
                if self.pool_first:
                    stores[current_dv_store(c)] = writes
        for c in self.coupling.concentrations:
            if c in self.concentrations_read() or c in low.concentration_writes:
                writes = c in low.concentration_writes
                for k in range(K):
                    stores[concentration_store(c, k)] = writes
                stores[concentration_dv_store(c)] = writes
        if self.coupling.clamped and (low.states or self.concentrations_read()):
            stores.update({clamp_store(k): False for k in range(K)})
        return stores


def derive_contributor(low: LoweredMechanism, params: list[ParamRef],
                       coupling: Coupling = Coupling(),
                       methods: Mapping[str, str] = MODCC_METHODS,
                       slope_step: float | None = None, *, direct: bool = False,
                       pool_first: bool = False, simulator_solves_initial: Collection[str] = ()) -> ContributorSystem:
    """Build the gradient system of ``low`` for the model's parameters ``params``.

    ``coupling`` names the ion quantities shared with the model's other mechanisms (see
    :mod:`gradgen.sensitivity.coupling`); their sensitivities enter like those of states.
    ``methods`` maps SOLVE methods to the discrete updates the target applies
    (:mod:`gradgen.sensitivity.discretize`); ``slope_step`` is the voltage step of the
    target's numerical slope of the currents (NEURON's 0.001 mV), None for modcc's symbolic
    conductance (Arbor): the conductance of the implicit step is the one the simulator uses.
    ``direct``: u^{n+1} is known when phase B runs (a carrier that solves u before the state
    updates, as the exact carrier does), so phase B updates σ itself and phase A needs no
    completion; the conductance-change source is left to the carrier (phase A's dG_k). A
    coupled concentration's σ is then the writer's own, shared by name with its readers
    inside one mechanism (no concentration stores); a coupled current's stores are sums the
    mechanism keeps from phase A to phase B.
    ``pool_first``: the simulator runs the state update of a coupled current's reader (a Ca
    pool, which writes the coupled concentration) before every other (NEURON does, for a
    mechanism that writes a concentration): the current's writers publish its sensitivity
    for the next step after their state update, split as u-free part + coefficient·u_k
    (the reader completes it with u^n and empties the stores), and a concentration's readers
    see the new value in their state update (its σ: the pool's stores, the u-coefficient into
    JV) and keep what they saw for their next phase A (:func:`gradgen.sensitivity.phases.pool_first_publish`).
    ``simulator_solves_initial``: the kinds of initial solves ("kinetic", "linear") whose states
    are left to the simulator, with the original's own SOLVE and blocks
    (:mod:`gradgen.nmodl.initial_solve`; the target pastes ``initial_solve``), σ(0) computed
    from the states it found; other solves, and where pasting is not possible, are solved by
    elimination in the generated code.
    """
    owned = _owned_parameters(low, params)
    K = len(params)
    u = [xd(carrier_ion(k)) for k in range(K)]
    w = [sympy.Symbol(weight(k)) for k in range(K)]
    if low.voltage is not None:
        return _voltage_process(low, params, owned, coupling, u, w)
    chain = ChainRule(low, coupling, owned, u, w)
    phase_a = derive_phase_a(chain, slope_step, direct=direct, pool_first=pool_first)
    currents, current_locals = modcc_currents(low)
    published = [c for c in low.concentration_writes if c in coupling.concentrations]
    phase_b = derive_phase_b(chain, methods, published, direct=direct, pool_first=pool_first)
    events = _jump_code(chain, low.events, direct)
    post_events = _jump_code(chain, low.post_events, direct)
    pasted = initial_solve_source(low, simulator_solves_initial) if simulator_solves_initial else None
    initial = _initial(chain, published, pasted, direct=direct, pool_first=pool_first)
    if low.keeps_clock():  # the time t_n: 0 at INITIAL, advanced after every read of the step
        initial.statements.append(Assignment(CLOCK.name, sympy.Integer(0)))
        phase_b.statements.append(Assignment(CLOCK.name, CLOCK + DT))
    return ContributorSystem(low, params, owned, coupling, initial, phase_a, currents, phase_b, events,
                             post_events, current_locals, pool_first, pasted)


def _owned_parameters(low: LoweredMechanism, params: list[ParamRef]) -> dict[int, str]:
    """k -> the parameter of ``low`` that θ_k binds to, for the θ_k that name this mechanism."""
    owned: dict[int, str] = {}
    for k, ref in enumerate(params):
        if ref.mechanism == low.name:
            if ref.parameter not in low.parameter_names() + low.event_args:
                raise GradgenError(
                    f"mechanism '{low.name}' has no parameter '{ref.parameter}'", low.mechanism.pos,
                    hint="parameters: " + ", ".join(low.parameter_names() + low.event_args))
            owned[k] = ref.parameter
    return owned


def _jump_code(chain: ChainRule, jumps: dict[str, sympy.Expr], direct: bool) -> Code:
    """NET_RECEIVE or POST_EVENT: s⁺ = f(s, weight), so σ⁺ = ∂f/∂s·σ + ∂f/∂θ with σ = σpre + JV·u
    split alike (both are applied between one step's state update and the next step's currents);
    with ``direct`` σ is whole there (phase B completed it with u^{n+1})."""
    K, owned, w = chain.K, chain.owned, chain.w
    states = [sympy.Symbol(s) for s in chain.low.states]
    held = sens if direct else sens_pre
    outputs = []
    for name, jump in jumps.items():
        for k in range(K):
            pre = sympy.Add(*[sympy.diff(jump, s) * sympy.Symbol(held(s.name, k)) for s in states])
            if k in owned:
                pre += sympy.diff(jump, sympy.Symbol(owned[k])) * w[k]
            outputs.append(Assignment(held(name, k), pre))
        if not direct:
            outputs.append(Assignment(sens_dv(name), sympy.Add(*[sympy.diff(jump, s) * sympy.Symbol(sens_dv(s.name))
                                                                for s in states])))
    outputs += [Assignment(name, jump) for name, jump in jumps.items()]
    return simultaneous(outputs, LOCAL_PREFIX["events"])


def _initial(chain: ChainRule, published: list[str], pasted: InitialSolveSource | None, *, direct: bool,
             pool_first: bool) -> Code:
    """INITIAL: states, and σ0 = ∂s0/∂θ (u^0 = 0: the initial voltage does not depend on θ);
    with ``pasted`` the simulator solves the initial states and only σ0 is computed here."""
    low, K, owned, w, conc_read = chain.low, chain.K, chain.owned, chain.w, chain.conc_read

    def dtheta0(expr: sympy.Expr, k: int) -> sympy.Expr:
        d = chain.partial(expr, sympy.Symbol(owned[k])) * w[k] if k in owned else sympy.Integer(0)
        return d + sympy.Add(*[chain.partial(expr, sympy.Symbol(c)) * (sympy.Symbol(sens(c, k)) if direct
                                                                       else xd(concentration_store(c, k)))
                               for c in conc_read])

    solved, outputs = [], []
    if low.initial_equations:  # states set by a linear solve: by the simulator or in the generated code
        step = linear_system(low.initial_equations, low)
        solved, values, outputs = solved_step(step, K, dtheta0, LOCAL_PREFIX["initial"],
                                              low.mechanism.initial.pos, with_v=False, solve=pasted is None)
        outputs += [Assignment(name, value) for name, value in values.items() if value != sympy.Symbol(name)]
    for name, expr in low.initial.items():
        if name in low.initial_equations:
            continue
        outputs.append(Assignment(name, expr))
        outputs += [Assignment(sens_pre(name, k), dtheta0(expr, k)) for k in range(K)]
    initial = cse(outputs, LOCAL_PREFIX["initial"])
    prepend(initial, solved)
    for name in low.states:
        initial.statements.append(Assignment(sens_dv(name), sympy.Integer(0)))
        for k in range(K):
            initial.statements.append(Assignment(sens(name, k), sympy.Symbol(sens_pre(name, k))))
    for c in published if not direct else ():
        initial.statements += [Assignment(f"{concentration_store(c, k)}d", sympy.Symbol(sens_pre(c, k)))
                               for k in range(K)]
        initial.statements.append(Assignment(f"{concentration_dv_store(c)}d", sympy.Integer(0)))
    for k in range(K):
        initial.statements.append(Assignment(dcond(k), sympy.Integer(0)))
    initial.statements.append(Assignment(VPREV, V))
    if pool_first:  # the same hand-over after the initial states as after each state update
        publish = pool_first_publish(chain)
        initial.statements += publish.statements
        initial.locals += publish.locals
    return initial


def _voltage_process(low: LoweredMechanism, params: list[ParamRef], owned: dict[int, str], coupling: Coupling,
                     u: list[sympy.Symbol], w: list[sympy.Symbol]) -> ContributorSystem:
    """A VOLTAGE_PROCESS sets V ← F(V, p) after the voltage solve and every state update, so
    u_k ← ∂F/∂V·u_k + ∂F/∂p·w_k on its CVs (u = 0 where a clamp holds V at a θ-free value).

    The one block (``phase_a``, its BREAKPOINT) writes the carriers before it sets v: the
    contributors' next phase A then reads the set u^n, as their currents read the set V^n.
    Their states were updated with the solved V^{n+1}: the clamp store gets u(solved) −
    u(set), with which they complete σ (:mod:`gradgen.sensitivity.coupling`). Without it
    dV/dθ was first-order wrong in dt (v_limit.v_high: 25 % at dt 0.01, 6.3 % at 0.0025).
    """
    outputs = []
    for k in range(len(params)):
        du = sympy.diff(low.voltage, V) * u[k]
        if k in owned:
            du += sympy.diff(low.voltage, sympy.Symbol(owned[k])) * w[k]
        outputs.append(Assignment(f"{clamp_store(k)}d", xd(clamp_store(k)) + u[k] - du))
        outputs.append(Assignment(f"{carrier_ion(k)}d", du))
    outputs.append(Assignment(V.name, low.voltage))
    clamp = cse(outputs, LOCAL_PREFIX["phase_a"])
    return ContributorSystem(low, params, owned, coupling, Code(), clamp, [], Code(), Code(), Code())
