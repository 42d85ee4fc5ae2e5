"""Mechanism IR: what a `.mod` file says, as plain dataclasses holding SymPy expressions.

The parser produces it; later passes (lowering, derivation, emission) read it and never
see NMODL text. Conventions inside expressions:

- a variable is ``sympy.Symbol(name)`` (no assumptions); ``v`` is the membrane voltage;
- a user FUNCTION call is an undefined-function application ``sympy.Function(name)(*args)``,
  which the lowering pass inlines;
- built-ins map to SymPy (``exp``, ``log``, ``sqrt``, ``pow`` -> ``Pow``, ``min``/``max`` ->
  ``Min``/``Max``) except :class:`exprelr` and :class:`fabs`, which keep their own classes so
  the emitter can print them back and differentiate them as real functions;
- numbers are ``sympy.Integer`` for integer literals, else ``sympy.Float`` of the double.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
import math
from pathlib import Path
from typing import Literal, Union

import sympy

from gradgen.errors import SourcePos


class exprelr(sympy.Function):
    """x / (exp(x) - 1), continuous at x = 0 (value 1): Arbor's built-in, kept symbolic."""

    nargs = 1

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        return dexprelr(self.args[0])

    def _eval_evalf(self, prec: int):
        x = self.args[0]
        if x.is_zero:
            return sympy.Float(1, prec)
        return (x / (sympy.exp(x) - 1)).evalf(prec)


#: 1.5·2^52: adding and subtracting it rounds a float64 to the nearest integer (ties to even)
#: for |x| < 2^51, in IEEE arithmetic (no -ffast-math), with no library call.
ROUNDING_SHIFT = 6755399441055744


class round_even(sympy.Function):
    """x rounded to the nearest integer, ties to even, written (x + 1.5·2^52) - 1.5·2^52:
    modcc has neither floor nor round (:func:`floor_form`). Piecewise constant: its
    derivative is 0 wherever it is defined."""

    nargs = 1

    @classmethod
    def eval(cls, x):
        if x.is_Number and x.is_finite:
            return sympy.Integer(round(float(x)))  # Python's round: ties to even, as the FPU

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        return sympy.Integer(0)


class nfloor(sympy.Function):
    """NMODL's ``floor(x)``, kept whole while lowering and deriving (an if/else inside it would
    be folded into every condition that reads it: ModelDB 150288 na3DA grew past 65 000
    operations); written out by :func:`floor_form` when printed. Derivative 0 (none at the
    integers)."""

    nargs = 1

    @classmethod
    def eval(cls, x):
        if x.is_Number and x.is_finite:
            return sympy.Integer(math.floor(float(x)))

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        return sympy.Integer(0)


class fabs(sympy.Function):
    """NMODL's ``fabs(x)`` of a real x. SymPy's Abs of a symbol without assumptions (every
    variable here, :mod:`gradgen.nmodl.ir`) differentiates through ``re``/``im``, which no
    simulator has (ModelDB 150288 tone2pyrD: 32 modcc errors); this one's derivative is
    sign(x) (printed as if/else; 0 at x = 0, one side's slope at the kink)."""

    nargs = 1

    @classmethod
    def eval(cls, x):
        if x.is_Number:
            return abs(x)

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        return sympy.sign(self.args[0])

    def _eval_is_nonnegative(self):
        return True


def floor_form(x: sympy.Expr) -> sympy.Expr:
    """``floor(x)`` in a form modcc compiles (it has no floor): the rounded x, less 1 where it
    rounded up (exact for |x| < 2^51)."""
    rounded = round_even(x)
    return rounded - sympy.Piecewise((1, rounded > x), (0, True))


class dexprelr(sympy.Function):
    """Derivative of :class:`exprelr`; emitted as a guarded helper FUNCTION (value -1/2 at 0)."""

    nargs = 1

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        x = self.args[0]
        # d/dx of (exp(x) - 1 - x exp(x)) / (exp(x) - 1)^2, the closed form of dexprelr.
        return sympy.diff((sympy.exp(x) - 1 - x * sympy.exp(x)) / (sympy.exp(x) - 1) ** 2, x)

    def _eval_evalf(self, prec: int):
        x = self.args[0]
        if x.is_zero:
            return sympy.Float(-0.5, prec)
        return ((sympy.exp(x) - 1 - x * sympy.exp(x)) / (sympy.exp(x) - 1) ** 2).evalf(prec)


# ---------------------------------------------------------------- statements


@dataclass
class Assign:
    """``target = expr``."""

    target: str
    expr: sympy.Expr
    pos: SourcePos


@dataclass
class DerivativeAssign:
    """``state' = expr`` inside a DERIVATIVE block."""

    state: str
    expr: sympy.Expr
    pos: SourcePos


@dataclass
class If:
    """``if (cond) { then } else { orelse }``; ``else if`` nests an If in ``orelse``."""

    cond: sympy.Basic
    then: list["Statement"]
    orelse: list["Statement"]
    pos: SourcePos


@dataclass
class Call:
    """A PROCEDURE called as a statement, ``rates(v)``."""

    name: str
    args: list[sympy.Expr]
    pos: SourcePos


@dataclass
class Solve:
    """``SOLVE block METHOD method`` (method None when absent).

    ``steady_state`` is set for ``SOLVE block STEADYSTATE method`` (in INITIAL).
    """

    block: str
    method: str | None
    pos: SourcePos
    steady_state: bool = False


