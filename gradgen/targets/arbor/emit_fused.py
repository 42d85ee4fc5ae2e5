"""Fused gradient mechanisms: the contributors of one painted set and the hub's work in one.

In the hub design every mechanism on a CV sums its conductance and source terms into per-CV
scratch ions (the conductance accumulator and θ_k's scratch ion) that the hub turns into the carriers' update; each scratch
ion costs Arbor one diffusion solve per step although it never diffuses (measured ≈ 0.5 of a
plain HH run each). Where every CV is covered by exactly one set of mechanisms, one mechanism
can do all of it: each member's phase A/B code, with the scratch sums as LOCALs, then the hub
update of that CV. Only the K carrier ions remain. The arithmetic is the hub
design's, member by member in the hub design's (alphabetical) order.

Members' names (states, parameters, sensitivities, CSE temporaries) get the prefix
:func:`gradgen.protocol.member_prefix`; their currents are summed per ion, the nonspecific
ones into one, each member's currents and sums scaled by its covered fraction
(:func:`gradgen.protocol.coverage`) of the CV (1
unless a region border lies inside the CV), as Arbor scales a partly painted mechanism.
Only plain density channels fuse (:func:`fusable`); the runtime falls back to the hub design
for the rest.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable

import sympy

from gradgen.errors import GradgenError
from gradgen.manifest import arbor_globals
from gradgen.nmodl.lowered import FREE_BUILTINS
from gradgen.nmodl.printer import Line, lower_piecewise, nmodl, uses_dexprelr
from gradgen.params import ParamRef
from gradgen.protocol import (
    CONDUCTANCE_ION,
    FUSED_NONSPECIFIC,
    LOCAL_PREFIX,
    VPREV,
    carrier_ion,
    coverage,
    current_store,
    dcond,
    diffusive,
    exact_current,
    exact_name,
    fused_name,
    gradient_name,
    hub_state,
    member_prefix,
    nernst_flag,
    scratch_ion,
    sens,
    weight,
)
from gradgen.sensitivity.derive import ContributorSystem
from gradgen.sensitivity.schedule import sink_temporaries
from gradgen.sensitivity.straight_line import Code
from gradgen.targets.arbor.emit import template
from gradgen.version import __version__


def fusable(system: ContributorSystem, exact: bool = False) -> str | None:
    """Why this mechanism cannot be fused (None if it can); ``exact``: as a member of an exact
    mechanism, which carries ion coupling among its members (``system`` derived with it)."""
    low = system.lowered
    coupled = set(system.coupling.currents) | set(system.coupling.concentrations) if exact else set()
    if low.mechanism.kind != "density":
        return f"'{low.name}' is a {low.mechanism.kind} process"
    if set(low.concentration_writes) - coupled or low.events:
        return f"'{low.name}' writes ion concentrations or receives events"
    if (system.coupling.currents or system.coupling.concentrations) and not exact:
        return "the mechanisms are coupled through ions"
    if any(var == f"i{ion}" and var not in coupled for var, ion in low.ion_reads.items()):
        return f"'{low.name}' reads an ion current"
    if any(c.conductance is not None for c in low.currents) and not exact:
        # the fused current is one summed statement: modcc would derive another conductance
        # (an exact member writes it as I + g·(v − v₀) from LOCALs: :func:`_conductance_lines`)
        return f"'{low.name}' has a current whose modcc conductance is not its ∂I/∂V"
    if any(c.expr.has(sympy.Piecewise) and (c.conductance is None or not exact) for c in low.currents):
        # the fused current is printed as one expression, with no if/else hoisted out of it
        return f"'{low.name}' has a current with an if/else (a switch in time, a saturation)"
    return None


@dataclass
class _Member:
    """One member's code with its names prefixed, ready for the template."""

    name: str
    parameters: list[dict]
    states: list[str]
    assigned: list[str]
    initial: tuple[list[Line], list[str]]
    phase_a: tuple[list[Line], list[str]]
    phase_b: tuple[list[Line], list[str]]
    currents: list[tuple[str | None, str, sympy.Expr]]  # (ion, current name, renamed expr)
    #: LOCALs I, g, v₀ of the currents whose modcc conductance is not ∂I/∂V (exact members)
    conductance_lines: tuple[list[Line], list[str]] = ([], [])


