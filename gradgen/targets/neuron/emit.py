"""Emission for NEURON: gradient systems to NMODL that ``nrnivmodl`` compiles.

The derived system (:mod:`gradgen.sensitivity.derive`) is the same as for Arbor; what
differs is where NEURON keeps and sums per-segment values:

- an accumulator is an ion's inside concentration (``<ion>i``), not Arbor's diffusive
  ``<ion>d``;
- NEURON evaluates BREAKPOINT twice per step (at v + 0.001 mV and at v), so BREAKPOINT
  only computes the currents; phase A runs in the SOLVEd procedure, before phase B, at the
  step's start voltage V^n kept in :data:`gradgen.protocol.VPREV` (nothing that phase A
  reads changes between BREAKPOINT and the state update but V). There u_k^n is known with
  either carrier, including the shadow cells', which NEURON solves in the matrix step;
- NEURON has no ``exprelr``: a file that uses it gets it as a FUNCTION (same text in the
  gradient mechanism and in the original built for comparison, see :func:`original_source`).
"""
from __future__ import annotations

import itertools
import re
from functools import cache
from pathlib import Path
from typing import Sequence

import jinja2
import sympy

from gradgen import protocol
from gradgen.errors import GradgenError
from gradgen.nmodl.ir import exprelr
from gradgen.nmodl.lowered import V
from gradgen.nmodl.parser import parse_text
from gradgen.nmodl.printer import Line, lower_piecewise, uses_dexprelr
from gradgen.params import ParamRef
from gradgen.protocol import (
    CONDUCTANCE_ION,
    HUB_NAME,
    LOCAL_PREFIX,
    VPREV,
    carrier_ion,
    concentration,
    current_dv_store,
    current_store,
    diffusive,
    gradient_name,
    original_name,
    scratch_ion,
    weight,
)
from gradgen.sensitivity.coupling import Coupling
from gradgen.sensitivity.derive import ContributorSystem
from gradgen.sensitivity.straight_line import Code
from gradgen.version import __version__

TEMPLATES = Path(__file__).resolve().parent / "templates"
SCHEMES = protocol.NEURON_SCHEMES  # the first is the default
#: Names NMODL provides in NEURON that a lowered expression may read (declared, not RANGE).
_BUILTIN_ASSIGNED = ("v", "diam", "area")


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    env.globals["names"] = protocol  # every generated identifier comes from gradgen.protocol
    return env


def template(name: str) -> jinja2.Template:
    """One of the NEURON target's NMODL templates, with ``names`` bound to the protocol."""
    return _environment().get_template(name)


def _gradient_ions(system: ContributorSystem) -> list[str]:
    K = len(system.params)
    return [CONDUCTANCE_ION] + [f(k) for k in range(K) for f in (carrier_ion, scratch_ion)] \
        + list(system.store_ions())


def _neuron_symbols(system: ContributorSystem) -> dict[sympy.Symbol, sympy.Symbol]:
    """Arbor's diffusive accumulators ``<ion>d`` -> NEURON's ``<ion>i``."""
    return {sympy.Symbol(diffusive(i)): sympy.Symbol(concentration(i)) for i in _gradient_ions(system)}


def _render(code: Code, prefix: str, rename: dict) -> tuple[list[Line], list[str]]:
    """Lines and LOCALs of ``code``, its symbols renamed by ``rename``; an assignment that the
    renaming makes ``x = x`` is dropped."""
    counter = itertools.count()
    lines: list[Line] = []
    locals_ = list(code.locals)
    for stmt in code.statements:
        target, expr = stmt.target, stmt.expr.xreplace(rename)
        if sympy.Symbol(target) in rename:
            target = rename[sympy.Symbol(target)].name
        if expr == sympy.Symbol(target):
            continue
        new, created = lower_piecewise(target, expr, lambda: f"{prefix}{next(counter)}")
        lines += new
        locals_ += created
    return lines, locals_


def _uses_exprelr(exprs: Sequence[sympy.Expr]) -> bool:
    return any(e.has(exprelr) for e in exprs)


