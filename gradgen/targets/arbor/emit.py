"""Emission: gradient systems to NMODL text through the Jinja templates beside this module."""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import jinja2
import sympy

from gradgen import protocol
from gradgen.errors import GradgenError
from gradgen.nmodl.lowered import LoweredMechanism, V
from gradgen.nmodl.printer import Line, lower_piecewise, modcc_unit, uses_dexprelr
from gradgen.params import ParamRef
from gradgen.protocol import (
    CONDUCTANCE_ION,
    clamp_store,
    HUB_NAME,
    LOCAL_PREFIX,
    carrier_ion,
    current_store,
    diffusive,
    gradient_name,
    nernst_flag,
    scratch_ion,
    weight,
)
from gradgen.sensitivity.coupling import Coupling
from gradgen.sensitivity.derive import ContributorSystem
from gradgen.sensitivity.straight_line import Code
from gradgen.targets.arbor.dialect import (
    check_settable,
    event_arguments,
    nonspecific_currents,
    one_nonspecific_current,
)
from gradgen.version import __version__

TEMPLATES = Path(__file__).resolve().parent / "templates"


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["names"] = protocol  # every generated identifier comes from gradgen.protocol
    return env


def template(name: str) -> jinja2.Template:
    """One of the Arbor target's NMODL templates, with ``names`` bound to the protocol."""
    return _environment().get_template(name)


@dataclass
class _Rendered:
    lines: list[Line] = field(default_factory=list)
    locals: list[str] = field(default_factory=list)


def _render_code(code: Code, prefix: str) -> _Rendered:
    counter = itertools.count()
    out = _Rendered(locals=list(code.locals))

    def new_local() -> str:
        return f"{prefix}{next(counter)}"

    for stmt in code.statements:
        lines, created = lower_piecewise(stmt.target, stmt.expr, new_local)
        out.lines += lines
        out.locals += created
    return out


def _render_currents(system: ContributorSystem) -> _Rendered:
    out = _Rendered(locals=list(system.current_locals))
    counter = itertools.count()
    for stmt in one_nonspecific_current(system.currents, system.lowered):
        lines, created = lower_piecewise(stmt.target, stmt.expr, lambda: f"{LOCAL_PREFIX['current_lines']}{next(counter)}")
        out.locals += created
        if created and stmt.target not in system.current_locals and any(
                p.has(V) for p in stmt.expr.atoms(sympy.Piecewise)):
            # modcc derives the conductance from the current statements and takes the LOCAL
            # of an if/else as independent of v: exact only for branches free of v
            raise GradgenError(f"the current '{stmt.target}' depends on an if/else of v: not supported yet",
                               system.lowered.mechanism.breakpoint.pos,
                               hint="compute the branch in a state or parameter instead")
        out.lines += lines
    return out


def emit_contributor(system: ContributorSystem) -> str:
    """NMODL text of a mechanism's gradient version."""
    low = system.lowered
    mech = low.mechanism
    K = len(system.params)
    check_settable(low, list(system.owned.values()))
    if mech.kind == "voltage":
        return _emit_voltage_process(system)
    followed = {low.ion_reads[var]: conc for var, conc in system.nernst_reversals().items()}
    ions = [dict(name=i.name, read=i.read + [c for c in [followed.get(i.name)] if c and c not in i.read],
                 write=i.write, valence=i.valence) for i in mech.ions]
    ions.append(dict(name=CONDUCTANCE_ION, read=[diffusive(CONDUCTANCE_ION)], write=[diffusive(CONDUCTANCE_ION)],
                     valence=None))
    for k in range(K):
        ions.append(dict(name=carrier_ion(k), read=[diffusive(carrier_ion(k))], write=[], valence=None))
        ions.append(dict(name=scratch_ion(k), read=[diffusive(scratch_ion(k))],
                         write=[diffusive(scratch_ion(k))], valence=None))
    for ion, writes in system.store_ions().items():
        ions.append(dict(name=ion, read=[diffusive(ion)], write=[diffusive(ion)] if writes else [], valence=None))
    weights = {k: weight(k) for k in system.owned}
    parameters = _parameters(low, weights)
    flags = [nernst_flag(ion) for ion in followed]  # 0: fixed reversal potential (the runtime paints 1)
    parameters += [dict(name=f, value="0", unit=None) for f in flags]
    range_names = _range_parameters(system) + list(weights.values()) + flags
    exprs = [s.expr for code in (system.initial, system.phase_a, system.phase_b, system.events,
                                 system.post_events) for s in code.statements]
    # the original's initial SOLVEs, pasted (gradgen.nmodl.initial_solve): modcc solves the
    # states from the original's own code (in its column order: targets/arbor/modcc_order.py)
    pasted = system.initial_solve
    initial = _render_code(system.initial, LOCAL_PREFIX["initial_lines"])
    return template("contributor.mod.j2").render(
        name=gradient_name(low.name),
        original=low.name,
        version=__version__,
        source=mech.source.name,
        kind=mech.kind,
        params=system.params,
        owned=system.owned,
        weight_names=weights,
        ions=ions,
        nonspecific=nonspecific_currents(low),
        range_names=range_names,
        parameters=parameters,
        states=low.states,
        assigned=system.assigned_names() + (pasted.assigned if pasted else []),
        initial=dict(lines=initial.lines, locals=(pasted.locals if pasted else []) + initial.locals,
                     prelude=pasted.prelude if pasted else [], solves=pasted.statements if pasted else [],
                     blocks=pasted.blocks if pasted else []),
        phase_a=_render_code(system.phase_a, LOCAL_PREFIX["phase_a_lines"]),
        currents=_render_currents(system),
        phase_b=_render_code(system.phase_b, LOCAL_PREFIX["phase_b_lines"]),
        events=_render_code(system.events, LOCAL_PREFIX["events_lines"]) if system.lowered.events else None,
        event_args=event_arguments(low) if low.events else [],
        post_events=_render_code(system.post_events, LOCAL_PREFIX["events_lines"])
        if system.lowered.post_events else None,
        needs_dexprelr=uses_dexprelr(exprs),
    )