def _shared_names(system: ContributorSystem) -> set[str]:
    """Names a member shares with the fused mechanism: builtins, ion variables, carriers, scratch,
    and the coupling's names (a coupled concentration, its σ and a coupled current's sums)."""
    K = len(system.params)
    shared = set(FREE_BUILTINS) | {"dt"} | set(system.lowered.ion_reads)
    shared |= {diffusive(carrier_ion(k)) for k in range(K)} | {diffusive(scratch_ion(k)) for k in range(K)}
    shared.add(diffusive(CONDUCTANCE_ION))
    for ion in system.lowered.mechanism.ions:
        shared |= set(ion.read) | set(ion.write)
    return shared | _coupled_names(system)


def _coupled_names(system: ContributorSystem) -> set[str]:
    """The coupling's names, one per mechanism whatever member uses them."""
    K = len(system.params)
    names = {n for c in system.coupling.concentrations for n in [c] + [sens(c, k) for k in range(K)]}
    names |= {diffusive(current_store(c, k)) for c in system.coupling.currents for k in range(K)}
    return names | {exact_current(c) for c in system.coupling.currents}


def _reuse_reciprocals(target: str, expr: sympy.Expr, reciprocals: dict[sympy.Symbol, sympy.Symbol]) -> sympy.Expr:
    """``expr`` with each B⁻ⁿ written with an earlier temporary T = 1/B (the σ updates
    divide by the square of a rate's denominator whose reciprocal is already at hand; the
    SIMD divider was a bottleneck of the exact mechanism), and T recorded if this is one."""
    if reciprocals:
        expr = expr.replace(lambda e: e.is_Pow and e.base in reciprocals and e.exp.is_Integer and e.exp < 0,
                            lambda e: reciprocals[e.base] ** (-e.exp))
    if expr.is_Pow and expr.exp == -1 and expr.base.is_Symbol:
        reciprocals[expr.base] = sympy.Symbol(target)
    return expr


def _member(system: ContributorSystem, exact: bool = False) -> _Member:
    """``exact``: as a member of the exact mechanism, whose code is made cheaper in three
    ways that keep its values: reciprocals reused (:func:`_reuse_reciprocals`), temporaries
    computed where first read (:func:`gradgen.sensitivity.schedule.sink_temporaries`), and u_k
    read from the STATE it is instead of a LOCAL copy held across the block."""
    low = system.lowered
    prefix = member_prefix(low.name)
    covered = sympy.Symbol(coverage(low.name))
    K = len(system.params)
    sums = {diffusive(CONDUCTANCE_ION)} | {diffusive(scratch_ion(k)) for k in range(K)}
    sums |= {diffusive(current_store(c, k)) for c in system.coupling.currents for k in range(K)}
    own = set(low.states) | set(low.parameter_names()) | set(system.assigned_names())
    own |= {weight(k) for k in system.owned}
    flags = [nernst_flag(low.ion_reads[var]) for var in system.nernst_reversals()]  # painted 1 where nernst
    own |= set(flags)
    for code in (system.initial, system.phase_a, system.phase_b):
        own |= set(code.locals)
    own |= set(system.current_locals)
    shared = _shared_names(system)
    own -= shared
    # a state update reads a coupled current as the members wrote it in phase A
    read_back = {sympy.Symbol(c): sympy.Symbol(exact_current(c)) for c in system.coupling.currents}
    states_of_u = {sympy.Symbol(diffusive(carrier_ion(k))): sympy.Symbol(hub_state(k)) for k in range(K)} if exact else {}

    def rename(expr: sympy.Expr) -> sympy.Expr:
        unknown = {s.name for s in expr.free_symbols} - own - shared
        if unknown:
            raise GradgenError(f"cannot fuse '{low.name}': it uses {', '.join(sorted(unknown))}")
        return expr.xreplace({s: sympy.Symbol(prefix + s.name) for s in expr.free_symbols if s.name in own})

    def render(code: Code, tag: str) -> tuple[list[Line], list[str]]:
        counter = itertools.count()
        lines: list[Line] = []
        locals_ = [prefix + n for n in code.locals]
        reciprocals: dict[sympy.Symbol, sympy.Symbol] = {}
        phase_b = code is system.phase_b
        if exact and code is not system.initial:
            code = sink_temporaries(code)
        for stmt in code.statements:
            target = prefix + stmt.target if stmt.target in own else stmt.target
            expr = rename(stmt.expr).xreplace(read_back) if phase_b else rename(stmt.expr)
            expr = expr.xreplace(states_of_u)
            if exact:
                expr = _reuse_reciprocals(target, expr, reciprocals)
            if target in sums:  # sum + term: the term counts with the member's covered fraction
                expr = sympy.Symbol(target) + covered * (expr - sympy.Symbol(target))
            out, created = lower_piecewise(target, expr, lambda: f"{prefix}{tag}{next(counter)}")
            lines += out
            locals_ += created
        return lines, locals_

    # a GLOBAL stays GLOBAL (set through a derived name, targets/arbor/versions.py): Arbor
    # averages a painted RANGE value over the CV's area, which reads a painted 1.0 as 1 - 1.1e-16
    # on 17 of the check cable's 50 CVs and sends an `if (form == 1)` the other way
    globals_ = set(arbor_globals(low))
    parameters = [dict(name=prefix + p.name, value=repr(float(p.value or 0.0)), unit=p.unit,
                       range=p.name not in globals_) for p in low.parameters]
    parameters += [dict(name=prefix + weight(k), value="0", unit=None, range=True) for k in system.owned]
    parameters += [dict(name=prefix + flag, value="0", unit=None, range=True) for flag in flags]
    parameters.append(dict(name=coverage(low.name), value="1", unit=None, range=True))
    written = {a.target: a.expr for a in system.currents} if exact else {}
    currents = [(c.ion, c.name, covered * rename(written.get(c.name, c.expr))) for c in low.currents]
    return _Member(low.name, parameters, [prefix + s if s in own else s for s in low.states],
                   [prefix + a if a in own else a for a in system.assigned_names()],
                   render(system.initial, LOCAL_PREFIX["initial_lines"]),
                   render(system.phase_a, LOCAL_PREFIX["phase_a_lines"]),
                   render(system.phase_b, LOCAL_PREFIX["phase_b_lines"]),
                   currents, _conductance_lines(system, rename) if exact else ([], []))


