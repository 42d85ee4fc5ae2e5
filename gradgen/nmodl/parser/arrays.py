"""NMODL arrays of constant size and FROM loops, unrolled into scalars while parsing.

``ca[4]`` in STATE becomes the four STATEs ``ca_0 … ca_3`` (names from
:func:`gradgen.protocol.array_element`), ``FROM i = 0 TO 2 { … }`` three copies of its body
with ``i`` replaced by 0, 1, 2, and every ``ca[i + 1]`` the scalar of its now constant index.
Lowering, derivation and emission then see only scalars: an unrolled mechanism is the
hand-written scalar one, term for term.

The builder leaves four placeholders in the IR, which :func:`unroll` replaces:
:class:`ArrayElement` (a read ``x[e]`` in an expression), :class:`Indexed` (``x[e]`` where a
name is assigned or reacts), :class:`Loop` (a FROM loop) and :class:`ArrayDeclaration`
(``x[N]`` in a declaration or LOCAL). Sizes are a number or a DEFINE/CONSTANT; a PARAMETER
array's default (which NEURON does not accept) is every element's. An index and a loop bound
must be constant once the loop variables are known. A loop bound may also name
a PARAMETER the file never assigns (``FROM k = 1 TO mexp``): NEURON reads it at run time,
so gradgen fixes it at its default and makes it a CONSTANT, which Arbor then refuses to set,
instead of unrolling silently for one value of a parameter that could still change.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import sympy

from gradgen import protocol
from gradgen.errors import GradgenError, SourcePos
from gradgen.nmodl.ir import (
    Assign,
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
    Variable,
)

#: The most elements one array may unroll into, and the most statements one loop may: the
#: largest array among the ModelDB corpus's translatable files has 20 elements (a 20-shell
#: diffusion model with 13 species, 262 STATEs); ten thousand-element stimulus tables
#: (116094) are data for NEURON's run time, not state of a differentiable mechanism.
MAX_ELEMENTS = 1000
MAX_UNROLLED = 100_000
_INDEX_HINT = ("arrays are unrolled into scalars: an index must be a number, a DEFINE or CONSTANT, "
               "or a FROM loop variable")


class ArrayElement(sympy.Function):
    """``x[index]`` read in an expression, until :func:`unroll` names its scalar."""

    nargs = 2


@dataclass
class Indexed:
    """``x[index]`` where a name is expected: an assignment's target, a reactant, a flux."""

    name: str
    index: sympy.Expr

    def __str__(self) -> str:  # as written, in messages
        return f"{self.name}[{self.index}]"


@dataclass
class Loop:
    """``FROM var = start TO stop BY step { body }``."""

    var: str
    start: sympy.Expr
    stop: sympy.Expr
    step: sympy.Expr
    body: list[Statement]
    pos: SourcePos


@dataclass
class IndexedCompartment:
    """``COMPARTMENT i, volume(i) {x y}``: element k of each array x has volume(k)."""

    var: str
    volume: sympy.Expr
    names: list[str]
    pos: SourcePos


@dataclass
class ArrayDeclaration:
    """``x[size]`` in PARAMETER, ASSIGNED, STATE or LOCAL (a number or a DEFINE's name)."""

    variable: Variable
    size: str


def walk_all(body: list) -> Iterator:
    """Every statement of a body, also inside if/else and loops (before unrolling)."""
    for stmt in body:
        yield stmt
        if isinstance(stmt, If):
            yield from walk_all(stmt.then)
            yield from walk_all(stmt.orelse)
        elif isinstance(stmt, Loop):
            yield from walk_all(stmt.body)


def _declarations(mech: Mechanism) -> list[list]:
    return [mech.parameters, mech.assigned, mech.states]


def has_arrays(mech: Mechanism) -> bool:
    """Whether anything in the file needs unrolling (most files: nothing, and nothing is done)."""
    if any(isinstance(v, ArrayDeclaration) for table in _declarations(mech) for v in table):
        return True
    for block in mech.blocks():
        for stmt in walk_all(block.body):
            if isinstance(stmt, (Loop, IndexedCompartment)) or (
                    isinstance(stmt, Local) and any(isinstance(n, ArrayDeclaration) for n in stmt.names)):
                return True
            if any(isinstance(x, sympy.Basic) and x.has(ArrayElement) or isinstance(x, Indexed)
                   for x in _fields(stmt)):
                return True
    return False


