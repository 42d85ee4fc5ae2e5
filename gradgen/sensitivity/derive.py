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
from typing import Mapping

import sympy

from gradgen.errors import GradgenError
from gradgen.nmodl.lower import LoweredMechanism, V
from gradgen.params import ParamRef
from gradgen.protocol import (
    CONDUCTANCE_ION,
    LOCAL_PREFIX,
    VPREV,
    carrier_ion,
    concentration_dv_store,
    concentration_store,
    current_store,
    dcond,
    diffusive,
    scratch_ion,
    sens,
    sens_dv,
    sens_pre,
    weight,
)
from gradgen.sensitivity.coupling import Coupling
from gradgen.sensitivity.discretize import MODCC_METHODS, state_update


@dataclass
class Assignment:
    target: str
    expr: sympy.Expr


@dataclass
class Code:
    """Straight-line code: CSE temporaries (LOCALs) then assignments, in order."""

    statements: list[Assignment] = field(default_factory=list)
    locals: list[str] = field(default_factory=list)


def xd(ion: str) -> sympy.Symbol:
    return sympy.Symbol(diffusive(ion))


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
    current_locals: list[str] = field(default_factory=list)  # LOCALs the currents use

    @property
    def name(self) -> str:
        return self.lowered.name

    def assigned_names(self) -> list[str]:
        names = [sens(s, k) for s in self.lowered.states for k in range(len(self.params))]
        names += [sens_pre(s, k) for s in self.lowered.states for k in range(len(self.params))]
        names += [sens_dv(s) for s in self.lowered.states]
        names += [sens(c, k) for c in self.concentrations_read() for k in range(len(self.params))]
        names += [dcond(k) for k in range(len(self.params))] + [VPREV]
        return names

    def concentrations_read(self) -> list[str]:
        """Coupled concentrations this mechanism reads (their dc/dθ is kept per phase A)."""
        return [c for c in self.coupling.concentrations if c in self.lowered.ion_reads]

    def store_ions(self) -> dict[str, bool]:
        """Coupling store ions this mechanism uses -> whether it writes them."""
        low, K = self.lowered, len(self.params)
        stores: dict[str, bool] = {}
        for c in self.coupling.currents:
            if c in low.ion_reads or any(cur.name == c for cur in low.currents):
                for k in range(K):
                    stores[current_store(c, k)] = any(cur.name == c for cur in low.currents)
        for c in self.coupling.concentrations:
            if c in low.ion_reads or c in low.concentration_writes:
                writes = c in low.concentration_writes
                for k in range(K):
                    stores[concentration_store(c, k)] = writes
                stores[concentration_dv_store(c)] = writes
        return stores


def _whole_powers(expr: sympy.Expr) -> sympy.Expr:
    """``o^st·st/o`` (SymPy's ∂(o^st)/∂o) as ``st·o^(st−1)``, finite at o = 0.

    Only products in which a power with a symbolic exponent (a parameter) stands beside the
    reciprocal of its base are rewritten, so other expressions pay nothing (SymPy's powsimp
    over whole expressions made one ModelDB channel with a q10 factor take minutes).
    """
    def mergeable(term: sympy.Basic) -> sympy.Pow | None:
        if not term.is_Mul:
            return None
        return next((a for a in term.args if a.is_Pow and a.exp.free_symbols
                     and sympy.Pow(a.base, -1) in term.args), None)

    def merge(term: sympy.Mul) -> sympy.Expr:
        power = mergeable(term)
        rest = list(term.args)
        rest.remove(power)
        rest.remove(sympy.Pow(power.base, -1))
        return _whole_powers(sympy.Mul(*rest) * sympy.Pow(power.base, power.exp - 1, evaluate=False))

    powers = expr.atoms(sympy.Pow)
    if not any(p.exp.free_symbols and sympy.Pow(p.base, -1) in powers for p in powers):
        return expr
    return expr.replace(lambda e: mergeable(e) is not None, merge)


def _cse(outputs: list[Assignment], prefix: str) -> Code:
    """Common-subexpression elimination over a block's outputs."""
    symbols = sympy.numbered_symbols(prefix)
    replacements, reduced = sympy.cse([_whole_powers(a.expr) for a in outputs], symbols=symbols,
                                      order="none")
    code = Code()
    for sym, expr in replacements:
        code.locals.append(sym.name)
        code.statements.append(Assignment(sym.name, expr))
    code.statements += [Assignment(a.target, e) for a, e in zip(outputs, reduced)]
    return code