def _conductance_lines(system: ContributorSystem, rename: Callable[[sympy.Expr], sympy.Expr]) -> tuple[list[Line], list[str]]:
    """The LOCALs I, g and v₀ of a member's currents whose modcc conductance is not ∂I/∂V
    (:func:`gradgen.sensitivity.modcc_currents.modcc_currents`): the summed current reads them as
    I + g·(v − v₀), so modcc derives each member's own conductance from the one statement
    (Arbor's step uses it; 185513 CaHVA's GHK current, 98017 hhPyr's minf set in its
    DERIVATIVE). Their if/else (a guarded vtrap) is hoisted here, out of the summed current."""
    prefix = member_prefix(system.name)
    counter = itertools.count()
    lines: list[Line] = []
    locals_ = [prefix + n for n in system.current_locals]
    for stmt in system.currents:
        if stmt.target in system.current_locals:
            out, created = lower_piecewise(prefix + stmt.target, rename(stmt.expr),
                                           lambda: f"{prefix}{LOCAL_PREFIX['current_conductance_lines']}{next(counter)}")
            lines += out
            locals_ += created
    return lines, locals_


def emit_fused(systems: list[ContributorSystem], params: list[ParamRef]) -> str:
    """NMODL text of the fused mechanism of ``systems`` (one painted set)."""
    return _render(systems, params, "fused.mod.j2", fused_name([s.name for s in systems]))


def emit_exact(systems: list[ContributorSystem], params: list[ParamRef], guarded: bool = False,
               name: str | None = None) -> str:
    """NMODL text of the exact-carrier mechanism of a cell's ``systems``: the members as in
    :func:`emit_fused`, the sources B_k and dG_k·ΔV kept per CV and u_k as STATEs, which the
    C++ of :mod:`gradgen.targets.arbor.exact_patch` solves on the CV tree. ``guarded``: each
    member's phases run only where it covers part of the CV (worth it in a scalar build
    where members are painted on different regions; SIMD would compute both branches).
    ``name``: the mechanism's name where the cell's point processes are part of it."""
    return _render(systems, params, "exact.mod.j2", name or exact_name([s.name for s in systems]), guarded=guarded,
                   exact=True, per_step=[dcond(k) for k in range(len(params))] + [VPREV])


def _per_step_locals(member: _Member, names: list[str]) -> list[str]:
    """``names`` of ``member`` (prefixed) dropped from its ASSIGNED and INITIAL: values only
    phase A uses within one step, which the exact mechanism keeps as BREAKPOINT LOCALs (no
    per-CV field stored and loaded every step; measured ~5 % of the IO cell's run on C4A)."""
    out = [member_prefix(member.name) + n for n in names]
    member.assigned = [a for a in member.assigned if a not in out]
    member.initial = ([line for line in member.initial[0] if line.target not in out], member.initial[1])
    return out


