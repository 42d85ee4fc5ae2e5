"""Turn the lark parse tree of one `.mod` file into the Mechanism IR.

Two steps: a Transformer builds statements, declarations and blocks bottom-up (it must
know the file's FUNCTION and PROCEDURE names before it meets a call, so those are
collected from the tree first), then :func:`build_mechanism` assembles the parts and runs
the checks that need the whole file (one SUFFIX, SOLVE targets, derivative targets).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sympy
from lark import Token, Transformer, Tree, v_args
from lark.exceptions import VisitError
from lark.tree import Meta
from sympy.core.relational import Relational
from sympy.logic.boolalg import BooleanAtom, BooleanFunction

from gradgen.errors import GradgenError, SourcePos
from gradgen.nmodl.assigned_roles import assigned_in_derivatives, held_between_events, held_by_solved_procedures, set_outside
from gradgen.nmodl.clock import at_time
from gradgen.nmodl.solve_placement import (
    append_after_solve_block,
    hoist_after_solve_without_currents,
    hoist_branch_solves,
)
from gradgen.nmodl.ir import (
    Assign,
    Block,
    Call,
    Compartment,
    Conserve,
    DerivativeAssign,
    Flux,
    If,
    IonUse,
    LinearEquation,
    Local,
    Mechanism,
    Reaction,
    Solve,
    Statement,
    Variable,
    exprelr,
    fabs,
    nfloor,
    walk,
)
from gradgen.nmodl.parser.arrays import (
    ArrayDeclaration,
    ArrayElement,
    Indexed,
    IndexedCompartment,
    Loop,
    unroll,
    walk_all,
)

#: Physical constants a UNITS block may name, as ``FARADAY = (faraday) (coulomb)``: the
#: 2019 SI values, which NEURON 9 uses (modcc has no such constants; they are folded in).
UNIT_CONSTANTS: dict[str, float] = {
    "faraday": 96485.33212331001,
    "k-mole": 8.31446261815324,  # the gas constant R in joule/degC/mol
    "e": 1.602176634e-19,
    "avogadro": 6.02214076e23,
    "boltzmann": 1.380649e-23,
    "pi": 3.141592653589793,
}
#: The units each constant may be expressed in (after an optional number, as in
#: ``(10000 coulomb)``), and their size in the unit of UNIT_CONSTANTS: NEURON gives
#: ``FARADAY = (faraday) (kilocoulombs)`` as 96.485…, not 96485.3….
_CONSTANT_UNITS: dict[str, dict[str, float]] = {
    "faraday": {"coulomb": 1.0, "coulombs": 1.0, "coul": 1.0, "kilocoulomb": 1e3, "kilocoulombs": 1e3},
    "k-mole": {"joule/degC": 1.0, "joule/kelvin": 1.0, "joule/K": 1.0, "J/degC": 1.0, "J/K": 1.0},
    "e": {"coulomb": 1.0, "coulombs": 1.0, "coul": 1.0},
    "boltzmann": {"joule/degC": 1.0, "joule/kelvin": 1.0, "joule/K": 1.0},
}
_KINETIC_ONLY = (Reaction, Flux, Conserve, Compartment, IndexedCompartment)

#: NEURON library calls Arbor's mechanisms have no counterpart for -> why, hint.
_NEURON_ONLY_CALLS = {
    "net_send": ("self-events", "Arbor's NET_RECEIVE cannot schedule events; drive the synapse "
                 "with spike sources"),
    "net_move": ("self-events", "Arbor's NET_RECEIVE cannot schedule events"),
    "net_event": ("spikes sent from a mechanism", "use Arbor's threshold detectors"),
}


def _neuron_only_error(name: str, pos: SourcePos) -> GradgenError:
    what, hint = _NEURON_ONLY_CALLS[name]
    return GradgenError(f"{name} ({what}) is not supported", pos=pos, hint=hint)


def _random_error(name: str, pos: SourcePos) -> GradgenError:
    return GradgenError(f"random numbers ({name}) are not supported: a stochastic mechanism has no "
                        "dV/dθ here", pos=pos, hint="drive noise from the simulator, or fix the random "
                        "values as parameters")


# Truth values; not sympy's Boolean, which every Symbol also is.
_LOGICAL = (Relational, BooleanFunction, BooleanAtom)

# name -> (number of arguments, SymPy constructor)
_BUILTINS: dict[str, tuple[int, Callable[..., sympy.Expr]]] = {
    "exp": (1, sympy.exp),
    "log": (1, sympy.log),
    "log10": (1, lambda x: sympy.log(x, 10)),
    "sqrt": (1, sympy.sqrt),
    "fabs": (1, fabs),  # real: its derivative is sign(x), not re/im
    "abs": (1, fabs),
    "pow": (2, sympy.Pow),
    "min": (2, sympy.Min),
    "max": (2, sympy.Max),
    "sin": (1, sympy.sin),
    "cos": (1, sympy.cos),
    "tan": (1, sympy.tan),
    "tanh": (1, sympy.tanh),
    "exprelr": (1, exprelr),
    "floor": (1, nfloor),  # modcc has none: printed as gradgen.nmodl.ir.floor_form
    "ceil": (1, lambda x: -nfloor(-x)),
    # modcc has no hyperbolic functions but tanh: their exponential forms
    "cosh": (1, lambda x: (sympy.exp(x) + sympy.exp(-x)) / 2),
    "sinh": (1, lambda x: (sympy.exp(x) - sympy.exp(-x)) / 2),
    # NEURON's flag of the fixed step that holds a given time (gradgen.nmodl.clock)
    "at_time": (1, at_time),
}

#: NEURON library calls that draw random numbers: a stochastic mechanism has no dV/dθ here.
_RANDOM = {"scop_random", "set_seed", "normrand", "exprand", "unirand", "erand", "poisrand",
           "scop_normrand", "scop_exprand", "scop_poisrand", "random_uniform", "random_normal",
           "nrn_random_pick"}

_RELATIONS = {
    "lt": sympy.StrictLessThan,
    "gt": sympy.StrictGreaterThan,
    "le": sympy.LessThan,
    "ge": sympy.GreaterThan,
    "eq": sympy.Eq,
    "ne": sympy.Ne,
}


@dataclass
class _Part:
    """One top-level item of the file, tagged with the Mechanism field it fills."""

    kind: str
    value: Any
    pos: SourcePos


@dataclass
class _Size:
    """The size of an array declaration, a number or a DEFINE's name (arrays.py reads it)."""

    text: str


