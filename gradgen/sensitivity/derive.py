"""Derive a mechanism's part of the model's gradient system (the *contributor*).

Every mechanism on a CV carries σ_{s,k} = ds/dθ_k for every model parameter θ_k (its
states depend on V, and V on every θ). Per simulation step the contributor

- phase A (BREAKPOINT, at V^n): completes σ^n = σpre + JV·u^n with u^n read from the carrier
  ion; adds its conductance g = ∂I/∂V to the per-CV conductance accumulator and its source
  term B_k = ∂I/∂s·σ_k + ∂I/∂p·w_k to θ_k's scratch ion; keeps dG_k = dg/dθ_k for phase B;
- phase B (advance_state, at V^{n+1}): applies the state update Φ (modcc's cnexp map),
  keeps σpre = ∂Φ/∂s·σ + ∂Φ/∂p·w and JV = ∂Φ/∂V, and adds the conductance-change source
  dG_k·(V^{n+1} − V^n) to θ_k's scratch ion.

Every generated name comes from :mod:`gradgen.protocol`.

The hub mechanism (see :mod:`gradgen.targets.arbor.emit`) turns these per-CV sums into u^{n+1}.
w_k is the fraction of θ_k that binds to this mechanism's parameter on this CV (a RANGE
parameter painted 1 on θ_k's region).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Collection, Mapping

import sympy

from gradgen.errors import GradgenError, SourcePos
from gradgen.nmodl.clock import CLOCK, DT
from gradgen.nmodl.initial_solve import InitialSolveSource, initial_solve_source
from gradgen.nmodl.lower import V_PEER, LoweredMechanism, V
from gradgen.params import ParamRef
from gradgen.protocol import (
    CONDUCTANCE_ION,
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
    scratch_ion,
    sens,
    sens_dv,
    sens_pre,
    seen,
    weight,
)
from gradgen.sensitivity.coupling import Coupling, concentrations_read
from gradgen.sensitivity.dag_diff import Differentiator
from gradgen.sensitivity.discretize import MODCC_METHODS, LinearStep, linear_system, state_update
from gradgen.sensitivity.linear_solve import eliminate
from gradgen.sensitivity.modcc_currents import modcc_currents
from gradgen.sensitivity.nernst import reversal_slope
from gradgen.sensitivity.straight_line import Assignment, Code, cse, prepend, simultaneous, stage_states, xd


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
    JV) and keep what they saw for their next phase A (:func:`_pool_first_publish`).
    ``simulator_solves_initial``: the kinds of initial solves ("kinetic", "linear") whose states
    are left to the simulator, with the original's own SOLVE and blocks
    (:mod:`gradgen.nmodl.initial_solve`; the target pastes ``initial_solve``), σ(0) computed
    from the states it found; other solves, and where pasting is not possible, are solved by
    elimination in the generated code.
    """
    owned: dict[int, str] = {}
    for k, ref in enumerate(params):
        if ref.mechanism == low.name:
            if ref.parameter not in low.parameter_names() + low.event_args:
                raise GradgenError(
                    f"mechanism '{low.name}' has no parameter '{ref.parameter}'", low.mechanism.pos,
                    hint="parameters: " + ", ".join(low.parameter_names() + low.event_args))
            owned[k] = ref.parameter
    K = len(params)
    states = [sympy.Symbol(s) for s in low.states]
    u = [xd(carrier_ion(k)) for k in range(K)]
    w = [sympy.Symbol(weight(k)) for k in range(K)]
    if low.voltage is not None:
        return _voltage_process(low, params, owned, coupling, u, w)
    conc_read = concentrations_read(low, coupling)
    current_read = [c for c in coupling.currents if c in low.ion_reads]
    # inputs whose dθ_k is a symbol: own states, read concentrations, read currents, and
    # reversal potentials that follow a concentration (0 unless the nernst flag is painted)
    carried = {sympy.Symbol(s): (lambda k, s=s: sympy.Symbol(sens(s, k))) for s in low.states + conc_read}
    for reversal, conc in coupling.followed(low).items():
        slope = reversal_slope(low, reversal)
        carried[sympy.Symbol(reversal)] = lambda k, slope=slope, conc=conc: slope * sympy.Symbol(sens(conc, k))
    carried.update({sympy.Symbol(c): (lambda k, c=c: xd(current_store(c, k))) for c in current_read})

    differentiators: dict[sympy.Symbol, Differentiator] = {}

    def partial(expr: sympy.Expr, x: sympy.Symbol) -> sympy.Expr:
        """∂expr/∂x, each subexpression's taken once (:mod:`gradgen.sensitivity.dag_diff`):
        dtheta asks for the same ones for every θ_k."""
        if x not in differentiators:
            differentiators[x] = Differentiator(x)
        return differentiators[x](expr)

    def dtheta(expr: sympy.Expr, k: int, with_u: bool) -> sympy.Expr:
        """d expr/dθ_k through states, coupled ion inputs, the owned parameter and (optionally) V."""
        total = sympy.Add(*[partial(expr, s) * d(k) for s, d in carried.items() if partial(expr, s) != 0])
        if k in owned:
            total += partial(expr, sympy.Symbol(owned[k])) * w[k]
        if with_u:
            total += partial(expr, V) * u[k]
        return total

    # Phase A: complete σ with the u the state updates saw (the solved one where a voltage
    # process has set V since), then the source terms at (V^n, s^n).
    solved = [u[k] + xd(clamp_store(k)) if coupling.clamped else u[k] for k in range(K)]
    completion = [] if direct else [
        Assignment(sens(s, k), sympy.Symbol(sens_pre(s, k)) + sympy.Symbol(sens_dv(s)) * solved[k])
        for s in low.states for k in range(K)]
    if pool_first:  # what this mechanism's last state update saw (the pool has moved on)
        completion += [Assignment(sens(c, k), sympy.Symbol(seen(concentration_store(c, k)))
                                  + sympy.Symbol(seen(concentration_dv_store(c))) * solved[k])
                       for c in conc_read for k in range(K)]
    elif not direct:
        completion += [Assignment(sens(c, k), xd(concentration_store(c, k))
                                  + xd(concentration_dv_store(c)) * solved[k]) for c in conc_read for k in range(K)]
    # A point process's current is in nA on the CV's area (µm²); the hub sums mA/cm². A
    # junction's is in nA too, but Arbor weights its xd writes by gj-weight·1000/area already.
    scale = {"point": 100 / sympy.Symbol("area"), "junction": sympy.Rational(1, 10)}.get(low.mechanism.kind, 1)
    current = low.total_current() * scale
    # Arbor's implicit step uses modcc's conductance g; where it is not ∂I/∂V, the rest of
    # ∂I/∂V·u enters the source explicitly, as in Arbor's own step.
    def slope(c) -> sympy.Expr:
        if slope_step is not None:  # the simulator's own difference quotient, states fixed
            return (c.expr.xreplace({V: V + slope_step}) - c.expr) / slope_step
        return sympy.diff(c.expr, V) if c.conductance is None else c.conductance

    g = sympy.Add(*[slope(c) for c in low.currents]) * scale
    g_rest = sympy.Add(*[sympy.diff(c.expr, V) - slope(c) for c in low.currents]) * scale
    outputs = [Assignment(f"{CONDUCTANCE_ION}d", xd(CONDUCTANCE_ION) + g)]
    # A junction's current also reads the peer's V^n, explicitly: its sensitivity u_peer is a source.
    peer_term = sympy.diff(current, V_PEER)
    if peer_term != 0 and low.mechanism.kind != "junction":
        raise GradgenError("only a JUNCTION_PROCESS can read v_peer", low.mechanism.pos)
    for k in range(K):
        b_k = dtheta(current, k, with_u=False) + g_rest * u[k] + peer_term * sympy.Symbol(peer_carrier(k))
        outputs.append(Assignment(f"{scratch_ion(k)}d", xd(scratch_ion(k)) + b_k))
        outputs.append(Assignment(dcond(k), dtheta(g, k, with_u=True)
                                  + sympy.diff(g, V_PEER) * sympy.Symbol(peer_carrier(k))))
    for cur in low.currents:
        if cur.name in coupling.currents and not pool_first:
            for k in range(K):
                store = f"{current_store(cur.name, k)}d"
                outputs.append(Assignment(store, sympy.Symbol(store) + dtheta(cur.expr, k, with_u=True)))
    outputs.append(Assignment(VPREV, V))
    if pool_first:  # phase A is at step n: the concentrations this mechanism saw then
        outputs = [Assignment(a.target, a.expr.xreplace({sympy.Symbol(c): sympy.Symbol(seen(c)) for c in conc_read}))
                   for a in outputs]
    phase_a = cse(outputs, LOCAL_PREFIX["phase_a"])
    phase_a.statements = completion + phase_a.statements
    currents, current_locals = modcc_currents(low)

    # Phase B: state update Φ at V^{n+1}, its sensitivities, conductance-change source.
    update = state_update(low, methods)
    if not isinstance(update, LinearStep):
        # a state changed only by events keeps its value over a step: σpre = σ, JV = 0
        update.update({s: sympy.Symbol(s) for s in low.states
                       if s not in update and (s in low.events or s in low.post_events)})
    published = [c for c in low.concentration_writes if c in coupling.concentrations]
    if direct and (coupling.clamped or pool_first):
        # the message completes "the exact carrier does not cover ..." (its fallback warning)
        raise GradgenError(f"the voltage process coupled to '{low.name}'")
    if direct and not isinstance(update, LinearStep):
        phase_b = _direct_phase_b(update, K, dtheta, u)
    else:  # a linear solve with ``direct``: σ⁺ = σpre + JV·u⁺ once σpre and JV are known
        outputs = []
        ahead = {}  # pool_first: a coupled input's dθ_k as the pool publishes it at this point
        if pool_first:
            ahead = {sympy.Symbol(c): (lambda k, c=c: xd(concentration_store(c, k))) for c in conc_read}
            ahead.update({sympy.Symbol(c): (lambda k, c=c: xd(current_store(c, k)) + xd(current_dv_store(c)) * u[k])
                          for c in current_read})

        def dtheta_pre(expr: sympy.Expr, k: int) -> sympy.Expr:
            d = dtheta(expr, k, with_u=False)
            return d.xreplace({carried[x](k): ahead[x](k) for x in ahead}) if ahead else d

        solve_code: list[Assignment] = []
        if isinstance(update, LinearStep):  # σpre and JV come with the solve
            if pool_first and conc_read:
                raise GradgenError(f"'{low.name}': a KINETIC or LINEAR scheme that reads a coupled concentration "
                                   "is not supported for the NEURON target", low.mechanism.pos)
            solve_code, update, outputs = _solved_step(update, K, dtheta_pre, LOCAL_PREFIX["phase_b"],
                                                       low.mechanism.pos)
        else:
            for name, phi in update.items():
                for k in range(K):
                    outputs.append(Assignment(sens_pre(name, k), dtheta_pre(phi, k)))
                coupled_dv = [partial(phi, sympy.Symbol(c)) * xd(concentration_dv_store(c))
                              for c in conc_read if pool_first]
                outputs.append(Assignment(sens_dv(name), partial(phi, V) + sympy.Add(*coupled_dv)))
        outputs += [Assignment(name, phi) for name, phi in update.items() if phi != sympy.Symbol(name)]
        for c in published if not direct else ():
            outputs += [Assignment(f"{concentration_store(c, k)}d", sympy.Symbol(sens_pre(c, k))) for k in range(K)]
            outputs.append(Assignment(f"{concentration_dv_store(c)}d", sympy.Symbol(sens_dv(c))))
        for k in range(K) if not direct else ():  # ``direct``: the carrier adds dG_k·ΔV itself
            outputs.append(Assignment(f"{scratch_ion(k)}d",
                                      xd(scratch_ion(k)) + sympy.Symbol(dcond(k)) * (V - sympy.Symbol(VPREV))))
        phase_b = cse(outputs, LOCAL_PREFIX["phase_b"])
        stage_states(phase_b, low.states, LOCAL_PREFIX["phase_b"])
        prepend(phase_b, solve_code)
        if direct:
            phase_b.statements += [Assignment(sens(name, k), sympy.Symbol(sens_pre(name, k))
                                              + sympy.Symbol(sens_dv(name)) * u[k])
                                   for name in update for k in range(K)]
        if pool_first:
            publish = _pool_first_publish(low, K, coupling, owned, w, conc_read, current_read)
            phase_b.statements += publish.statements
            phase_b.locals += publish.locals

    # NET_RECEIVE and POST_EVENT: s⁺ = f(s, weight), so σ⁺ = ∂f/∂s·σ + ∂f/∂θ with σ = σpre + JV·u
    # split alike (both are applied between one step's state update and the next step's currents);
    # with ``direct`` σ is whole there (phase B completed it with u^{n+1}).
    held = sens if direct else sens_pre

    def jump_code(jumps: dict[str, sympy.Expr]) -> Code:
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

    events = jump_code(low.events)
    post_events = jump_code(low.post_events)

    # INITIAL: states, and σ0 = ∂s0/∂θ (u^0 = 0: the initial voltage does not depend on θ).
    def dtheta0(expr: sympy.Expr, k: int) -> sympy.Expr:
        d = sympy.diff(expr, sympy.Symbol(owned[k])) * w[k] if k in owned else sympy.Integer(0)
        return d + sympy.Add(*[sympy.diff(expr, sympy.Symbol(c)) * (sympy.Symbol(sens(c, k)) if direct
                                                                    else xd(concentration_store(c, k)))
                               for c in conc_read])

    solved, outputs = [], []
    pasted = initial_solve_source(low, simulator_solves_initial) if simulator_solves_initial else None
    if low.initial_equations:  # states set by a linear solve: by the simulator or in the generated code
        step = linear_system(low.initial_equations, low)
        solved, values, outputs = _solved_step(step, K, dtheta0, LOCAL_PREFIX["initial"],
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
        publish = _pool_first_publish(low, K, coupling, owned, w, conc_read, current_read)
        initial.statements += publish.statements
        initial.locals += publish.locals
    if low.keeps_clock():  # the time t_n: 0 at INITIAL, advanced after every read of the step
        initial.statements.append(Assignment(CLOCK.name, sympy.Integer(0)))
        phase_b.statements.append(Assignment(CLOCK.name, CLOCK + DT))
    return ContributorSystem(low, params, owned, coupling, initial, phase_a, currents, phase_b, events,
                             post_events, current_locals, pool_first, pasted)


def _pool_first_publish(low: LoweredMechanism, K: int, coupling: Coupling, owned: dict[int, str],
                        w: list[sympy.Symbol], conc_read: list[str], current_read: list[str]) -> Code:
    """The hand-over after a state update (and INITIAL) where the pool runs first.

    A writer of a coupled current adds d i^{n+1}/dθ_k = ∂i/∂s·σpre + ∂i/∂θ_k·w_k (the u-free
    part, to the current store) and ∂i/∂s·JV + ∂i/∂V (the coefficient of u_k^{n+1}, to the
    dv store): the pool reads them in the next step's state update, which runs first, with
    u^{n+1} then known, and empties them. A reader of a coupled concentration keeps the value
    and the stores it used, for its next phase A (the pool will have moved on by then).
    """
    outputs = []
    for cur in low.currents:
        if cur.name not in coupling.currents:
            continue
        if any(sympy.Symbol(c) in cur.expr.free_symbols for c in conc_read):
            raise GradgenError(f"'{low.name}': a coupled current that reads a coupled concentration is not "
                               "supported by the NEURON target", low.mechanism.pos,
                               hint="the Arbor target carries it")
        for k in range(K):
            d = sympy.Add(*[sympy.diff(cur.expr, sympy.Symbol(s)) * sympy.Symbol(sens_pre(s, k)) for s in low.states])
            if k in owned:
                d += sympy.diff(cur.expr, sympy.Symbol(owned[k])) * w[k]
            outputs.append(Assignment(f"{current_store(cur.name, k)}d", xd(current_store(cur.name, k)) + d))
        dv = sympy.diff(cur.expr, V) + sympy.Add(*[sympy.diff(cur.expr, sympy.Symbol(s)) * sympy.Symbol(sens_dv(s))
                                                  for s in low.states])
        outputs.append(Assignment(f"{current_dv_store(cur.name)}d", xd(current_dv_store(cur.name)) + dv))
    for c in current_read:  # used: the writers refill them after this
        outputs += [Assignment(f"{current_store(c, k)}d", sympy.Integer(0)) for k in range(K)]
        outputs.append(Assignment(f"{current_dv_store(c)}d", sympy.Integer(0)))
    for c in conc_read:
        outputs.append(Assignment(seen(c), sympy.Symbol(c)))
        outputs.append(Assignment(seen(concentration_dv_store(c)), xd(concentration_dv_store(c))))
        outputs += [Assignment(seen(concentration_store(c, k)), xd(concentration_store(c, k))) for k in range(K)]
    return cse(outputs, LOCAL_PREFIX["publish"])


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


def _direct_phase_b(update: dict[str, sympy.Expr], K: int, dtheta: Callable[..., sympy.Expr],
                    u: list[sympy.Symbol]) -> Code:
    """Phase B with ``direct``: σ⁺ = ∂Φ/∂s·σ + ∂Φ/∂θ·w + ∂Φ/∂V·u⁺, one parameter at a time
    (θ_k's σ⁺ read only θ_k's σ from before the block: each into a LOCAL, stored once all of
    θ_k's are computed, so that a few values are live instead of all K·states), then the
    states."""
    prefix = LOCAL_PREFIX["phase_b"]
    names = list(update)
    temps = {(name, k): f"{prefix}s{i}" for i, (name, k) in enumerate((n, k) for k in range(K) for n in names)}
    outputs = [Assignment(temps[name, k], dtheta(update[name], k, with_u=True)) for k in range(K) for name in names]
    outputs += [Assignment(name, phi) for name, phi in update.items()]
    phase_b = cse(outputs, prefix)
    common = len(phase_b.statements) - len(outputs)
    sigmas, states = phase_b.statements[common:common + len(temps)], phase_b.statements[common + len(temps):]
    phase_b.statements = phase_b.statements[:common]
    for k in range(K):
        phase_b.statements += sigmas[k * len(names):(k + 1) * len(names)]
        phase_b.statements += [Assignment(sens(name, k), sympy.Symbol(temps[name, k])) for name in names]
    phase_b.statements += states
    phase_b.locals += list(temps.values())
    stage_states(phase_b, names, prefix)  # s0 = 1 - s1 - s2 reads the old s1, s2
    return phase_b


def _solved_step(step: LinearStep, K: int, dtheta: Callable[[sympy.Expr, int], sympy.Expr], prefix: str,
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