def _render(systems: list[ContributorSystem], params: list[ParamRef], template_name: str, mechanism: str,
            exact: bool = False, **extra) -> str:
    for system in systems:
        reason = fusable(system, exact)
        if reason:
            raise GradgenError(f"cannot fuse: {reason}")
    ordered = sorted(systems, key=lambda s: gradient_name(s.name))  # the hub design's order
    members = [_member(s, exact) for s in ordered]
    names = extra.pop("per_step", [])
    per_step = [n for m in members for n in _per_step_locals(m, names)]
    declared: set[str] = set()
    for member in members:  # a coupled concentration's σ: one ASSIGNED, whichever member names it
        member.assigned = [a for a in member.assigned if not (a in declared or declared.add(a))]
    currents_read = sorted({c for s in ordered for c in s.coupling.currents})
    held = {c for s in ordered for c in s.lowered.concentration_writes}  # STATEs of a member
    writers = {m.name for m, s in zip(members, ordered) if set(s.lowered.concentration_writes) & set(s.coupling.concentrations)}
    K = len(params)
    ions: dict[str, dict] = {}
    for system in ordered:
        for ion in system.lowered.mechanism.ions:
            entry = ions.setdefault(ion.name, dict(name=ion.name, read=[], write=[], valence=ion.valence))
            entry["read"] += [r for r in ion.read if r not in entry["read"] and r not in currents_read
                              and r not in held]
            entry["write"] += [w for w in ion.write if w not in entry["write"]]
    sums: dict[str, list[sympy.Expr]] = {}
    for member in members:
        for ion, name, expr in member.currents:
            sums.setdefault(name if ion else FUSED_NONSPECIFIC, []).append(expr)
    currents = [Line(name, nmodl(sympy.Add(*exprs, evaluate=False))) for name, exprs in sums.items()]
    # a guarded mechanism with nonspecific currents only computes each member's current inside
    # its guard and hands modcc the linearised form (see templates/exact.mod.j2)
    linearised = (bool(extra.get("guarded")) and any(m.currents for m in members)
                  and all(ion is None for m in members for ion, _, _ in m.currents))
    member_currents = [nmodl(sympy.Add(*[e for _, _, e in m.currents])) if m.currents else "0" for m in members]
    current_lines: list[list[Line]] = [[] for _ in members]
    if linearised:  # one statement each would repeat its exp() calls (3 of them in a cubed gate)
        member_currents = []
        for member, lines in zip(members, current_lines):
            names = (sympy.Symbol(f"{member_prefix(member.name)}{LOCAL_PREFIX['current_lines']}{i}")
                     for i in itertools.count())
            expr = sympy.Add(*[e for _, _, e in member.currents])
            for power in sorted(expr.atoms(sympy.Pow), key=sympy.count_ops):  # bases of powers once
                if power.exp.is_Integer and abs(power.exp) > 1 and not power.base.is_Atom:
                    base = next(names)
                    lines.append(Line(base.name, nmodl(power.base)))
                    expr = expr.xreplace({power: base ** power.exp})
            temps, (reduced,) = sympy.cse([expr], symbols=names)
            lines += [Line(t.name, nmodl(e)) for t, e in temps]
            member_currents.append(nmodl(reduced))
    exprs = [c.expr for s in ordered for code in (s.initial, s.phase_a, s.phase_b) for c in code.statements]
    return template(template_name).render(
        name=mechanism, version=__version__, carriers=[diffusive(carrier_ion(k)) for k in range(K)],
        members=members, params=params, ks=list(range(K)), ions=list(ions.values()),
        nonspecific=FUSED_NONSPECIFIC in sums, currents=currents,
        conductance=diffusive(CONDUCTANCE_ION), scratch=[diffusive(scratch_ion(k)) for k in range(K)],
        needs_dexprelr=uses_dexprelr(exprs), linearised=linearised, member_currents=member_currents,
        stores=[diffusive(current_store(c, k)) for c in currents_read for k in range(K)],
        read_back=[(exact_current(c), c) for c in currents_read],
        # a coupled concentration's writer updates it after its readers: they see the old value
        # in their state update, as each original sees the ion's until every update has run
        phase_b_members=[m for m in members if m.name not in writers] + [m for m in members if m.name in writers],
        current_lines=current_lines, per_step=per_step,
        conductance_locals=[n for m in members for n in m.conductance_lines[1]], **extra)