def emit_exact_point(system: ContributorSystem, name: str) -> str:
    """NMODL text of a point process's exact-carrier version ``name`` (``system`` derived with
    ``direct``): its B_k and dG_k in ASSIGNED arrays and u_k in STATEs, exchanged with the
    cell's exact mechanism by the C++ of :mod:`gradgen.targets.arbor.exact_channel`."""
    low = system.lowered
    coupled = set(system.coupling.currents) | set(system.coupling.concentrations)
    if low.mechanism.kind != "point" or coupled & ({c.name for c in low.currents} | set(low.ion_reads)
                                                   | set(low.concentration_writes)):
        raise GradgenError(f"'{low.name}': only uncoupled point processes have an exact-carrier version")
    check_settable(low, list(system.owned.values()))
    K = len(system.params)
    weights = {k: weight(k) for k in system.owned}
    parameters = _parameters(low, weights)
    exprs = [s.expr for code in (system.initial, system.phase_a, system.phase_b, system.events,
                                 system.post_events) for s in code.statements]
    return template("exact_point.mod.j2").render(
        name=name, original=low.name, version=__version__, source=low.mechanism.source.name,
        params=system.params, owned=system.owned, weight_names=weights, ks=list(range(K)),
        ions=[dict(name=i.name, read=i.read, write=i.write, valence=i.valence) for i in low.mechanism.ions],
        nonspecific=nonspecific_currents(low),
        range_names=_range_parameters(system) + list(weights.values()), parameters=parameters,
        states=low.states, assigned=system.assigned_names(),
        carriers=[diffusive(carrier_ion(k)) for k in range(K)],
        scratch=[diffusive(scratch_ion(k)) for k in range(K)], conductance=diffusive(CONDUCTANCE_ION),
        initial=_render_code(system.initial, LOCAL_PREFIX["initial_lines"]),
        phase_a=_render_code(system.phase_a, LOCAL_PREFIX["phase_a_lines"]),
        currents=_render_currents(system),
        phase_b=_render_code(system.phase_b, LOCAL_PREFIX["phase_b_lines"]),
        events=_render_code(system.events, LOCAL_PREFIX["events_lines"]) if low.events else None,
        event_args=event_arguments(low) if low.events else [],
        post_events=_render_code(system.post_events, LOCAL_PREFIX["events_lines"]) if low.post_events else None,
        needs_dexprelr=uses_dexprelr(exprs))


def _parameters(low: LoweredMechanism, weights: dict[int, str]) -> list[dict]:
    """The PARAMETER block of a gradient version: the original's, then the θ weights (0: the
    runtime paints 1 where θ_k is this mechanism's)."""
    return [dict(name=p.name, value=repr(float(p.value or 0.0)), unit=modcc_unit(p.unit))
            for p in low.parameters] + [dict(name=w, value="0", unit=None) for w in weights.values()]


def _range_parameters(system: ContributorSystem) -> list[str]:
    """The parameters that are RANGE in the gradient version: those RANGE in the original. A
    GLOBAL stays GLOBAL, set through a derived name as on the original (targets/arbor/versions.py):
    a painted RANGE value is averaged by Arbor over each CV's area, which can move it by an ulp,
    enough to move allen/NaV's ill-conditioned initial states by 5e-10."""
    mech = system.lowered.mechanism
    original_globals = {p.name for p in mech.parameters} - set(mech.range_names)
    return [p for p in system.lowered.parameter_names() if p not in original_globals]


def _emit_voltage_process(system: ContributorSystem) -> str:
    """NMODL text of a VOLTAGE_PROCESS's gradient version (see ``derive``'s voltage processes)."""
    low = system.lowered
    weights = {k: weight(k) for k in system.owned}
    parameters = _parameters(low, weights)
    return template("voltage.mod.j2").render(
        name=gradient_name(low.name), original=low.name, version=__version__,
        source=low.mechanism.source.name, params=system.params, owned=system.owned,
        weight_names=weights,
        ions=[ion for k in range(len(system.params)) for ion in (carrier_ion(k), clamp_store(k))],
        range_names=_range_parameters(system) + list(weights.values()), parameters=parameters,
        clamp=_render_code(system.phase_a, LOCAL_PREFIX["phase_a_lines"]))


SCHEMES = ("corrected", "naive")


def emit_hub(params: list[ParamRef], scheme: str = "corrected", coupling: Coupling = Coupling()) -> str:
    """NMODL text of the hub that owns the carriers of ``params``.

    The hub also empties the coupling's current stores once every reader has used them, and
    the clamp stores of voltage processes.

    ``scheme="naive"`` drops the conductance-change term and the split compensation (the
    update of the original study); it exists to measure what the corrections buy.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}")
    return template("hub.mod.j2").render(
        name=HUB_NAME, version=__version__, params=params, ks=list(range(len(params))),
        corrected=scheme == "corrected", clamped=coupling.clamped,
        current_stores=[current_store(c, k) for c in coupling.currents for k in range(len(params))],
        clamp_stores=[clamp_store(k) for k in range(len(params))] if coupling.clamped else [])