def emit_contributor(system: ContributorSystem) -> str:
    """NMODL text of a mechanism's gradient version for NEURON."""
    low = system.lowered
    mech = low.mechanism
    if mech.kind not in ("density", "point") or system.lowered.post_events:
        raise GradgenError(f"'{low.name}': only density mechanisms and point processes (NET_RECEIVE, no "
                           "POST_EVENT) are supported by the NEURON target yet",
                           mech.pos, hint="gap junctions and POST_EVENT work with the Arbor target")
    element_of = {e: name for name, elements in mech.arrays.items() for e in elements}
    arrayed = [p for p in system.params if p.mechanism == low.name and p.parameter in element_of]
    if arrayed:  # nocmodl keeps the original's array; its elements have no hoc names of their own
        where = next(p.pos for p in low.parameters if p.name == arrayed[0].parameter)
        raise GradgenError(f"θ {arrayed[0].name} is an element of the PARAMETER array "
                           f"{element_of[arrayed[0].parameter]}, which the NEURON target cannot set in the "
                           "original", where, hint="declare one PARAMETER per element, or use the Arbor target")
    K = len(system.params)
    rename = _neuron_symbols(system)
    ions = [dict(name=i.name, read=i.read, write=i.write, valence=i.valence) for i in mech.ions]
    accum = [CONDUCTANCE_ION] + [scratch_ion(k) for k in range(K)]
    for ion in accum:
        ions.append(dict(name=ion, read=[concentration(ion)], write=[concentration(ion)], valence=1))
    for k in range(K):
        ions.append(dict(name=carrier_ion(k), read=[concentration(carrier_ion(k))], write=[], valence=1))
    # coupling stores (gradgen.sensitivity.coupling): inside concentrations of ions of their own
    for store, writes in system.store_ions().items():
        ions.append(dict(name=store, read=[concentration(store)], write=[concentration(store)] if writes else [],
                         valence=1))
        accum.append(store)
    weights = {k: weight(k) for k in system.owned}
    parameters = [dict(name=p.name, value=repr(float(p.value or 0.0)), unit=p.unit) for p in low.parameters]
    parameters += [dict(name=w, value="0", unit=None) for w in weights.values()]
    range_names = [n for n in mech.range_names if n in low.parameter_names()] + list(weights.values())

    initial, initial_locals = _render(system.initial, LOCAL_PREFIX["initial_lines"], rename)
    # the original's initial SOLVEs, pasted (gradgen.nmodl.initial_solve): NEURON finds the
    # states as it does for the original, σ(0) follows from them
    pasted = system.initial_solve
    # phase A at V^n, in the state update (V^{n+1} is v there); its V^n := V drops out
    phase_a, phase_a_locals = _render(system.phase_a, LOCAL_PREFIX["phase_a_lines"],
                                      {**rename, V: sympy.Symbol(VPREV)})
    phase_b, phase_b_locals = _render(system.phase_b, LOCAL_PREFIX["phase_b_lines"], rename)
    # NET_RECEIVE: NEURON delivers events after a step's state update and before the next
    # step's currents, as Arbor does, so the split σ = σpre + JV·u is mapped as for Arbor
    events, events_locals = _render(system.events, LOCAL_PREFIX["events_lines"], rename)
    # each current as its expression: NEURON takes the slope of the whole current numerically
    # (modcc's conductance form, system.currents, is Arbor's)
    currents, created = [], []
    for c in low.currents:
        lines, made = lower_piecewise(c.name, c.expr, lambda: f"{LOCAL_PREFIX['current_lines']}{len(created)}")
        currents += lines
        created += made
    exprs = [s.expr for code in (system.initial, system.phase_a, system.phase_b, system.events)
             for s in code.statements] + [c.expr for c in low.currents]
    free = {s.name for e in exprs for s in e.free_symbols}
    if pasted:
        free |= {n for text in pasted.blocks + pasted.prelude for n in re.findall(r"\b\w+\b", text)}
    states = set(low.states)
    ion_vars = [v for i in mech.ions for v in i.read + i.write if v not in states]
    builtin = [n for n in _BUILTIN_ASSIGNED if n in free or n == "v"]
    assigned = list(dict.fromkeys(builtin + ion_vars + list(mech.nonspecific_currents)
                                  + [concentration(i) for i in accum + [carrier_ion(k) for k in range(K)]]
                                  + system.assigned_names() + (pasted.assigned if pasted else [])))
    if "celsius" in free:
        parameters.append(dict(name="celsius", value=None, unit="degC"))
    return template("contributor.mod.j2").render(
        name=gradient_name(low.name), original=low.name, version=__version__, source=mech.source.name,
        kind=mech.kind, params=system.params, owned=system.owned, weight_names=weights, ions=ions,
        nonspecific=mech.nonspecific_currents, range_names=range_names,
        global_names=[n for n in mech.global_names if n in low.parameter_names()],
        parameters=parameters, states=low.states, assigned=assigned,
        initial=dict(lines=initial, locals=(pasted.locals if pasted else []) + initial_locals,
                     prelude=pasted.prelude if pasted else [], solves=pasted.statements if pasted else [],
                     blocks=pasted.blocks if pasted else []),
        phase_a=dict(lines=phase_a, locals=phase_a_locals),
        currents=dict(lines=currents, locals=created),
        phase_b=dict(lines=phase_b, locals=phase_b_locals), vprev=VPREV,
        events=dict(lines=events, locals=events_locals) if low.events else None, event_args=low.event_args,
        needs_exprelr=_uses_exprelr(exprs) or bool(pasted and pasted.calls_exprelr),
        needs_dexprelr=uses_dexprelr(exprs))


