"""The symbolic interpreter of NMODL statements: one block run into closed forms.

FUNCTIONs and PROCEDUREs are inlined, if/else becomes ``Piecewise``, LOCALs disappear,
KINETIC reactions add their mass-action rates to the states' ODEs, CONSERVE, COMPARTMENT
and LINEAR equations are collected. A :class:`Frame` holds what one block knows; the
lowering (:mod:`gradgen.nmodl.lower`) decides which blocks run in which frame.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy
from sympy.core.function import AppliedUndef

from gradgen.errors import GradgenError, SourcePos
from gradgen.nmodl.branch_conditions import fold_condition
from gradgen.nmodl.cnexp_coefficient import written_coefficient
from gradgen.nmodl.ir import (
    Assign,
    Block,
    Call,
    Compartment,
    Conserve,
    DerivativeAssign,
    Flux,
    If,
    LinearEquation,
    Local,
    Mechanism,
    Reaction,
    Solve,
    Statement,
)
from gradgen.nmodl.lowered import TIME, V
from gradgen.nmodl.unassigned import function_result

#: NEURON's names, in a KINETIC block, of the last reaction's forward and backward fluxes.
REACTION_FLUXES = ("f_flux", "b_flux")

#: Internal marker of the v written in a current assignment (never emitted).
EXPLICIT_V = sympy.Dummy("v_explicit")


def _mark_explicit_v(expr: sympy.Basic) -> sympy.Basic:
    """``expr`` with v replaced by :data:`EXPLICIT_V` outside FUNCTION calls."""
    if expr == V:
        return EXPLICIT_V
    if not expr.args or isinstance(expr, AppliedUndef):
        return expr
    return expr.func(*[_mark_explicit_v(a) for a in expr.args])


@dataclass
class Frame:
    """Variables known while executing one block."""

    values: dict[str, sympy.Expr]
    derivatives: dict[str, sympy.Expr] = field(default_factory=dict)
    solves: list[Solve] = field(default_factory=list)
    conserved: list[tuple[dict[str, int], sympy.Expr]] = field(default_factory=list)
    volumes: dict[str, sympy.Expr] = field(default_factory=dict)
    equations: list[sympy.Expr] = field(default_factory=list)
    conductances: dict[str, sympy.Expr] = field(default_factory=dict)  # see Current.conductance
    order: list[str] = field(default_factory=list)  # names assigned, and "s'" for each ODE, in order
    # state -> a of its ODE as NEURON's cnexp reads it (gradgen.nmodl.cnexp_coefficient);
    # not kept through an if/else or a PROCEDURE that sets the ODE
    coefficients: dict[str, sympy.Expr] = field(default_factory=dict)

    def copy(self) -> "Frame":
        return Frame(dict(self.values), dict(self.derivatives), list(self.solves),
                      list(self.conserved), dict(self.volumes), list(self.equations), order=list(self.order))


class BlockExecutor:
    """Symbolic interpreter for NMODL statements."""

    def __init__(self, mech: Mechanism, constants: dict[str, sympy.Expr]):
        self.mech = mech
        self.constants = constants
        self.call_depth = 0
        self.currents: set[str] = set()  # names whose modcc conductance is tracked
        self.warned: set[str] = set()  # FUNCTIONs already reported (gradgen.nmodl.unassigned)

    # -- expressions

    def evaluate(self, expr: sympy.Basic, frame: Frame, pos: SourcePos) -> sympy.Basic:
        if isinstance(expr, sympy.Symbol):
            name = expr.name
            if name in frame.values:
                return frame.values[name]
            if name.endswith("'") and name[:-1] in frame.derivatives:  # D' read after D' = ...
                return frame.derivatives[name[:-1]]
            return self.constants.get(name, expr)
        if isinstance(expr, AppliedUndef):
            args = [self.evaluate(a, frame, pos) for a in expr.args]
            return self.inline_function(expr.func.__name__, args, pos, frame)
        if not expr.args:
            return expr
        return expr.func(*[self.evaluate(a, frame, pos) for a in expr.args])

    def inline_function(self, name: str, args: list[sympy.Basic], pos: SourcePos,
                        caller: Frame) -> sympy.Basic:
        block = self.mech.functions.get(name)
        if block is None:
            raise GradgenError(f"call of unknown FUNCTION '{name}'", pos)
        frame = self._enter(block, args, pos)
        # it reads the ASSIGNED values known at the call (T = 273.15 + celsius set in
        # INITIAL), except where its arguments shadow them; not the caller's LOCALs
        assigned = {a.name for a in self.mech.assigned} - {name} | {TIME.name}  # and the block's t
        frame.values = {**{n: e for n, e in caller.values.items() if n in assigned}, **frame.values}
        before = dict(frame.values)
        self.run(block.body, frame)
        self.call_depth -= 1
        # what it assigns outside itself (tSpikes[1] = t in 185513 DCNsynGABA) the caller sees next
        own = set(block.args) | _declared_locals(block.body) | {name}
        caller.values.update({n: e for n, e in frame.values.items() if n not in own and before.get(n) is not e})
        if name not in frame.values:
            raise GradgenError(f"FUNCTION '{name}' never assigns its result", block.pos,
                               hint=f"add '{name} = ...' to the function body")
        return function_result(block, frame.values[name], self.warned)

    def _enter(self, block: Block, args: list[sympy.Basic], pos: SourcePos) -> Frame:
        if len(args) != len(block.args):
            raise GradgenError(
                f"'{block.name}' takes {len(block.args)} argument(s), called with {len(args)}", pos)
        self.call_depth += 1
        if self.call_depth > 50:
            raise GradgenError(f"'{block.name}' calls itself: recursion is not supported", pos)
        return Frame(dict(zip(block.args, args)))

    # -- statements

    def run(self, body: list[Statement], frame: Frame) -> None:
        for stmt in body:
            self.step(stmt, frame)

    def step(self, stmt: Statement, frame: Frame) -> None:
        if isinstance(stmt, Local):
            for name in stmt.names:
                frame.values.pop(name, None)
        elif isinstance(stmt, Assign):
            frame.values[stmt.target] = self.evaluate(stmt.expr, frame, stmt.pos)
            frame.order.append(stmt.target)
            if stmt.target in self.currents:
                self._modcc_conductance(stmt, frame)
        elif isinstance(stmt, DerivativeAssign):
            frame.derivatives[stmt.state] = self.evaluate(stmt.expr, frame, stmt.pos)
            frame.order.append(f"{stmt.state}'")
            written = written_coefficient(stmt.expr, stmt.state, frame.values)
            if written is not None:
                frame.coefficients[stmt.state] = self.evaluate(written, frame, stmt.pos)
        elif isinstance(stmt, If):
            self._branch(stmt, frame)
        elif isinstance(stmt, Call):
            self._call_procedure(stmt, frame)
        elif isinstance(stmt, Solve):
            frame.solves.append(stmt)
        elif isinstance(stmt, Reaction):
            self._react(stmt, frame)
        elif isinstance(stmt, Flux):
            self._add_rate(stmt.state, self.evaluate(stmt.expr, frame, stmt.pos), frame, stmt.pos)
            for name in REACTION_FLUXES:  # they name the last reaction's fluxes: not this one
                frame.values.pop(name, None)
        elif isinstance(stmt, Conserve):
            weights = {name: coef for coef, name in stmt.terms}
            frame.conserved.append((weights, self.evaluate(stmt.total, frame, stmt.pos)))
        elif isinstance(stmt, LinearEquation):
            frame.equations.append(self.evaluate(stmt.lhs - stmt.rhs, frame, stmt.pos))
        elif isinstance(stmt, Compartment):
            for name in stmt.states:
                frame.volumes[name] = self.evaluate(stmt.volume, frame, stmt.pos)
        else:  # pragma: no cover - the IR has no other statement kinds
            raise TypeError(stmt)

    def _modcc_conductance(self, stmt: Assign, frame: Frame) -> None:
        """Record modcc's conductance of a current assignment where it differs from ∂i/∂v:
        only the v written in the statement itself counts (not inside LOCALs or calls)."""
        explicit = self.evaluate(_mark_explicit_v(stmt.expr), frame, stmt.pos)
        frame.conductances.pop(stmt.target, None)
        if V in explicit.free_symbols:  # v also enters through a LOCAL or a call
            frame.conductances[stmt.target] = sympy.diff(explicit, EXPLICIT_V).subs(EXPLICIT_V, V)

    def _add_rate(self, state: str, rate: sympy.Expr, frame: Frame, pos: SourcePos) -> None:
        if state not in {s.name for s in self.mech.states}:
            raise GradgenError(f"'{state}' in a reaction is not a STATE", pos,
                               hint=f"declare it in STATE {{ {state} }}")
        frame.derivatives[state] = frame.derivatives.get(state, sympy.Integer(0)) + rate

    def _react(self, stmt: Reaction, frame: Frame) -> None:
        """Mass action: rate = kf·Π left^ν − kb·Π right^ν, taken from left, given to right."""
        def product(side: list[tuple[int, str]]) -> sympy.Expr:
            return sympy.Mul(*[self.evaluate(sympy.Symbol(n), frame, stmt.pos) ** c for c, n in side])

        forward = self.evaluate(stmt.forward, frame, stmt.pos) * product(stmt.left)
        backward = self.evaluate(stmt.backward, frame, stmt.pos) * product(stmt.right)
        rate = forward - backward
        # NEURON's f_flux and b_flux: the last reaction's two fluxes, before any COMPARTMENT
        frame.values.update(zip(REACTION_FLUXES, (forward, backward)))
        states = {s.name for s in self.mech.states}
        for coef, name in stmt.left:
            if name in states or not self._declared(name):
                self._add_rate(name, -coef * rate, frame, stmt.pos)
        for coef, name in stmt.right:
            if name in states or not self._declared(name):
                self._add_rate(name, coef * rate, frame, stmt.pos)

    def _declared(self, name: str) -> bool:
        """A declared name that is not a STATE (``cao`` in ``~ pumpca <-> pump + cao``): NEURON
        keeps it constant through the reaction, a factor of its flux and never changed by it."""
        ions = {var for ion in self.mech.ions for var in ion.read + ion.write}
        return name in ions or any(v.name == name for v in [*self.mech.parameters, *self.mech.assigned])

    def _branch(self, stmt: If, frame: Frame) -> None:
        # (a condition on an if/else value as plain logic: SymPy's own fold of it is slow)
        cond = fold_condition(self.evaluate(stmt.cond, frame, stmt.pos))
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
                if a.get(name) is b.get(name):  # unchanged, or both branches set the same value
                    merged[name] = a[name]
                    continue
                fallback = merged.get(name, sympy.Symbol(name))
                # unevaluated: SymPy's evaluation canonicalises every relation of the
                # condition, walking it as a tree (seconds per if/else on ModelDB 150288 na3DA)
                merged[name] = sympy.Piecewise((a.get(name, fallback), cond),
                                               (b.get(name, fallback), True), evaluate=False)
        frame.order += then.order[len(frame.order):] + orelse.order[len(frame.order):]
        for name in {*then.derivatives, *orelse.derivatives}:
            if then.derivatives.get(name) is not orelse.derivatives.get(name):
                frame.coefficients.pop(name, None)
        if len(then.solves) > len(frame.solves) or len(orelse.solves) > len(frame.solves):
            raise GradgenError("SOLVE inside if/else is not supported", stmt.pos)

    def _call_procedure(self, stmt: Call, frame: Frame) -> None:
        # a FUNCTION called as a statement: NEURON runs it for its assignments, drops its value
        block = self.mech.procedures.get(stmt.name) or self.mech.functions.get(stmt.name)
        if block is None:
            raise GradgenError(f"call of unknown PROCEDURE '{stmt.name}'", stmt.pos)
        args = [self.evaluate(a, frame, stmt.pos) for a in stmt.args]
        inner = self._enter(block, args, stmt.pos)
        # The procedure sees the caller's variables, except where its arguments shadow them.
        inner.values = {**frame.values, **inner.values}
        locals_ = set(block.args) | _declared_locals(block.body) | {block.name}
        before = dict(inner.values)
        self.run(block.body, inner)
        self.call_depth -= 1
        for name, value in inner.values.items():
            if name not in locals_ and before.get(name) is not value:
                frame.values[name] = value
                if name in self.currents:  # a current assigned in the procedure
                    frame.conductances.pop(name, None)
                    if name in inner.conductances:
                        frame.conductances[name] = inner.conductances[name]
        frame.derivatives.update(inner.derivatives)
        for name in inner.derivatives:
            frame.coefficients.pop(name, None)
        frame.order += inner.order
        frame.conserved += inner.conserved
        frame.volumes.update(inner.volumes)


def _declared_locals(body: list[Statement]) -> set[str]:
    names: set[str] = set()
    for stmt in body:
        if isinstance(stmt, Local):
            names.update(stmt.names)
        elif isinstance(stmt, If):
            names |= _declared_locals(stmt.then) | _declared_locals(stmt.orelse)
    return names