def _fields(stmt: Statement) -> Iterator:
    """The values of a statement's fields, lists and (coefficient, name) pairs opened."""
    for f in dataclasses.fields(stmt):
        value = getattr(stmt, f.name)
        for item in value if isinstance(value, list) else [value]:
            yield from (item if isinstance(item, tuple) else (item,))


def _names_in_use(mech: Mechanism) -> set[str]:
    """Every identifier of the file: declared, assigned or read anywhere."""
    names = {v.variable.name if isinstance(v, ArrayDeclaration) else v.name
             for table in [*_declarations(mech), mech.constants] for v in table}
    names |= {n for ion in mech.ions for n in [ion.name, *ion.read, *ion.write]}
    names |= set(mech.nonspecific_currents) | set(mech.range_names) | set(mech.global_names)
    for block in mech.blocks():
        names |= {block.name, *block.args}
        for stmt in walk_all(block.body):
            for item in _fields(stmt):
                if isinstance(item, str):
                    names.add(item)
                elif isinstance(item, sympy.Basic):
                    names |= {s.name for s in item.free_symbols}
                    names |= {f.func.__name__ for f in item.atoms(sympy.Function)}
                elif isinstance(item, ArrayDeclaration):
                    names.add(item.variable.name)
    return names


@dataclass
class _Scope:
    """What an expression may name while unrolling: arrays, loop variables, fixed values."""

    arrays: dict[str, list[str]]
    bindings: dict[str, int]
    fixed: dict[str, float]  # DEFINEs and CONSTANTs
    loop_bounds: dict[str, Variable]  # PARAMETERs that may bound a loop (fixed on use)
    frozen: dict[str, Variable]

    def inner(self, **changes) -> _Scope:
        return dataclasses.replace(self, **changes)