@v_args(meta=True)
class _Builder(Transformer):
    """Lark tree -> IR pieces; rule names match nmodl.lark."""

    def __init__(self, filename: str, functions: dict[str, int], procedures: set[str]):
        super().__init__(visit_tokens=False)
        self.filename = filename
        self.functions = functions  # FUNCTION name -> number of arguments
        self.procedures = procedures

    # ------------------------------------------------------------ helpers
    def _pos(self, where: Meta | Token) -> SourcePos:
        return SourcePos(self.filename, where.line, where.column)

    def _value(self, expr: sympy.Basic, meta: Meta) -> sympy.Expr:
        """An operand that must be a number, not a comparison."""
        if isinstance(expr, _LOGICAL):
            raise GradgenError(
                "a comparison or logical expression is used as a number",
                pos=self._pos(meta),
                hint="comparisons belong in if (...) conditions",
            )
        return expr

    @staticmethod
    def _truth(expr: sympy.Basic) -> sympy.Basic:
        """A condition; a plain number means 'is not zero', as in C."""
        return expr if isinstance(expr, _LOGICAL) else sympy.Ne(expr, 0, evaluate=False)

    # ------------------------------------------------------------ expressions
    def number(self, meta: Meta, children: list) -> sympy.Expr:
        text = str(children[0])  # a trailing unit, as in (1 (degC)), does not scale it
        return sympy.Integer(int(text)) if text.isdigit() else sympy.Float(float(text))

    def var(self, meta: Meta, children: list) -> sympy.Symbol:
        return sympy.Symbol(str(children[0]))

    def indexed_var(self, meta: Meta, children: list) -> sympy.Expr:
        return ArrayElement(sympy.Symbol(str(children[0])), self._value(children[1], meta))

    def indexed_name(self, meta: Meta, children: list) -> Indexed:
        return Indexed(str(children[0]), self._value(children[1], meta))

    def derivative_var(self, meta: Meta, children: list) -> sympy.Symbol:
        return sympy.Symbol(f"{children[0]}'")  # lowering reads the derivative assigned before

    def call(self, meta: Meta, children: list) -> sympy.Expr:
        name, args = str(children[0]), [self._value(a, meta) for a in children[1:]]
        if name in self.functions:
            self._check_arity(name, self.functions[name], args, meta)
            return sympy.Function(name)(*args)
        if name in _BUILTINS:
            arity, make = _BUILTINS[name]
            self._check_arity(name, arity, args, meta)
            return make(*args)
        if name in _RANDOM:
            raise _random_error(name, self._pos(meta))
        if name in _NEURON_ONLY_CALLS:
            raise _neuron_only_error(name, self._pos(meta))
        if name in self.procedures:
            raise GradgenError(
                f"PROCEDURE {name} has no value and cannot be used in an expression",
                pos=self._pos(meta),
                hint=f"call it as a statement, {name}(...), or make it a FUNCTION",
            )
        raise GradgenError(
            f"unknown function {name}",
            pos=self._pos(meta),
            hint="define it with FUNCTION in this file; built-ins are "
            + ", ".join(sorted(_BUILTINS)),
        )

    def _check_arity(self, name: str, arity: int, args: list, meta: Meta) -> None:
        if len(args) != arity:
            raise GradgenError(
                f"{name} takes {arity} argument{'s' if arity != 1 else ''}, got {len(args)}",
                pos=self._pos(meta),
            )

    def add(self, meta: Meta, c: list) -> sympy.Expr:
        return self._value(c[0], meta) + self._value(c[1], meta)

    def sub(self, meta: Meta, c: list) -> sympy.Expr:
        return self._value(c[0], meta) - self._value(c[1], meta)

    def mul(self, meta: Meta, c: list) -> sympy.Expr:
        return self._value(c[0], meta) * self._value(c[1], meta)

    def div(self, meta: Meta, c: list) -> sympy.Expr:
        return self._value(c[0], meta) / self._value(c[1], meta)

    def pow(self, meta: Meta, c: list) -> sympy.Expr:
        return self._value(c[0], meta) ** self._value(c[1], meta)

    def neg(self, meta: Meta, c: list) -> sympy.Expr:
        return -self._value(c[0], meta)

    def _relation(self, kind: str, meta: Meta, c: list) -> sympy.Basic:
        lhs, rhs = self._value(c[0], meta), self._value(c[1], meta)
        return _RELATIONS[kind](lhs, rhs, evaluate=False)

    def lt(self, meta: Meta, c: list) -> sympy.Basic:
        return self._relation("lt", meta, c)

    def gt(self, meta: Meta, c: list) -> sympy.Basic:
        return self._relation("gt", meta, c)

    def le(self, meta: Meta, c: list) -> sympy.Basic:
        return self._relation("le", meta, c)

    def ge(self, meta: Meta, c: list) -> sympy.Basic:
        return self._relation("ge", meta, c)

    def eq(self, meta: Meta, c: list) -> sympy.Basic:
        return self._relation("eq", meta, c)

    def ne(self, meta: Meta, c: list) -> sympy.Basic:
        return self._relation("ne", meta, c)

    def and_op(self, meta: Meta, c: list) -> sympy.Basic:
        return sympy.And(self._truth(c[0]), self._truth(c[1]), evaluate=False)

    def or_op(self, meta: Meta, c: list) -> sympy.Basic:
        return sympy.Or(self._truth(c[0]), self._truth(c[1]), evaluate=False)

    def not_op(self, meta: Meta, c: list) -> sympy.Basic:
        return sympy.Not(self._truth(c[0]), evaluate=False)

    # ------------------------------------------------------------ statements
    def assign(self, meta: Meta, c: list) -> Assign:
        return Assign(str(c[0]), self._value(c[1], meta), self._pos(meta))

    def derivative_assign(self, meta: Meta, c: list) -> DerivativeAssign:
        return DerivativeAssign(str(c[0]), self._value(c[1], meta), self._pos(meta))

    def indexed_assign(self, meta: Meta, c: list) -> Assign:
        return Assign(Indexed(str(c[0]), self._value(c[1], meta)), self._value(c[2], meta), self._pos(meta))

    def indexed_derivative_assign(self, meta: Meta, c: list) -> DerivativeAssign:
        return DerivativeAssign(Indexed(str(c[0]), self._value(c[1], meta)), self._value(c[2], meta),
                                self._pos(meta))

    def from_loop(self, meta: Meta, c: list) -> Loop:
        step = self._value(c[3], meta) if len(c) == 5 else sympy.Integer(1)
        return Loop(str(c[0]), self._value(c[1], meta), self._value(c[2], meta), step, c[-1],
                    self._pos(meta))

    def linear_loop(self, meta: Meta, c: list) -> Loop:
        """FROM in a LINEAR block: its body is the statements after the bounds (no BY: 3 items)."""
        at = 4 if len(c) > 3 and isinstance(c[3], sympy.Basic) else 3
        step = self._value(c[3], meta) if at == 4 else sympy.Integer(1)
        return Loop(str(c[0]), self._value(c[1], meta), self._value(c[2], meta), step, c[at:],
                    self._pos(meta))

    def call_stmt(self, meta: Meta, c: list) -> Call | Assign | None:
        name = str(c[0])
        target = self._value(c[1], meta) if len(c) == 3 else None
        if name == "state_discontinuity" and isinstance(target, (sympy.Symbol, ArrayElement)):
            # NEURON's event-time assignment of a state (a plain assignment in a fixed step)
            name = target.name if isinstance(target, sympy.Symbol) else Indexed(target.args[0].name, target.args[1])
            return Assign(name, self._value(c[2], meta), self._pos(meta))
        if name in _RANDOM:
            raise _random_error(name, self._pos(meta))
        if name == "at_time" and name not in self.procedures and name not in self.functions:
            return None  # its flag dropped: CVODE's stop at the time, nothing in a fixed step
        if name in _NEURON_ONLY_CALLS and name not in self.procedures:
            raise _neuron_only_error(name, self._pos(meta))
        if name not in self.procedures and name not in self.functions:
            raise GradgenError(
                f"unknown PROCEDURE {name}",
                pos=self._pos(meta),
                hint="define it with PROCEDURE in this file",
            )
        return Call(name, [self._value(a, meta) for a in c[1:]], self._pos(meta))

    def solve(self, meta: Meta, c: list) -> Solve:
        if len(c) > 1 and isinstance(c[1], tuple):  # STEADYSTATE method
            return Solve(str(c[0]), c[1][1], self._pos(meta), steady_state=True)
        return Solve(str(c[0]), str(c[1]) if len(c) > 1 else None, self._pos(meta))

    def steadystate(self, meta: Meta, c: list) -> tuple[str, str]:
        return ("steadystate", str(c[0]))

    def table(self, meta: Meta, c: list) -> None:
        return None  # TABLE only speeds up NEURON's rate evaluation; dropped

    def reactant(self, meta: Meta, c: list) -> tuple[int, str | Indexed]:
        name = c[-1] if isinstance(c[-1], Indexed) else str(c[-1])
        if len(c) == 1:
            return (1, name)
        if not str(c[0]).isdigit():
            raise GradgenError(f"stoichiometric coefficient {c[0]} is not a whole number",
                               pos=self._pos(meta))
        return (int(str(c[0])), name)

    def reactants(self, meta: Meta, c: list) -> list[tuple[int, str]]:
        return c

    def reaction(self, meta: Meta, c: list) -> Reaction:
        return Reaction(c[0], c[1], self._value(c[2], meta), self._value(c[3], meta), self._pos(meta))

    def flux(self, meta: Meta, c: list) -> Flux:
        name = c[0] if isinstance(c[0], Indexed) else str(c[0])
        return Flux(name, self._value(c[1], meta), self._pos(meta))

    def conserve(self, meta: Meta, c: list) -> Conserve:
        return Conserve(c[0], self._value(c[1], meta), self._pos(meta))

    def compartment(self, meta: Meta, c: list) -> Compartment | IndexedCompartment:
        at = next(i for i, item in enumerate(c) if not isinstance(item, Token))
        names = [str(n) for n in c[at + 1:]]
        if at:  # COMPARTMENT i, volume(i) {arrays}: one volume per element
            return IndexedCompartment(str(c[0]), self._value(c[at], meta), names, self._pos(meta))
        return Compartment(self._value(c[at], meta), names, self._pos(meta))

    def array_size(self, meta: Meta, c: list) -> _Size:
        return _Size(str(c[0]))

    def local_name(self, meta: Meta, c: list) -> Token | ArrayDeclaration:
        if len(c) == 1:
            return c[0]
        return ArrayDeclaration(Variable(str(c[0]), self._pos(c[0])), c[1].text)

    def local(self, meta: Meta, c: list) -> Local:
        return Local([n if isinstance(n, ArrayDeclaration) else str(n) for n in c], self._pos(meta))

    def if_stmt(self, meta: Meta, c: list) -> If:
        orelse = c[2] if len(c) > 2 else []
        return If(self._truth(c[0]), c[1], orelse if isinstance(orelse, list) else [orelse],
                  self._pos(meta))

    def body(self, meta: Meta, c: list) -> list[Statement]:
        return [stmt for stmt in c if stmt is not None]

    # ------------------------------------------------------------ code blocks
    def _block(self, kind: str, name: str, meta: Meta, body: list[Statement],
               args: list[str] | None = None) -> _Part:
        for stmt in walk_all(body):
            if kind != "derivatives" and isinstance(stmt, DerivativeAssign):
                raise GradgenError(
                    f"{stmt.state}' = ... is only allowed in a DERIVATIVE block",
                    pos=stmt.pos,
                )
            if kind != "kinetics" and isinstance(stmt, _KINETIC_ONLY):
                word = {Reaction: "~ reactions", Flux: "~ fluxes", Conserve: "CONSERVE statements",
                        Compartment: "COMPARTMENT statements",
                        IndexedCompartment: "COMPARTMENT statements"}[type(stmt)]
                raise GradgenError(f"{word} are only allowed in a KINETIC block", pos=stmt.pos)
        block = Block(name, body, self._pos(meta), args or [])
        return _Part(kind, block, block.pos)

    def initial_block(self, meta: Meta, c: list) -> _Part:
        return self._block("initial", "INITIAL", meta, c[0])

    def breakpoint_block(self, meta: Meta, c: list) -> _Part:
        return self._block("breakpoint", "BREAKPOINT", meta, c[0])

    def after_solve_block(self, meta: Meta, c: list) -> _Part:
        return self._block("after_solve_block", "AFTER SOLVE", meta, c[0])

    def derivative_block(self, meta: Meta, c: list) -> _Part:
        return self._block("derivatives", str(c[0]), meta, c[1])

    def kinetic_block(self, meta: Meta, c: list) -> _Part:
        return self._block("kinetics", str(c[0]), meta, c[1])

    def linear_block(self, meta: Meta, c: list) -> _Part:
        return self._block("linears", str(c[0]), meta, c[1:])

    def linear_eq(self, meta: Meta, c: list) -> LinearEquation:
        return LinearEquation(self._value(c[0], meta), self._value(c[1], meta), self._pos(meta))

    def net_receive_block(self, meta: Meta, c: list) -> _Part:
        args = [str(a) for a in c if isinstance(a, Token)]
        if any(isinstance(a, SourcePos) for a in c):
            raise GradgenError("INITIAL inside NET_RECEIVE (state kept per connection) is not supported",
                               pos=next(a for a in c if isinstance(a, SourcePos)),
                               hint="Arbor's NET_RECEIVE takes one weight; keep the state in the mechanism")
        body = [stmt for stmt in c if isinstance(stmt, Statement)]
        return self._block("net_receive", "NET_RECEIVE", meta, body, args)

    def net_initial(self, meta: Meta, c: list) -> SourcePos:
        return self._pos(meta)  # refused by net_receive_block

    def post_event_block(self, meta: Meta, c: list) -> _Part:
        args = [str(a) for a in c[:-1] if isinstance(a, Token)]
        return self._block("post_event", "POST_EVENT", meta, c[-1], args)

    def white_noise_block(self, meta: Meta, c: list) -> _Part:
        return _Part("white_noise", [str(n) for n in c], self._pos(meta))

    def independent_block(self, meta: Meta, c: list) -> None:
        return None  # the independent variable is always t

    def define(self, meta: Meta, c: list) -> _Part:
        return _Part("constants", [Variable(str(c[0]), self._pos(c[0]), value=float(c[1]))],
                     self._pos(meta))

    def function_block(self, meta: Meta, c: list) -> _Part:
        args = [a for a in c[1:-1] if isinstance(a, Token)]  # drop the return unit
        return self._block("functions", str(c[0]), meta, c[-1], [str(a) for a in args])

    def procedure_block(self, meta: Meta, c: list) -> _Part:
        args = [a for a in c[1:-1] if isinstance(a, Token)]
        return self._block("procedures", str(c[0]), meta, c[-1], [str(a) for a in args])

    def param(self, meta: Meta, c: list) -> Token:
        return c[0]  # the unit of an argument is documentation only

    # ------------------------------------------------------------ declarations
    def unit(self, meta: Meta, c: list) -> str:
        return str(c[0]).strip() if c else ""

    def signed_number(self, meta: Meta, c: list) -> float:
        return float(c[0])

    def negative_number(self, meta: Meta, c: list) -> float:
        return -float(c[0])

    def limits(self, meta: Meta, c: list) -> tuple[float, float]:
        return (c[0], c[1])

    def from_to(self, meta: Meta, c: list) -> None:
        return None

    def _variable(self, c: list) -> Variable | ArrayDeclaration:
        """NAME followed by optional size, value (float), unit (str) and limits (tuple)."""
        var = Variable(str(c[0]), self._pos(c[0]))
        size = next((item.text for item in c[1:] if isinstance(item, _Size)), None)
        for item in c[1:]:
            if item is None or isinstance(item, _Size):
                continue
            if isinstance(item, float):
                var.value = item
            elif isinstance(item, tuple):
                var.limits = item
            else:
                var.unit = item
        return var if size is None else ArrayDeclaration(var, size)

    def param_decl(self, meta: Meta, c: list) -> Variable:
        return self._variable(c)

    def const_decl(self, meta: Meta, c: list) -> Variable:
        return self._variable(c)

    def var_decl(self, meta: Meta, c: list) -> Variable:
        return self._variable(c)

    def parameter_block(self, meta: Meta, c: list) -> _Part:
        return _Part("parameters", c, self._pos(meta))

    def constant_block(self, meta: Meta, c: list) -> _Part:
        return _Part("constants", c, self._pos(meta))

    def assigned_block(self, meta: Meta, c: list) -> _Part:
        return _Part("assigned", c, self._pos(meta))

    def top_local(self, meta: Meta, c: list) -> _Part:
        names = [n if isinstance(n, ArrayDeclaration) else Variable(str(n), self._pos(n)) for n in c]
        return _Part("assigned", names, self._pos(meta))

    def state_block(self, meta: Meta, c: list) -> _Part:
        return _Part("states", c, self._pos(meta))

    def unit_alias(self, meta: Meta, c: list) -> tuple[str, str]:
        return (c[0], c[1])

    def unit_constant(self, meta: Meta, c: list) -> Variable:
        """``FARADAY = (faraday) (coulomb)`` or ``x = 2 (mV)``: a named constant."""
        value = c[1]
        if isinstance(value, str):
            if value not in UNIT_CONSTANTS:
                raise GradgenError(
                    f"unknown physical constant ({value}) in UNITS",
                    pos=self._pos(meta),
                    hint="known: " + ", ".join(f"({n})" for n in UNIT_CONSTANTS)
                    + f"; or declare CONSTANT {{ {c[0]} = value }}",
                )
            value = UNIT_CONSTANTS[value] / self._constant_scale(value, c[2] if len(c) > 2 else "", meta)
        return Variable(str(c[0]), self._pos(c[0]), value=float(value))

    def _constant_scale(self, constant: str, unit: str, meta: Meta) -> float:
        """The size of ``unit`` (e.g. ``10000 coulomb``) in the constant's own unit."""
        units = _CONSTANT_UNITS.get(constant)
        if units is None or not unit:
            return 1.0
        number, _, name = unit.partition(" ") if unit[:1].isdigit() else ("1", "", unit)
        try:
            factor = float(number)
        except ValueError:
            factor = None
        if factor is None or name.strip() not in units:
            raise GradgenError(f"({constant}) expressed in ({unit}): unit not understood", pos=self._pos(meta),
                               hint="use one of " + ", ".join(f"({u})" for u in units))
        return factor * units[name.strip()]

    def units_block(self, meta: Meta, c: list) -> list[_Part]:
        aliases = dict(item for item in c if isinstance(item, tuple))
        constants = [item for item in c if isinstance(item, Variable)]
        return [_Part("units", aliases, self._pos(meta)), _Part("constants", constants, self._pos(meta))]

    # ------------------------------------------------------------ NEURON block
    def suffix(self, meta: Meta, c: list) -> _Part:
        return _Part("density", str(c[0]), self._pos(c[0]))

    def point_process(self, meta: Meta, c: list) -> _Part:
        return _Part("point", str(c[0]), self._pos(c[0]))

    def junction_process(self, meta: Meta, c: list) -> _Part:
        return _Part("junction", str(c[0]), self._pos(c[0]))

    def voltage_process(self, meta: Meta, c: list) -> _Part:
        return _Part("voltage", str(c[0]), self._pos(c[0]))

    def ion_read(self, meta: Meta, c: list) -> tuple[str, list[str]]:
        return ("read", [str(t) for t in c])

    def ion_write(self, meta: Meta, c: list) -> tuple[str, list[str]]:
        return ("write", [str(t) for t in c])

    def ion_valence(self, meta: Meta, c: list) -> tuple[str, int]:
        if not c[0].is_integer():
            raise GradgenError(f"VALENCE must be an integer, got {c[0]:g}", pos=self._pos(meta))
        return ("valence", int(c[0]))

    def ion_valence_name(self, meta: Meta, c: list) -> tuple[str, str]:
        return ("valence_name", str(c[0]))

    def useion(self, meta: Meta, c: list) -> _Part:
        ion = IonUse(str(c[0]), [], [], self._pos(meta))
        for key, value in c[1:]:
            setattr(ion, key, value)
        return _Part("ions", ion, ion.pos)

    def nonspecific(self, meta: Meta, c: list) -> _Part:
        return _Part("nonspecific_currents", [str(t) for t in c], self._pos(meta))

    def electrode(self, meta: Meta, c: list) -> _Part:
        return _Part("electrode_currents", [str(t) for t in c], self._pos(meta))

    def range_names(self, meta: Meta, c: list) -> _Part:
        return _Part("range_names", [str(t) for t in c], self._pos(meta))

    def global_names(self, meta: Meta, c: list) -> _Part:
        return _Part("global_names", [str(t) for t in c], self._pos(meta))

    def threadsafe(self, meta: Meta, c: list) -> None:
        return None  # a NEURON threading promise; nothing to translate

    def neuron_block(self, meta: Meta, c: list) -> list[_Part]:
        return [part for part in c if part is not None]