def _simultaneous(outputs: list[Assignment], prefix: str) -> Code:
    """Like :func:`_cse`, but every right-hand side sees the values from before the block."""
    code = _cse([Assignment(f"{prefix}n{i}", a.expr) for i, a in enumerate(outputs)], prefix)
    code.locals += [f"{prefix}n{i}" for i in range(len(outputs))]
    code.statements += [Assignment(a.target, sympy.Symbol(f"{prefix}n{i}")) for i, a in enumerate(outputs)]
    return code


def _stage_states(code: Code, states: list[str], prefix: str) -> None:
    """Each new state value reads the states from before the step. Where a state assignment
    (after CSE) reads a state assigned before it, all of them go through staging LOCALs
    first, assigned after the last one (nothing after the updates reads a state)."""
    at = [i for i, a in enumerate(code.statements) if a.target in states]
    assigned: set[sympy.Symbol] = set()
    overlaps = False
    for i in at:
        overlaps |= bool(code.statements[i].expr.free_symbols & assigned)
        assigned.add(sympy.Symbol(code.statements[i].target))
    if not overlaps:
        return
    finals = []
    for j, i in enumerate(at):
        name, target = f"{prefix}n{j}", code.statements[i].target
        code.statements[i] = Assignment(name, code.statements[i].expr)
        code.locals.append(name)
        finals.append(Assignment(target, sympy.Symbol(name)))
    code.statements[at[-1] + 1:at[-1] + 1] = finals