class _Unroller:
    def __init__(self, mech: Mechanism):
        self.mech = mech
        self.taken = _names_in_use(mech)

    # ------------------------------------------------------------ names
    def elements(self, decl: ArrayDeclaration, fixed: dict[str, float]) -> list[str]:
        """The scalars of one array: ``x_0 …``, with more underscores where one is taken."""
        var = decl.variable
        size = _integer(sympy.Integer(int(decl.size)) if decl.size.isdigit() else
                        sympy.Float(fixed[decl.size]) if decl.size in fixed else None)
        if size is None:
            raise GradgenError(f"the size of array {var.name}[{decl.size}] is not a number, a DEFINE "
                               "or a CONSTANT", pos=var.pos, hint=f"declare DEFINE {decl.size} <n>")
        if not 1 <= size <= MAX_ELEMENTS:
            raise GradgenError(f"array {var.name}[{size}] cannot be unrolled (1 to {MAX_ELEMENTS} "
                               "elements)", pos=var.pos,
                               hint="arrays become one scalar per element in the generated mechanism")
        underscores = 1
        while any(protocol.array_element(var.name, k, underscores) in self.taken for k in range(size)):
            underscores += 1
        names = [protocol.array_element(var.name, k, underscores) for k in range(size)]
        self.taken |= set(names)
        return names

    # ------------------------------------------------------------ expressions
    def constant(self, expr: sympy.Expr, scope: _Scope, pos: SourcePos, what: str,
                 bound: bool = False) -> int:
        """The integer value of an index or loop bound; PARAMETERs only in loop bounds."""
        values = {sympy.Symbol(n): sympy.Integer(k) for n, k in scope.bindings.items()}
        values |= {sympy.Symbol(n): sympy.Float(x) for n, x in scope.fixed.items()}
        expr = self.expression(expr, scope, pos).xreplace(values)
        if bound:
            for sym in expr.free_symbols & {sympy.Symbol(n) for n in scope.loop_bounds}:
                scope.frozen[sym.name] = scope.loop_bounds[sym.name]
            expr = expr.xreplace({sympy.Symbol(n): sympy.Float(v.value) for n, v in scope.frozen.items()})
        value = _integer(expr)
        if value is None:
            raise GradgenError(f"{what} is not a whole-number constant ({expr})", pos=pos, hint=_INDEX_HINT)
        return value

    def element(self, name: str, index: sympy.Expr, scope: _Scope, pos: SourcePos) -> str:
        if name not in scope.arrays:
            raise GradgenError(f"{name}[…]: {name} is not declared as an array", pos=pos,
                               hint=f"declare it with a size, e.g. ASSIGNED {{ {name}[4] }}")
        k = self.constant(index, scope, pos, f"the index of {name}[{index}]")
        elements = scope.arrays[name]
        if not 0 <= k < len(elements):
            raise GradgenError(f"index {k} of {name}[…] is outside the array (size {len(elements)})",
                               pos=pos, hint="indices run from 0 to the size minus one")
        return elements[k]

    def expression(self, expr: sympy.Basic, scope: _Scope, pos: SourcePos) -> sympy.Basic:
        """Loop variables as numbers, ``x[k]`` as its scalar; a bare array name is refused."""
        bare = _bare_names(expr) & set(scope.arrays)
        if bare:
            name = min(bare)
            raise GradgenError(f"array {name} is used without an index", pos=pos,
                               hint=f"name one element, e.g. {name}[0]")
        expr = expr.xreplace({sympy.Symbol(n): sympy.Integer(k) for n, k in scope.bindings.items()})
        if not expr.has(ArrayElement):
            return expr
        return expr.replace(lambda e: isinstance(e, ArrayElement),
                            lambda e: sympy.Symbol(self.element(e.args[0].name, e.args[1], scope, pos)))

    def target(self, name: str | Indexed, scope: _Scope, pos: SourcePos) -> str:
        if isinstance(name, Indexed):
            return self.element(name.name, name.index, scope, pos)
        if name in scope.arrays:
            raise GradgenError(f"array {name} is assigned without an index", pos=pos,
                               hint=f"assign one element, e.g. {name}[0] = …")
        if name in scope.bindings:
            raise GradgenError(f"the loop variable {name} is assigned inside its FROM loop", pos=pos,
                               hint="use another variable")
        return name

    # ------------------------------------------------------------ statements
    def body(self, body: list, scope: _Scope) -> list[Statement]:
        out: list[Statement] = []
        for stmt in body:
            out += self.statement(stmt, scope)
        return out

    def statement(self, stmt, scope: _Scope) -> list[Statement]:
        pos = getattr(stmt, "pos", None)

        def expr(e: sympy.Basic) -> sympy.Basic:
            return self.expression(e, scope, pos)

        def side(terms: list[tuple[int, str | Indexed]]) -> list[tuple[int, str]]:
            return [(c, self.target(n, scope, pos)) for c, n in terms]

        if isinstance(stmt, Loop):
            return self.loop(stmt, scope)
        if isinstance(stmt, IndexedCompartment):
            return self.compartment(stmt, scope)
        if isinstance(stmt, Local):
            names = []
            for n in stmt.names:
                if isinstance(n, ArrayDeclaration):
                    scope.arrays[n.variable.name] = self.elements(n, scope.fixed)
                    names += scope.arrays[n.variable.name]
                else:
                    scope.arrays.pop(n, None)  # a scalar LOCAL shadows a file-level array
                    names.append(n)
            return [Local(names, pos)]
        if isinstance(stmt, Assign):
            return [Assign(self.target(stmt.target, scope, pos), expr(stmt.expr), pos)]
        if isinstance(stmt, DerivativeAssign):
            return [DerivativeAssign(self.target(stmt.state, scope, pos), expr(stmt.expr), pos)]
        if isinstance(stmt, If):
            return [If(expr(stmt.cond), self.body(stmt.then, scope), self.body(stmt.orelse, scope), pos)]
        if isinstance(stmt, Call):
            return [Call(stmt.name, [expr(a) for a in stmt.args], pos)]
        if isinstance(stmt, Reaction):
            return [Reaction(side(stmt.left), side(stmt.right), expr(stmt.forward), expr(stmt.backward), pos)]
        if isinstance(stmt, Flux):
            return [Flux(self.target(stmt.state, scope, pos), expr(stmt.expr), pos)]
        if isinstance(stmt, Conserve):
            return [Conserve(side(stmt.terms), expr(stmt.total), pos)]
        if isinstance(stmt, Compartment):
            names = [m for n in stmt.states for m in scope.arrays.get(n, [n])]  # whole arrays
            return [Compartment(expr(stmt.volume), names, pos)]
        if isinstance(stmt, LinearEquation):
            return [LinearEquation(expr(stmt.lhs), expr(stmt.rhs), pos)]
        if isinstance(stmt, Solve):
            return [stmt]
        raise TypeError(stmt)  # pragma: no cover - the builder makes no other statements

    def loop(self, loop: Loop, scope: _Scope) -> list[Statement]:
        what = f"a bound of FROM {loop.var} = …"
        start = self.constant(loop.start, scope, loop.pos, what, bound=True)
        stop = self.constant(loop.stop, scope, loop.pos, what, bound=True)
        step = self.constant(loop.step, scope, loop.pos, f"the step of FROM {loop.var} = …", bound=True)
        if step <= 0:
            raise GradgenError(f"FROM {loop.var} = … BY {step}: the step must be positive", pos=loop.pos)
        out: list[Statement] = []
        for k in range(start, stop + 1, step):
            out += self.body(loop.body, scope.inner(bindings={**scope.bindings, loop.var: k}))
            if len(out) > MAX_UNROLLED:
                raise GradgenError(f"FROM {loop.var} = {start} TO {stop} unrolls into more than "
                                   f"{MAX_UNROLLED} statements", pos=loop.pos,
                                   hint="gradgen unrolls loops; keep them to the size of a kinetic scheme")
        return out

    def compartment(self, stmt: IndexedCompartment, scope: _Scope) -> list[Statement]:
        """One COMPARTMENT per element; scalars named there are not STATEs of the scheme's
        arrays (an ion's outside concentration, a fixed pool) and have no volume to take."""
        out: list[Statement] = []
        for name in stmt.names:
            if name not in scope.arrays:
                if name in {s.name for s in self.mech.states}:
                    raise GradgenError(f"COMPARTMENT {stmt.var}, … names the scalar STATE {name}",
                                       pos=stmt.pos, hint=f"give {name} a COMPARTMENT of its own")
                continue
            for k, element in enumerate(scope.arrays[name]):
                inner = scope.inner(bindings={**scope.bindings, stmt.var: k})
                out.append(Compartment(self.expression(stmt.volume, inner, stmt.pos), [element], stmt.pos))
        return out