def _declared_calls(tree: Tree) -> tuple[dict[str, int], set[str]]:
    """FUNCTION names with their argument counts, and PROCEDURE names, anywhere in the file."""
    functions = {
        str(t.children[0]): sum(1 for a in t.children if isinstance(a, Tree) and a.data == "param")
        for t in tree.find_data("function_block")
    }
    procedures = {str(t.children[0]) for t in tree.find_data("procedure_block")}
    return functions, procedures


def _transform(tree: Tree, filename: str, functions: dict[str, int],
               procedures: set[str]) -> list[_Part]:
    try:
        items = _Builder(filename, functions, procedures).transform(tree).children
    except VisitError as err:  # lark wraps what a callback raises
        if isinstance(err.orig_exc, GradgenError):
            raise err.orig_exc from None
        raise
    parts = [p for item in items for p in (item if isinstance(item, list) else [item])]
    return [p for p in parts if p is not None]


def _duplicate(what: str, pos: SourcePos) -> GradgenError:
    return GradgenError(f"{what} is defined twice", pos=pos, hint="remove or rename one of them")


def build_mechanism(tree: Tree, text: str, title: str | None, filename: str,
                    fragments: Sequence[tuple[Tree, str]] = ()) -> Mechanism:
    """Assemble the Mechanism of one file from its parse tree; check whole-file rules.

    ``fragments`` are the parse trees of INCLUDEd files with their names; their blocks
    join the mechanism as if written in place.
    """
    trees = [(tree, filename), *fragments]
    functions: dict[str, int] = {}
    procedures: set[str] = set()
    for each, _ in trees:
        more_functions, more_procedures = _declared_calls(each)
        functions.update(more_functions)
        procedures |= more_procedures
    parts = [part for each, name in trees for part in _transform(each, name, functions, procedures)]
    kinds = [p for p in parts if p.kind in ("density", "point", "junction", "voltage")]
    if not kinds:
        raise GradgenError(
            "the mechanism has no SUFFIX or POINT_PROCESS",
            pos=SourcePos(filename, 1, 1),
            hint="name it in the NEURON block, e.g. NEURON { SUFFIX hh }",
        )
    if len(kinds) > 1:
        raise GradgenError(
            f"a second SUFFIX or POINT_PROCESS ({kinds[1].value})",
            pos=kinds[1].pos,
            hint="a file defines exactly one mechanism",
        )
    mech = Mechanism(kinds[0].value, kinds[0].kind, Path(filename), text, kinds[0].pos, title)
    for part in parts:
        _add(mech, part)
    unroll(mech)
    _check(mech)
    set_outside(mech)
    held_between_events(mech)
    assigned_in_derivatives(mech)
    held_by_solved_procedures(mech)
    hoist_branch_solves(mech)
    hoist_after_solve_without_currents(mech)
    append_after_solve_block(mech)
    return mech