def derive_contributor(low: LoweredMechanism, params: list[ParamRef],
                       coupling: Coupling = Coupling(),
                       methods: Mapping[str, str] = MODCC_METHODS) -> ContributorSystem:
    """Build the gradient system of ``low`` for the model's parameters ``params``.

    ``coupling`` names the ion quantities shared with the model's other mechanisms (see
    :mod:`gradgen.sensitivity.coupling`); their sensitivities enter like those of states.
    ``methods`` maps SOLVE methods to the discrete updates the target applies
    (:mod:`gradgen.sensitivity.discretize`).
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
    conc_read = [c for c in coupling.concentrations if c in low.ion_reads]
    current_read = [c for c in coupling.currents if c in low.ion_reads]
    # inputs whose dθ_k is a symbol: own states, read concentrations, read currents
    carried = {sympy.Symbol(s): (lambda k, s=s: sympy.Symbol(sens(s, k))) for s in low.states + conc_read}
    carried.update({sympy.Symbol(c): (lambda k, c=c: xd(current_store(c, k))) for c in current_read})

    def dtheta(expr: sympy.Expr, k: int, with_u: bool) -> sympy.Expr:
        """d expr/dθ_k through states, coupled ion inputs, the owned parameter and (optionally) V."""
        total = sympy.Add(*[sympy.diff(expr, s) * d(k) for s, d in carried.items()])
        if k in owned:
            total += sympy.diff(expr, sympy.Symbol(owned[k])) * w[k]
        if with_u:
            total += sympy.diff(expr, V) * u[k]
        return total

    # Phase A: complete σ, then the source terms at (V^n, s^n).
    completion = [Assignment(sens(s, k), sympy.Symbol(sens_pre(s, k)) + sympy.Symbol(sens_dv(s)) * u[k])
                  for s in low.states for k in range(K)]
    completion += [Assignment(sens(c, k), xd(concentration_store(c, k)) + xd(concentration_dv_store(c)) * u[k])
                   for c in conc_read for k in range(K)]
    # A point process's current is in nA on the CV's area (µm²); the hub sums mA/cm².
    scale = 100 / sympy.Symbol("area") if low.mechanism.kind == "point" else 1
    current = low.total_current() * scale
    # Arbor's implicit step uses modcc's conductance g; where it is not ∂I/∂V, the rest of
    # ∂I/∂V·u enters the source explicitly, as in Arbor's own step.
    g = sympy.Add(*[c.conductance if c.conductance is not None else sympy.diff(c.expr, V)
                    for c in low.currents]) * scale
    g_rest = sympy.Add(*[sympy.diff(c.expr, V) - c.conductance for c in low.currents
                         if c.conductance is not None]) * scale
    outputs = [Assignment(f"{CONDUCTANCE_ION}d", xd(CONDUCTANCE_ION) + g)]
    for k in range(K):
        b_k = dtheta(current, k, with_u=False) + g_rest * u[k]
        outputs.append(Assignment(f"{scratch_ion(k)}d", xd(scratch_ion(k)) + b_k))
        outputs.append(Assignment(dcond(k), dtheta(g, k, with_u=True)))
    for cur in low.currents:
        if cur.name in coupling.currents:
            for k in range(K):
                store = f"{current_store(cur.name, k)}d"
                outputs.append(Assignment(store, sympy.Symbol(store) + dtheta(cur.expr, k, with_u=True)))
    outputs.append(Assignment(VPREV, V))
    phase_a = _cse(outputs, LOCAL_PREFIX["phase_a"])
    phase_a.statements = completion + phase_a.statements
    currents, current_locals = modcc_currents(low)

    # Phase B: state update Φ at V^{n+1}, its sensitivities, conductance-change source.
    update = state_update(low, methods)
    outputs = []
    for name, phi in update.items():
        for k in range(K):
            outputs.append(Assignment(sens_pre(name, k), dtheta(phi, k, with_u=False)))
        outputs.append(Assignment(sens_dv(name), sympy.diff(phi, V)))
    outputs += [Assignment(name, phi) for name, phi in update.items() if phi != sympy.Symbol(name)]
    published = [c for c in low.concentration_writes if c in coupling.concentrations]
    for c in published:
        outputs += [Assignment(f"{concentration_store(c, k)}d", sympy.Symbol(sens_pre(c, k))) for k in range(K)]
        outputs.append(Assignment(f"{concentration_dv_store(c)}d", sympy.Symbol(sens_dv(c))))
    for k in range(K):
        outputs.append(Assignment(f"{scratch_ion(k)}d",
                                  xd(scratch_ion(k)) + sympy.Symbol(dcond(k)) * (V - sympy.Symbol(VPREV))))
    phase_b = _cse(outputs, LOCAL_PREFIX["phase_b"])
    _stage_states(phase_b, low.states, LOCAL_PREFIX["phase_b"])

    # NET_RECEIVE: s⁺ = f(s, weight), so σ⁺ = ∂f/∂s·σ + ∂f/∂θ with σ = σpre + JV·u split alike.
    outputs = []
    for name, jump in low.events.items():
        for k in range(K):
            pre = sympy.Add(*[sympy.diff(jump, s) * sympy.Symbol(sens_pre(s.name, k)) for s in states])
            if k in owned:
                pre += sympy.diff(jump, sympy.Symbol(owned[k])) * w[k]
            outputs.append(Assignment(sens_pre(name, k), pre))
        outputs.append(Assignment(sens_dv(name), sympy.Add(*[sympy.diff(jump, s) * sympy.Symbol(sens_dv(s.name))
                                                            for s in states])))
    outputs += [Assignment(name, jump) for name, jump in low.events.items()]
    events = _simultaneous(outputs, LOCAL_PREFIX["events"])

    # INITIAL: states, and σ0 = ∂s0/∂θ (u^0 = 0: the initial voltage does not depend on θ).
    outputs = [Assignment(name, expr) for name, expr in low.initial.items()]
    for name, expr in low.initial.items():
        for k in range(K):
            d = sympy.diff(expr, sympy.Symbol(owned[k])) * w[k] if k in owned else sympy.Integer(0)
            d += sympy.Add(*[sympy.diff(expr, sympy.Symbol(c)) * xd(concentration_store(c, k))
                             for c in conc_read])
            outputs.append(Assignment(sens_pre(name, k), d))
    initial = _cse(outputs, LOCAL_PREFIX["initial"])
    for name in low.states:
        initial.statements.append(Assignment(sens_dv(name), sympy.Integer(0)))
        for k in range(K):
            initial.statements.append(Assignment(sens(name, k), sympy.Symbol(sens_pre(name, k))))
    for c in published:
        initial.statements += [Assignment(f"{concentration_store(c, k)}d", sympy.Symbol(sens_pre(c, k)))
                               for k in range(K)]
        initial.statements.append(Assignment(f"{concentration_dv_store(c)}d", sympy.Integer(0)))
    for k in range(K):
        initial.statements.append(Assignment(dcond(k), sympy.Integer(0)))
    initial.statements.append(Assignment(VPREV, V))
    return ContributorSystem(low, params, owned, coupling, initial, phase_a, currents, phase_b, events,
                             current_locals)


def modcc_currents(low: LoweredMechanism) -> tuple[list[Assignment], list[str]]:
    """The current assignments, written so that modcc derives the original's conductance.

    Where modcc's conductance g is not ∂i/∂v (v inside a LOCAL or a call of the original),
    ``i = I + g·(v − v₀)`` with I, g and v₀ = v in LOCALs: the value is I, and modcc, taking
    LOCALs as independent of v, derives g.
    """
    prefix = LOCAL_PREFIX["current_conductance"]
    out: list[Assignment] = []
    names: list[str] = []
    for n, c in enumerate(low.currents):
        if c.conductance is None:
            out.append(Assignment(c.name, c.expr))
            continue
        value, slope, v0 = (sympy.Symbol(f"{prefix}{part}{n}") for part in ("i", "g", "v"))
        out += [Assignment(value.name, c.expr), Assignment(slope.name, c.conductance),
                Assignment(v0.name, V), Assignment(c.name, value + slope * (V - v0))]
        names += [value.name, slope.name, v0.name]
    return out, names