def _bare_names(expr: sympy.Basic) -> set[str]:
    """Names read as scalars: not the array named by an :class:`ArrayElement`."""
    if isinstance(expr, sympy.Symbol):
        return {expr.name}
    if isinstance(expr, ArrayElement):
        return _bare_names(expr.args[1])
    return set().union(*(_bare_names(a) for a in expr.args))


def _integer(expr: sympy.Basic | None) -> int | None:
    if expr is None or not expr.is_number or not expr.is_real:
        return None
    value = float(expr)
    return int(value) if value.is_integer() else None


def _expand(table: list, unroller: _Unroller, fixed: dict[str, float]) -> tuple[list[Variable], dict[str, list[str]]]:
    out: list[Variable] = []
    arrays: dict[str, list[str]] = {}
    for v in table:
        if not isinstance(v, ArrayDeclaration):
            out.append(v)
            continue
        arrays[v.variable.name] = unroller.elements(v, fixed)
        out += [dataclasses.replace(v.variable, name=n) for n in arrays[v.variable.name]]
    return out, arrays


def unroll(mech: Mechanism) -> None:
    """Replace ``mech``'s arrays and FROM loops by scalars, in place (nothing to do: no change)."""
    if not has_arrays(mech):
        return
    unroller = _Unroller(mech)
    fixed = {c.name: c.value for c in mech.constants if c.value is not None}
    arrays: dict[str, list[str]] = {}
    for table in ("parameters", "assigned", "states"):
        expanded, more = _expand(getattr(mech, table), unroller, fixed)
        setattr(mech, table, expanded)
        arrays |= more
    mech.arrays = dict(arrays)
    assigned = {stmt.target.name if isinstance(stmt.target, Indexed) else stmt.target
                for block in mech.blocks() for stmt in walk_all(block.body) if isinstance(stmt, Assign)}
    loop_bounds = {p.name: p for p in mech.parameters if p.value is not None and p.name not in assigned}
    frozen: dict[str, Variable] = {}
    for block in mech.blocks():
        scope = _Scope(dict(arrays), {}, fixed, loop_bounds, frozen)
        for arg in block.args:
            scope.arrays.pop(arg, None)
        block.body = unroller.body(block.body, scope)
    for names in (mech.range_names, mech.global_names):
        names[:] = [m for n in names if n not in frozen for m in arrays.get(n, [n])]
    mech.parameters = [p for p in mech.parameters if p.name not in frozen]
    mech.constants += frozen.values()


__all__ = ["ArrayDeclaration", "ArrayElement", "Indexed", "IndexedCompartment", "Loop", "has_arrays",
           "unroll", "walk_all"]
