"""Lowering: execute a mechanism's blocks symbolically into closed-form expressions.

FUNCTIONs and PROCEDUREs are inlined, if/else becomes ``Piecewise``, LOCALs disappear.
What remains is what the derivation pass needs: the membrane currents I(v, s, p, ions),
the state derivatives ds/dt, and the initial states s0(v, p). Every free symbol of those
is accounted for (voltage, state, parameter, ion variable, temperature); anything else is
reported with the position of the statement that introduced it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import sympy
from sympy.core.function import AppliedUndef

from gradgen.errors import GradgenError, SourcePos
from gradgen.ir import (
    Assign,
    Block,
    Call,
    DerivativeAssign,
    If,
    Local,
    Mechanism,
    Solve,
    Statement,
    Variable,
)

#: Names the simulator provides; NEURON-style files also declare some as PARAMETER/ASSIGNED.
BUILTIN_NAMES = {"v", "celsius", "dt", "t", "area", "diam"}
#: Built-ins a lowered expression may still contain (time ``t`` is unavailable in Arbor).
FREE_BUILTINS = {"v", "celsius"}

V = sympy.Symbol("v")


@dataclass
class Current:
    """One membrane current the mechanism writes: an ion current or a nonspecific one."""

    name: str
    ion: str | None
    expr: sympy.Expr


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
    solve_method: str | None = None
    concentration_writes: dict[str, str] = field(default_factory=dict)  # state -> ion ("cai" -> "ca")

    @property
    def name(self) -> str:
        return self.mechanism.name

    def parameter_names(self) -> list[str]:
        return [p.name for p in self.parameters]

    def total_current(self) -> sympy.Expr:
        return sympy.Add(*[c.expr for c in self.currents])


@dataclass
class _Frame:
    """Variables known while executing one block."""

    values: dict[str, sympy.Expr]
    derivatives: dict[str, sympy.Expr] = field(default_factory=dict)
    solves: list[Solve] = field(default_factory=list)

    def copy(self) -> "_Frame":
        return _Frame(dict(self.values), dict(self.derivatives), list(self.solves))


class _Executor:
    """Symbolic interpreter for NMODL statements."""

    def __init__(self, mech: Mechanism, constants: dict[str, sympy.Expr]):
        self.mech = mech
        self.constants = constants
        self.call_depth = 0

    # -- expressions

    def evaluate(self, expr: sympy.Basic, frame: _Frame, pos: SourcePos) -> sympy.Basic:
        if isinstance(expr, sympy.Symbol):
            name = expr.name
            if name in frame.values:
                return frame.values[name]
            return self.constants.get(name, expr)
        if isinstance(expr, AppliedUndef):
            args = [self.evaluate(a, frame, pos) for a in expr.args]
            return self.inline_function(expr.func.__name__, args, pos)
        if not expr.args:
            return expr
        return expr.func(*[self.evaluate(a, frame, pos) for a in expr.args])

    def inline_function(self, name: str, args: list[sympy.Basic], pos: SourcePos) -> sympy.Basic:
        block = self.mech.functions.get(name)
        if block is None:
            raise GradgenError(f"call of unknown FUNCTION '{name}'", pos)
        frame = self._enter(block, args, pos)
        self.run(block.body, frame)
        self.call_depth -= 1
        if name not in frame.values:
            raise GradgenError(f"FUNCTION '{name}' never assigns its result", block.pos,
                               hint=f"add '{name} = ...' to the function body")
        return frame.values[name]

    def _enter(self, block: Block, args: list[sympy.Basic], pos: SourcePos) -> _Frame:
        if len(args) != len(block.args):
            raise GradgenError(
                f"'{block.name}' takes {len(block.args)} argument(s), called with {len(args)}", pos)
        self.call_depth += 1
        if self.call_depth > 50:
            raise GradgenError(f"'{block.name}' calls itself: recursion is not supported", pos)
        return _Frame(dict(zip(block.args, args)))

    # -- statements

    def run(self, body: list[Statement], frame: _Frame) -> None:
        for stmt in body:
            self.step(stmt, frame)

    def step(self, stmt: Statement, frame: _Frame) -> None:
        if isinstance(stmt, Local):
            for name in stmt.names:
                frame.values.pop(name, None)
        elif isinstance(stmt, Assign):
            frame.values[stmt.target] = self.evaluate(stmt.expr, frame, stmt.pos)
        elif isinstance(stmt, DerivativeAssign):
            frame.derivatives[stmt.state] = self.evaluate(stmt.expr, frame, stmt.pos)
        elif isinstance(stmt, If):
            self._branch(stmt, frame)
        elif isinstance(stmt, Call):
            self._call_procedure(stmt, frame)
        elif isinstance(stmt, Solve):
            frame.solves.append(stmt)
        else:  # pragma: no cover - the IR has no other statement kinds
            raise TypeError(stmt)

    def _branch(self, stmt: If, frame: _Frame) -> None:
        cond = self.evaluate(stmt.cond, frame, stmt.pos)
        if cond in (sympy.true, True):
            self.run(stmt.then, frame)
            return
        if cond in (sympy.false, False):
            self.run(stmt.orelse, frame)
            return
        then, orelse = frame.copy(), frame.copy()
        self.run(stmt.then, then)
        self.run(stmt.orelse, orelse)
        for table in ("values", "derivatives"):
            merged = getattr(frame, table)
            a, b = getattr(then, table), getattr(orelse, table)
            for name in list(dict.fromkeys([*a, *b])):
                if a.get(name) is b.get(name):
                    continue
                fallback = merged.get(name, sympy.Symbol(name))
                merged[name] = sympy.Piecewise((a.get(name, fallback), cond),
                                               (b.get(name, fallback), True))
        if then.solves or orelse.solves:
            raise GradgenError("SOLVE inside if/else is not supported", stmt.pos)

    def _call_procedure(self, stmt: Call, frame: _Frame) -> None:
        block = self.mech.procedures.get(stmt.name)
        if block is None:
            raise GradgenError(f"call of unknown PROCEDURE '{stmt.name}'", stmt.pos)
        args = [self.evaluate(a, frame, stmt.pos) for a in stmt.args]
        inner = self._enter(block, args, stmt.pos)
        # The procedure sees the caller's variables, except where its arguments shadow them.
        inner.values = {**frame.values, **inner.values}
        locals_ = set(block.args) | _declared_locals(block.body)
        before = dict(inner.values)
        self.run(block.body, inner)
        self.call_depth -= 1
        for name, value in inner.values.items():
            if name not in locals_ and before.get(name) is not value:
                frame.values[name] = value
        frame.derivatives.update(inner.derivatives)


def _declared_locals(body: list[Statement]) -> set[str]:
    names: set[str] = set()
    for stmt in body:
        if isinstance(stmt, Local):
            names.update(stmt.names)
        elif isinstance(stmt, If):
            names |= _declared_locals(stmt.then) | _declared_locals(stmt.orelse)
    return names


def _ion_tables(mech: Mechanism) -> tuple[dict[str, str], dict[str, str | None], dict[str, str]]:
    """Ion variables read, currents written, and concentrations written (as STATEs)."""
    reads: dict[str, str] = {}
    currents: dict[str, str | None] = {}
    concentrations: dict[str, str] = {}
    states = {s.name for s in mech.states}
    for ion in mech.ions:
        for var in ion.read:
            reads[var] = ion.name
        for var in ion.write:
            if var == f"i{ion.name}":
                currents[var] = ion.name
            elif var in (f"{ion.name}i", f"{ion.name}o") and var in states:
                concentrations[var] = ion.name
            else:
                raise GradgenError(
                    f"writing the ion variable '{var}' is not supported", ion.pos,
                    hint=f"write i{ion.name}, or a concentration {ion.name}i/{ion.name}o "
                         "that is declared as a STATE")
    for name in mech.nonspecific_currents:
        currents[name] = None
    for var in concentrations:
        reads.pop(var, None)  # the mechanism's own state, not an input
    return reads, currents, concentrations


def lower(mech: Mechanism) -> LoweredMechanism:
    """Lower a parsed mechanism to closed forms (see the module docstring)."""
    constants = {c.name: sympy.Float(c.value) for c in mech.constants if c.value is not None}
    parameters = [p for p in mech.parameters if p.name not in BUILTIN_NAMES]
    states = [s.name for s in mech.states]
    ion_reads, current_ions, concentration_writes = _ion_tables(mech)
    executor = _Executor(mech, constants)

    initial = _Frame({})
    if mech.initial is not None:
        executor.run(mech.initial.body, initial)
    # ASSIGNED values fixed at INITIAL (e.g. a q10 factor) are constants for the other blocks.
    assigned = {a.name for a in mech.assigned} - BUILTIN_NAMES - set(ion_reads) - set(current_ions)
    state_symbols = {sympy.Symbol(s) for s in states} | {V}
    carried = {}
    for name in assigned:
        value = initial.values.get(name)
        if value is not None and not (value.free_symbols & state_symbols):
            carried[name] = value

    breakpoint = _Frame(dict(carried))
    if mech.breakpoint is None:
        raise GradgenError("the mechanism has no BREAKPOINT block", mech.pos)
    executor.run(mech.breakpoint.body, breakpoint)

    derivatives: dict[str, sympy.Expr] = {}
    solve_method = None
    for solve in breakpoint.solves:
        block = mech.derivatives.get(solve.block)
        if block is None:
            raise GradgenError(f"SOLVE names '{solve.block}', which is no DERIVATIVE block",
                               solve.pos)
        if solve.method != "cnexp":
            raise GradgenError(
                f"SOLVE ... METHOD {solve.method or '(none)'} is not supported yet", solve.pos,
                hint="this version supports 'METHOD cnexp' for DERIVATIVE blocks")
        frame = _Frame(dict(carried))
        executor.run(block.body, frame)
        derivatives.update(frame.derivatives)
        solve_method = solve.method

    currents = []
    for name, ion in current_ions.items():
        if name not in breakpoint.values:
            raise GradgenError(f"the current '{name}' is declared but never assigned in BREAKPOINT",
                               mech.breakpoint.pos)
        currents.append(Current(name, ion, breakpoint.values[name]))

    init_states = {s: initial.values.get(s, sympy.Integer(0)) for s in states}
    lowered = LoweredMechanism(mech, parameters, states, currents, derivatives, init_states,
                               ion_reads, solve_method, concentration_writes)
    _check_symbols(lowered)
    return lowered


def _check_symbols(low: LoweredMechanism) -> None:
    known = (set(low.parameter_names()) | set(low.states) | set(low.ion_reads) | FREE_BUILTINS)
    mech = low.mechanism
    checks: list[tuple[str, sympy.Expr, SourcePos]] = []
    for cur in low.currents:
        checks.append((f"current '{cur.name}'", cur.expr, mech.breakpoint.pos))
    for state, expr in low.derivatives.items():
        checks.append((f"derivative of '{state}'", expr, mech.pos))
    for state, expr in low.initial.items():
        checks.append((f"initial value of '{state}'", expr,
                       mech.initial.pos if mech.initial else mech.pos))
    for what, expr, pos in checks:
        unknown = sorted(s.name for s in expr.free_symbols if s.name not in known)
        if unknown:
            raise GradgenError(
                f"the {what} depends on {', '.join(unknown)}, which is neither a parameter, a "
                "state, an ion variable nor set before use", pos,
                hint="assign it before use, or declare it as PARAMETER")
    for state in low.states:
        if low.solve_method and state not in low.derivatives:
            raise GradgenError(f"STATE '{state}' has no derivative in the solved block", mech.pos)


def lower_file(path: Path | str) -> LoweredMechanism:
    """Parse and lower one `.mod` file."""
    from gradgen.parser import parse_file

    return lower(parse_file(path))