def _add(mech: Mechanism, part: _Part) -> None:
    kind, value = part.kind, part.value
    if kind in ("density", "point", "junction", "voltage"):
        return
    if kind == "initial" and mech.initial is not None:  # NEURON runs both, in file order
        mech.initial.body.extend(value.body)
    elif kind in ("initial", "breakpoint", "net_receive", "post_event", "after_solve_block"):
        if getattr(mech, kind) is not None:
            raise _duplicate(kind.upper(), part.pos)
        setattr(mech, kind, value)
    elif kind in ("functions", "procedures", "derivatives", "kinetics", "linears"):
        tables = (mech.functions, mech.procedures, mech.derivatives, mech.kinetics, mech.linears)
        if any(value.name in table for table in tables):
            raise _duplicate(value.name, part.pos)
        getattr(mech, kind)[value.name] = value
    elif kind == "units":
        mech.units.update(value)
    elif kind == "ions":
        mech.ions.append(value)
    elif kind == "electrode_currents":  # a nonspecific current of the opposite sign
        mech.electrode_currents.extend(value)
        mech.nonspecific_currents.extend(value)
    else:
        getattr(mech, kind).extend(value)


def _check(mech: Mechanism) -> None:
    """Rules that need the whole file: SOLVE targets exist, only STATEs get a derivative."""
    states = {s.name for s in mech.states}
    # Arbor integrates a written ion variable like a STATE (``xd' = …``); lowering decides
    states |= {var for ion in mech.ions for var in ion.write}
    blocks = [b for b in (mech.initial, mech.breakpoint) if b is not None]
    blocks += [*mech.functions.values(), *mech.procedures.values(), *mech.derivatives.values(),
               *mech.kinetics.values(), *mech.linears.values()]
    solvable = {**mech.derivatives, **mech.procedures, **mech.kinetics, **mech.linears}
    for block in blocks:
        for stmt in walk(block.body):
            if isinstance(stmt, Solve) and stmt.block not in solvable:
                raise GradgenError(
                    f"SOLVE {stmt.block}: no DERIVATIVE, KINETIC, LINEAR or PROCEDURE {stmt.block} in this file",
                    pos=stmt.pos,
                )
            if isinstance(stmt, DerivativeAssign) and stmt.state not in states:
                raise GradgenError(
                    f"{stmt.state}' = ...: {stmt.state} is not a STATE",
                    pos=stmt.pos,
                    hint=f"declare it in STATE {{ {stmt.state} }}",
                )
