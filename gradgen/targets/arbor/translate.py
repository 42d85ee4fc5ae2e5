"""`gradgen translate`: a NEURON-dialect `.mod` file as NMODL that Arbor's modcc accepts.

The file is parsed and lowered exactly as for a gradient conversion (FUNCTIONs and
PROCEDUREs inlined, TABLE dropped, unit factors and DEFINEs folded into numbers, if/else
into Piecewise), then printed back as a small mechanism without gradients: one statement
per line, LOCALs at the top of each block, common state-free subexpressions as LOCALs,
each Piecewise as an if/else on a LOCAL. NEURON's derivimplicit (backward Euler) becomes
modcc's ``sparse`` (backward Euler; three Newton iterations where nonlinear), and so does
runge; euler becomes ``cnexp``: the methods gradgen's gradient mechanisms reproduce; a KINETIC scheme becomes its mass-action ODEs in a DERIVATIVE block
solved by ``sparse`` (backward Euler, which keeps the scheme's CONSERVE laws by itself),
and a STEADYSTATE initialisation its closed-form solution; a LINEAR block keeps its
equations, written ``~ 0 = expr``; a SOLVEd PROCEDURE (explicit updates of the states)
becomes a METHOD-less block of the new values, which modcc runs in advance_state. A
mechanism that reads the time ``t`` keeps a clock (gradgen.nmodl.clock), advanced by a
METHOD-less block SOLVEd after the states'.
"""
from __future__ import annotations

import itertools
import warnings
from pathlib import Path
from typing import Sequence

import sympy

from gradgen.errors import GradgenError, GradgenWarning
from gradgen.nmodl.lower import lower_file
from gradgen.nmodl.lowered import LoweredMechanism, V
from gradgen.nmodl.printer import Line, lower_piecewise, modcc_unit
from gradgen.outputs import OutputDir
from gradgen.protocol import CLOCK, CLOCK_PROCEDURE
from gradgen.sensitivity.modcc_currents import modcc_currents
from gradgen.sensitivity.discretize import MODCC_METHODS, LinearStep, closed_form, state_update
from gradgen.targets.arbor.dialect import check_name, event_arguments, nonspecific_currents, one_nonspecific_current
from gradgen.version import __version__

_INDENT = "    "
#: The modcc METHOD that performs each discrete update.
MODCC_METHOD_NAMES = {"pade": "cnexp", "backward_euler": "sparse"}


def _render(lines: list[Line], indent: str) -> list[str]:
    out: list[str] = []
    for line in lines:
        if line.is_if:
            out.append(f"{indent}if ({line.cond}) {{")
            out += _render(line.then, indent + _INDENT)
            if line.orelse:
                out.append(f"{indent}}} else {{")
                out += _render(line.orelse, indent + _INDENT)
            out.append(f"{indent}}}")
        else:
            out.append(f"{indent}{line.target} = {line.expr}")
    return out


def _block(head: str, targets: list[tuple[str, sympy.Expr]], prefix: str,
           keep: set[sympy.Symbol], first: list[str] | None = None, hoist: bool = False,
           staged: list[str] = ()) -> list[str]:
    """``head { LOCALs; temporaries; target = expr ... }`` with CSE that never hides ``keep``.

    Subexpressions containing a symbol of ``keep`` (the states) stay inline, so modcc sees
    each ODE's dependence on its state, and a temporary never holds a pre-update state.
    """
    names = sympy.numbered_symbols(f"t{prefix}")
    replacements, reduced = sympy.cse([e for _, e in targets], symbols=names, ignore=keep,
                                      order="none")
    counter = itertools.count()
    locals_: list[str] = list(staged) + [s.name for s, _ in replacements]
    body: list[Line] = []

    def new_local() -> str:
        return f"p{prefix}{next(counter)}"

    for sym, expr in replacements:
        lines, created = lower_piecewise(sym.name, expr, new_local)
        body += lines
        locals_ += created
    for (target, _), expr in zip(targets, reduced):
        if hoist:
            # an ODE keeps only its own state: modcc's cnexp solves each ODE on its own, and
            # a LOCAL computed here reads the states updated before it, as NEURON's does
            own = {sympy.Symbol(target[:-1])} if target.endswith("'") else keep
            expr = _hoist_state_free(expr, own, keep, body, locals_, new_local)
        lines, created = lower_piecewise(target, expr, new_local)
        body += lines
        locals_ += created
    out = [f"{head} {{"] + [_INDENT + line for line in (first or [])]
    if locals_:
        out.append(f"{_INDENT}LOCAL {', '.join(locals_)}")
    return out + _render(body, _INDENT) + ["}"]


