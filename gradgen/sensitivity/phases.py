"""The per-step blocks of a contributor: phase A (BREAKPOINT) and phase B (advance_state).

Phase A, at V^n, completes σ^n = σpre + JV·u^n and adds the conductance g = ∂I/∂V and θ_k's
source term B_k = ∂I/∂s·σ_k + ∂I/∂p·w_k; phase B, at V^{n+1}, applies the state update Φ and
keeps σpre = ∂Φ/∂s·σ + ∂Φ/∂p·w and JV = ∂Φ/∂V (see :mod:`gradgen.sensitivity.derive`, which
puts them together with INITIAL and the events).
"""
from __future__ import annotations

from typing import Callable, Mapping

import sympy

from gradgen.errors import GradgenError
from gradgen.nmodl.lowered import V_PEER, V
from gradgen.protocol import (
    CONDUCTANCE_ION,
    LOCAL_PREFIX,
    VPREV,
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
)
from gradgen.sensitivity.chain_rule import ChainRule
from gradgen.sensitivity.discretize import LinearStep, state_update
from gradgen.sensitivity.linear_solve import solved_step
from gradgen.sensitivity.straight_line import Assignment, Code, cse, prepend, stage_states, xd


def derive_phase_a(chain: ChainRule, slope_step: float | None, *, direct: bool, pool_first: bool) -> Code:
    """Phase A at (V^n, s^n): σ completed with u^n, the conductance, θ_k's source terms and dG_k
    (``slope_step``, ``direct``, ``pool_first``: see :func:`gradgen.sensitivity.derive.derive_contributor`)."""
    low, coupling, K, u = chain.low, chain.coupling, chain.K, chain.u
    conc_read, dtheta = chain.conc_read, chain.dtheta
    # complete σ with the u the state updates saw (the solved one where a voltage
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
    return phase_a


def derive_phase_b(chain: ChainRule, methods: Mapping[str, str], published: list[str], *, direct: bool,
                   pool_first: bool) -> Code:
    """Phase B at V^{n+1}: the state update Φ, σpre and JV (with ``direct``: σ⁺ itself), the
    stores of the coupled concentrations ``published`` and the conductance-change source."""
    low, coupling, K, u = chain.low, chain.coupling, chain.K, chain.u
    conc_read, current_read, carried = chain.conc_read, chain.current_read, chain.carried
    dtheta, partial = chain.dtheta, chain.partial
    update = state_update(low, methods)
    if not isinstance(update, LinearStep):
        # a state changed only by events keeps its value over a step: σpre = σ, JV = 0
        update.update({s: sympy.Symbol(s) for s in low.states
                       if s not in update and (s in low.events or s in low.post_events)})
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
            solve_code, update, outputs = solved_step(update, K, dtheta_pre, LOCAL_PREFIX["phase_b"],
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
            publish = pool_first_publish(chain)
            phase_b.statements += publish.statements
            phase_b.locals += publish.locals
    return phase_b


def pool_first_publish(chain: ChainRule) -> Code:
    """The hand-over after a state update (and INITIAL) where the pool runs first.

    A writer of a coupled current adds d i^{n+1}/dθ_k = ∂i/∂s·σpre + ∂i/∂θ_k·w_k (the u-free
    part, to the current store) and ∂i/∂s·JV + ∂i/∂V (the coefficient of u_k^{n+1}, to the
    dv store): the pool reads them in the next step's state update, which runs first, with
    u^{n+1} then known, and empties them. A reader of a coupled concentration keeps the value
    and the stores it used, for its next phase A (the pool will have moved on by then).
    """
    low, coupling, K, owned, w = chain.low, chain.coupling, chain.K, chain.owned, chain.w
    conc_read, current_read = chain.conc_read, chain.current_read
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