@dataclass
class Local:
    """``LOCAL a, b``: names local to the enclosing block."""

    names: list[str]
    pos: SourcePos


@dataclass
class Reaction:
    """``~ A + 2 B <-> C (kf, kb)`` in a KINETIC block; sides as (coefficient, state)."""

    left: list[tuple[int, str]]
    right: list[tuple[int, str]]
    forward: sympy.Expr
    backward: sympy.Expr
    pos: SourcePos


@dataclass
class Flux:
    """``~ x << (f)``: an explicit flux f into state x."""

    state: str
    expr: sympy.Expr
    pos: SourcePos


@dataclass
class Conserve:
    """``CONSERVE a + b = total``: a conservation law of the scheme."""

    terms: list[tuple[int, str]]
    total: sympy.Expr
    pos: SourcePos


@dataclass
class Compartment:
    """``COMPARTMENT volume {states}``: the states are amounts per ``volume``."""

    volume: sympy.Expr
    states: list[str]
    pos: SourcePos


@dataclass
class LinearEquation:
    """``~ lhs = rhs`` in a LINEAR block: one equation of a linear system in the STATEs."""

    lhs: sympy.Expr
    rhs: sympy.Expr
    pos: SourcePos


Statement = Union[Assign, DerivativeAssign, If, Call, Solve, Local, Reaction, Flux, Conserve,
                  Compartment, LinearEquation]


def walk(body: list[Statement]) -> Iterator[Statement]:
    """Every statement of a body, including those nested in if/else."""
    for stmt in body:
        yield stmt
        if isinstance(stmt, If):
            yield from walk(stmt.then)
            yield from walk(stmt.orelse)


# ---------------------------------------------------------------- declarations


@dataclass
class Variable:
    """A declared name: PARAMETER, CONSTANT, ASSIGNED or STATE entry."""

    name: str
    pos: SourcePos
    unit: str | None = None
    value: float | None = None  # default of a PARAMETER / value of a CONSTANT
    limits: tuple[float, float] | None = None


@dataclass
class IonUse:
    """``USEION name READ ... WRITE ... VALENCE z`` (or Arbor's ``VALENCE zx``, a name)."""

    name: str
    read: list[str]
    write: list[str]
    pos: SourcePos
    valence: int | None = None
    valence_name: str | None = None


@dataclass
class Block:
    """A named block of statements: FUNCTION, PROCEDURE, DERIVATIVE, KINETIC, LINEAR,
    INITIAL, BREAKPOINT, NET_RECEIVE, POST_EVENT."""

    name: str
    body: list[Statement]
    pos: SourcePos
    args: list[str] = field(default_factory=list)  # FUNCTION / PROCEDURE arguments


@dataclass
class Mechanism:
    """One parsed `.mod` file."""

    name: str
    kind: Literal["density", "point", "junction", "voltage"]
    source: Path
    text: str
    pos: SourcePos  # of the SUFFIX / POINT_PROCESS name
    title: str | None = None
    ions: list[IonUse] = field(default_factory=list)
    nonspecific_currents: list[str] = field(default_factory=list)  # ELECTRODE_CURRENTs included
    #: ELECTRODE_CURRENTs: positive inward (into the cell), the opposite of a membrane current
    electrode_currents: list[str] = field(default_factory=list)
    range_names: list[str] = field(default_factory=list)
    global_names: list[str] = field(default_factory=list)
    parameters: list[Variable] = field(default_factory=list)
    constants: list[Variable] = field(default_factory=list)
    assigned: list[Variable] = field(default_factory=list)
    states: list[Variable] = field(default_factory=list)
    units: dict[str, str] = field(default_factory=dict)  # UNITS block: alias -> definition
    functions: dict[str, Block] = field(default_factory=dict)
    procedures: dict[str, Block] = field(default_factory=dict)
    derivatives: dict[str, Block] = field(default_factory=dict)
    kinetics: dict[str, Block] = field(default_factory=dict)
    linears: dict[str, Block] = field(default_factory=dict)
    initial: Block | None = None
    breakpoint: Block | None = None
    net_receive: Block | None = None  # parsed; not lowered yet
    post_event: Block | None = None  # parsed; not lowered yet
    #: BREAKPOINT's if/else that held a SOLVE, without it: nocmodl runs it in nrn_state, after
    #: the SOLVE (:mod:`gradgen.nmodl.solve_placement`)
    after_solve: list["Statement"] = field(default_factory=list)
    #: ``AFTER SOLVE { … }``: nocmodl runs it in nrn_state after the state update, like
    #: ``after_solve`` (to which :mod:`gradgen.nmodl.solve_placement` appends it)
    after_solve_block: Block | None = None
    white_noise: list[str] = field(default_factory=list)  # parsed; not lowered yet
    #: the file's arrays, unrolled by the parser: name -> its scalars (``ca`` -> ``ca_0, …``)
    arrays: dict[str, list[str]] = field(default_factory=dict)

    def parameter(self, name: str) -> Variable | None:
        return next((p for p in self.parameters if p.name == name), None)

    def blocks(self) -> list[Block]:
        """Every block of statements: INITIAL, BREAKPOINT, the event blocks, then the named ones."""
        blocks = [b for b in (self.initial, self.breakpoint, self.after_solve_block, self.net_receive,
                              self.post_event) if b]
        for table in (self.functions, self.procedures, self.derivatives, self.kinetics, self.linears):
            blocks += table.values()
        return blocks