def _hoist_state_free(expr: sympy.Expr, states: set[sympy.Symbol], all_states: set[sympy.Symbol],
                      body: list[Line], locals_: list[str], new_local) -> sympy.Expr:
    """Move each largest non-trivial subexpression free of ``states`` into a LOCAL.

    modcc's cnexp differentiates each ODE by its state symbolically and cannot differentiate
    exprelr and some other functions, even where they do not depend on the state, and
    refuses an ODE that names another state.
    """
    def walk(e: sympy.Basic) -> sympy.Basic:
        if e.is_Atom and e not in all_states - states:
            return e
        if not (e.free_symbols & states):
            name = new_local()
            lines, created = lower_piecewise(name, e, new_local)
            body.extend(lines)
            locals_.extend([name, *created])
            return sympy.Symbol(name)
        return e.func(*[walk(a) for a in e.args])

    return walk(expr)


def _inhomogeneous_linear(low: LoweredMechanism) -> bool:
    """Whether modcc's sparse would refuse the block: its linear solver (used for every
    linear system) takes only ODEs without a constant term."""
    if MODCC_METHODS.get(low.solve_method) != "backward_euler" or not low.derivatives:
        return False
    if not isinstance(state_update(low, MODCC_METHODS), LinearStep):  # nonlinear: modcc's Newton
        return False
    zero = {sympy.Symbol(s): 0 for s in low.derivatives}
    return any(sympy.simplify(e.xreplace(zero)) != 0 for e in low.derivatives.values())


def translate_lowered(low: LoweredMechanism) -> str:
    """NMODL text (Arbor dialect, no gradients) of a lowered mechanism."""
    mech = low.mechanism
    states = {sympy.Symbol(s) for s in low.states}
    if mech.kind not in ("density", "point"):
        raise GradgenError(f"a {mech.kind} process is Arbor's own NMODL: modcc reads it as written",
                           mech.pos, hint="use the file itself; translate is for NEURON-dialect files")
    check_name(mech)
    kind = {"density": "SUFFIX", "point": "POINT_PROCESS"}[mech.kind]
    head = [f": {mech.name}: translated by gradgen {__version__} from {mech.source.name} for Arbor.",
            ": FUNCTIONs and PROCEDUREs are inlined, TABLE is dropped, unit factors are folded.",
            "", "NEURON {", f"{_INDENT}{kind} {mech.name}"]
    for ion in mech.ions:
        text = f"{_INDENT}USEION {ion.name}"
        reads = [r for r in ion.read if r in low.ion_reads]
        writes = [c.name for c in low.currents if c.ion == ion.name]
        writes += [c for c, name in low.concentration_writes.items() if name == ion.name]
        if reads:
            text += " READ " + ", ".join(reads)
        if writes:
            text += " WRITE " + ", ".join(writes)
        if ion.valence is not None:
            text += f" VALENCE {ion.valence}"
        head.append(text)
    for name in nonspecific_currents(low):
        head.append(f"{_INDENT}NONSPECIFIC_CURRENT {name}")
    ranges = [p for p in low.parameter_names() if p in mech.range_names]
    if ranges:
        head.append(f"{_INDENT}RANGE {', '.join(ranges)}")
    head += ["}", "", "PARAMETER {"]
    for p in low.parameters:
        unit = f" ({modcc_unit(p.unit)})" if modcc_unit(p.unit) else ""
        head.append(f"{_INDENT}{p.name} = {float(p.value or 0.0)!r}{unit}")
    head.append("}")
    parts = ["\n".join(head)]
    if low.states:
        parts.append(f"STATE {{ {' '.join(low.states)} }}")
    clock = low.keeps_clock()
    if clock:
        parts.append(f"ASSIGNED {{ {CLOCK} }}")
    solve = []
    explicit = [(state, e) for state, e in low.explicit.items() if e != sympy.Symbol(state)]
    # (an ODE NEURON linearises with assigned values held fixed: modcc would see them inlined)
    assigned_states = bool(low.state_assignments or low.after_solve or low.breakpoint_states
                           or low.cnexp_coefficients)
    kept_system = assigned_states and low.derivatives and isinstance(state_update(low, MODCC_METHODS), LinearStep)
    if (assigned_states and not kept_system) or _inhomogeneous_linear(low):
        # states the solved block assigns (m = minf, cai = ca), which modcc's cnexp and sparse
        # do not step as NEURON does, or a backward-Euler step of linear ODEs with constant
        # terms (modcc's sparse takes only homogeneous ones): the update written out, as for
        # a PROCEDURE
        update = closed_form(state_update(low, MODCC_METHODS), low)
        explicit = [(state, e) for state, e in update.items() if e != sympy.Symbol(state)]
    if low.solve_method == "linear" or explicit:
        solve = ["SOLVE states"]
    elif low.derivatives:
        solve = [f"SOLVE states METHOD {MODCC_METHOD_NAMES[MODCC_METHODS[low.solve_method]]}"]
    if clock:  # after the states: their update reads the clock before it moves
        solve.append(f"SOLVE {CLOCK_PROCEDURE}")
    # modcc derives the conductance from the current statements: keep v in them, and where
    # the original hides v in a LOCAL or a call, write modcc's conductance out (as the
    # gradient version does), so the translation steps like the original read by modcc
    assignments, current_locals = modcc_currents(low)
    assignments = one_nonspecific_current(assignments, low)
    # an if/else becomes a LOCAL, which modcc takes as independent of v: exact only where
    # the condition and branches do not depend on v (a saturating g = min(B - A, gmax))
    if any(c.conductance is None and any(p.has(V) for p in c.expr.atoms(sympy.Piecewise))
           for c in low.currents):
        raise GradgenError("a current that depends on an if/else of v cannot be translated",
                           mech.breakpoint.pos, hint="modcc derives the conductance from the current")
    breakpoint = _block("BREAKPOINT", [(a.target, a.expr) for a in assignments], "b", states | {V},
                        solve, staged=current_locals)
    parts.append("\n".join(breakpoint))
    if low.states or clock:
        initial = list(low.initial_closed_form().items()) + ([(CLOCK, sympy.Integer(0))] if clock else [])
        parts.append("\n".join(_block("INITIAL", initial, "i", set())))
    if low.derivatives and not explicit:
        # values of the old states a KINETIC block assigns (Ca = C1 + … + C5): modcc's sparse
        # runs such statements before its solve, as NEURON's does
        odes = [(s, e) for s, e in low.state_assignments.items()] if kept_system else []
        odes += [(f"{s}'", e) for s, e in low.derivatives.items()]
        parts.append("\n".join(_block("DERIVATIVE states", odes, "d", states, hoist=True)))
    if explicit:
        # a SOLVEd PROCEDURE (or the update written out): modcc pastes a METHOD-less block into advance_state; every
        # new value reads the old states, so stage them, then assign
        staged = [f"ps{i}" for i in range(len(explicit))]
        targets = [(n, e) for n, (_, e) in zip(staged, explicit)]
        targets += [(state, sympy.Symbol(n)) for n, (state, _) in zip(staged, explicit)]
        parts.append("\n".join(_block("DERIVATIVE states", targets, "x", states, staged=staged)))
    if low.equations:
        equations = [("~ 0", e) for e in low.equations]
        parts.append("\n".join(_block("LINEAR states", equations, "l", states, hoist=True)))
    if clock:
        parts.append(f"DERIVATIVE {CLOCK_PROCEDURE} {{\n{_INDENT}{CLOCK} = {CLOCK} + dt\n}}")
    event_args = event_arguments(low) if low.events else []
    for head, events in ((f"NET_RECEIVE({', '.join(event_args)})", low.events),
                         ("POST_EVENT(time)", low.post_events)):
        if not events:
            continue
        # every jump is a function of the states before the event: stage, then assign (as
        # "je": _block names its if/else LOCALs "pe0", "pe1", ...)
        jumps = list(events.items())
        staged = [f"je{i}" for i in range(len(jumps))]
        targets = [(n, e) for n, (_, e) in zip(staged, jumps)]
        targets += [(state, sympy.Symbol(n)) for n, (state, _) in zip(staged, jumps)]
        parts.append("\n".join(_block(head, targets, "e", set(), staged=staged)))
    return "\n\n".join(parts) + "\n"