def emit_hub(params: list[ParamRef], scheme: str = SCHEMES[0], coupling: Coupling = Coupling()) -> str:
    """NMODL text of the NEURON hub that owns the carriers of ``params``: for ``shadow`` the
    hub that exchanges sums and u_k with the shadow cells, otherwise the ion carrier's."""
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}")
    name = "hub_shadow.mod.j2" if scheme == "shadow" else "hub.mod.j2"
    if (coupling.currents or coupling.concentrations) and scheme != "shadow":
        raise GradgenError("ion coupling between mechanisms needs the shadow carrier in the NEURON target",
                           hint="drop --scheme (the default is shadow)")
    current_stores = [current_store(c, k) for c in coupling.currents for k in range(len(params))]
    current_stores += [current_dv_store(c) for c in coupling.currents]
    return template(name).render(name=HUB_NAME, version=__version__, params=params,
                                 ks=list(range(len(params))), corrected=scheme == "corrected",
                                 current_stores=current_stores)


def emit_shadow_mechanism() -> str:
    """NMODL text of the shadow cells' membrane mechanism (one for every model)."""
    return template("shadow.mod.j2").render(version=__version__)


_NAME_LINE = re.compile(r"^(\s*(?:SUFFIX|POINT_PROCESS)\s+)(\w+)", re.MULTILINE)
_DEFINES_EXPRELR = re.compile(r"\bFUNCTION\s+exprelr\b")
_NEURON_BLOCK = re.compile(r"^\s*NEURON\s*\{", re.MULTILINE)


def _block_end(text: str, start: int) -> int:
    """Index just after the brace that closes the block opened before ``start``."""
    depth = 1
    for i in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return i + 1
    raise GradgenError("unbalanced braces in the NEURON block")


def original_source(text: str, mechanism: str) -> str:
    """An input file as NEURON compiles it beside its gradient version.

    The mechanism is renamed :func:`gradgen.protocol.original_name` (NEURON's own ``hh`` and
    ``pas`` would clash, and both versions load into one model for finite differences).
    Arbor-dialect files get what NEURON needs and Arbor does not: ``exprelr`` (an Arbor
    built-in) as the same FUNCTION the gradient version has, and an ASSIGNED block for the
    voltage, ion variables and currents they use undeclared. Nothing else changes.
    """
    mech = parse_text(text, f"{mechanism}.mod")
    renamed, count = _NAME_LINE.subn(lambda m: m.group(1) + original_name(mechanism), text, count=1)
    if count != 1:
        raise GradgenError(f"no SUFFIX or POINT_PROCESS line for '{mechanism}'")
    declared = {v.name for v in mech.parameters + mech.assigned + mech.states + mech.constants}
    needed = ["v"] + [n for i in mech.ions for n in i.read + i.write] + list(mech.nonspecific_currents)
    missing = [n for n in dict.fromkeys(needed) if n not in declared]
    if missing:  # declared before any block that uses them (nocmodl's cnexp needs that)
        end = _block_end(renamed, _NEURON_BLOCK.search(renamed).end())
        renamed = renamed[:end] + "\nASSIGNED { " + " ".join(missing) + " }\n" + renamed[end:]
    if re.search(r"\bexprelr\s*\(", renamed) and not _DEFINES_EXPRELR.search(renamed):
        renamed += "\n" + template("exprelr.mod.j2").render()
    return renamed