def warn_dropped_outputs(low: LoweredMechanism) -> None:
    """A GradgenWarning naming the RANGE values the translation does not keep: values that
    move no current, state or ion (a monitor's ``Vshift``) are computed for hoc to read, and an
    Arbor mechanism has no place for them; a user who reads them must know they are gone."""
    kept = set(low.parameter_names()) | set(low.states) | {c.name for c in low.currents}
    kept |= set(low.concentration_writes) | set(low.ion_reads)
    dropped = [name for name in low.mechanism.range_names if name not in kept]
    if dropped:
        warnings.warn(f"{low.mechanism.source.name}: RANGE {', '.join(dropped)} of '{low.name}': "
                      "no current, state or ion depends on them, so the translation does not keep "
                      "them (Arbor probes STATEs only)", GradgenWarning, stacklevel=3)


def translate(mod_file: Path | str, out_dir: Path | str) -> Path:
    """Translate one file into ``out_dir/<mechanism>.mod``; return the written path."""
    return translate_files([mod_file], out_dir)[0]


def translate_files(mod_files: Sequence[Path | str], out_dir: Path | str) -> list[Path]:
    """Translate each file into ``out_dir/<mechanism>.mod`` in one step (all or none).

    ``out_dir`` must be new or gradgen's (see :mod:`gradgen.outputs`); an input is never
    overwritten, and two inputs naming the same mechanism are refused.
    """
    files: dict[str, str] = {}
    for mod_file in mod_files:
        low = lower_file(mod_file)
        name = f"{low.name}.mod"
        if name in files:
            raise GradgenError(f"two inputs define mechanism '{low.name}'", low.mechanism.pos,
                               hint="translate them into different directories")
        files[name] = translate_lowered(low)
        warn_dropped_outputs(low)
    out = OutputDir.claim(out_dir, inputs=list(mod_files))
    out.write(files)
    return [out.path / name for name in files]


__all__ = ["translate", "translate_files", "translate_lowered", "warn_dropped_outputs"]
