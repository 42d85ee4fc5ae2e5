"""Lowering: execute a mechanism's blocks symbolically into closed-form expressions.

FUNCTIONs and PROCEDUREs are inlined, if/else becomes ``Piecewise``, LOCALs disappear,
KINETIC reactions become the ODEs of mass action (COMPARTMENT volumes divide them), a
LINEAR block its equations (expressions that the new states make zero).
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
from gradgen.protocol import last_current
from gradgen.nmodl.assigned_roles import assigned_outside_initial, event_blocks, read_before_assigned
from gradgen.nmodl.unassigned import function_result
from gradgen.nmodl.initial_parameters import parameters_set_in_initial
from gradgen.nmodl.branch_conditions import fold_condition
from gradgen.nmodl.cnexp_coefficient import written_coefficient
from gradgen.nmodl.neuron_reads import hold_initial_values, rates_read_early, read_own_currents, zero_base_powers
from gradgen.nmodl.clock import CLOCK, CLOCK_PROCEDURE, DT, T_CURRENT, T_EVENT, T_STATE, reads_time, resolve
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
    Variable,
    exprelr,
    fabs,
    walk,
)

#: The integration METHODs of a DERIVATIVE block that gradgen reads. Which discrete map each
#: becomes is the simulator's choice (:data:`gradgen.sensitivity.discretize.MODCC_METHODS`).
DERIVATIVE_METHODS = ("cnexp", "derivimplicit", "euler", "runge", "sparse")

#: Names the simulator provides; NEURON-style files also declare some as PARAMETER/ASSIGNED.
BUILTIN_NAMES = {"v", "celsius", "dt", "t", "area", "diam"}
#: Built-ins a lowered expression may still contain (read-only inputs; time ``t`` is
#: unavailable in Arbor: it becomes the mechanism's clock, gradgen.nmodl.clock). diam [µm]
#: and area [µm²] are those of the CV.
FREE_BUILTINS = {"v", "celsius", "diam", "area"}

V = sympy.Symbol("v")
#: The peer CV's voltage, which a JUNCTION_PROCESS reads (V^n in its current).
V_PEER = sympy.Symbol("v_peer")
TIME = sympy.Symbol("t")
#: NEURON's names, in a KINETIC block, of the last reaction's forward and backward fluxes.
REACTION_FLUXES = ("f_flux", "b_flux")
#: NET_RECEIVE's implicit argument: which self-event arrived (0: one from a NetCon).
EVENT_FLAG = "flag"


@dataclass
class Current:
    """One membrane current the mechanism writes: an ion current or a nonspecific one."""

    name: str
    ion: str | None
    expr: sympy.Expr
    #: the conductance modcc derives, where it is not ∂expr/∂v: modcc differentiates the
    #: assignment as written, taking LOCALs and FUNCTION calls as independent of v
    conductance: sympy.Expr | None = None


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
    #: a DERIVATIVE METHOD as written, "sparse" (KINETIC), "linear" or "explicit" (a PROCEDURE)
    solve_method: str | None = None
    conserved: list[tuple[dict[str, int], sympy.Expr]] = field(default_factory=list)
    equations: list[sympy.Expr] = field(default_factory=list)  # LINEAR: each = 0 at V^{n+1}
    concentration_writes: dict[str, str] = field(default_factory=dict)  # state -> ion ("cai" -> "ca")
    events: dict[str, sympy.Expr] = field(default_factory=dict)  # state -> value after NET_RECEIVE
    event_args: list[str] = field(default_factory=list)  # NET_RECEIVE arguments ("weight")
    #: state -> value after a spike of the cell (POST_EVENT; plasticity traces and weights)
    post_events: dict[str, sympy.Expr] = field(default_factory=dict)
    #: VOLTAGE_PROCESS: the voltage it sets, F(v, p), applied after the voltage solve
    voltage: sympy.Expr | None = None
    #: States INITIAL sets by a linear solve (STEADYSTATE of a KINETIC block, SOLVE of a
    #: LINEAR block): each expression is 0 at the initial states. Kept as equations, not
    #: solved here: a closed form of a 12-state scheme outgrows memory. Their ``initial``
    #: entries are the states' own symbols.
    initial_equations: dict[str, sympy.Expr] = field(default_factory=dict)
    #: SOLVE of a PROCEDURE: state -> its value after one step, from the old states, v and dt
    explicit: dict[str, sympy.Expr] = field(default_factory=dict)
    #: STATEs a solved DERIVATIVE block assigns (``m = minf``, ``cai = ca``): state -> the
    #: value assigned, a function of the states and of v; which state values (old or new)
    #: it reads is the SOLVE method's (:func:`gradgen.sensitivity.discretize.state_update`)
    state_assignments: dict[str, sympy.Expr] = field(default_factory=dict)
    #: the solved block's steps in order: ``"s'"`` integrates s, ``"s"`` assigns it (its last assignment)
    solve_order: list[str] = field(default_factory=list)
    #: STATEs an if/else that held the SOLVE assigns (``if (cai < 0) { cai = 0 } else { SOLVE … }``):
    #: NEURON runs it in nrn_state after the update, on the new states
    after_solve: dict[str, sympy.Expr] = field(default_factory=dict)
    #: STATEs BREAKPOINT assigns (``if (cai > ceiling) { cai = ceiling }``, ``g = gbar*m*m*h``):
    #: nrn_cur sets them, so the next state update starts from these values
    breakpoint_states: dict[str, sympy.Expr] = field(default_factory=dict)
    #: cnexp: state -> a of its ODE s' = a·s + b as NEURON reads it, where the ODE depends on
    #: its state through values the block assigned before it (they are held fixed:
    #: :mod:`gradgen.nmodl.cnexp_coefficient`); a function of the step's states and v
    cnexp_coefficients: dict[str, sympy.Expr] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.mechanism.name

    def initial_closed_form(self) -> dict[str, sympy.Expr]:
        """``initial`` with the linearly solved states in closed form (small systems only)."""
        if not self.initial_equations:
            return dict(self.initial)
        symbols = [sympy.Symbol(n) for n in self.initial_equations]
        equations = sympy.Matrix(list(self.initial_equations.values()))
        solution = equations.jacobian(symbols).LUsolve(-equations.xreplace({s: 0 for s in symbols}))
        return {**self.initial, **{s.name: value for s, value in zip(symbols, solution)}}

    def parameter_names(self) -> list[str]:
        return [p.name for p in self.parameters]

    def total_current(self) -> sympy.Expr:
        return sympy.Add(*[c.expr for c in self.currents])

    def keeps_clock(self) -> bool:
        """Whether the mechanism reads the time t, and so keeps a clock (gradgen.nmodl.clock)."""
        exprs = [*(c.expr for c in self.currents), *(c.conductance for c in self.currents if c.conductance is not None),
                 *self.derivatives.values(), *self.explicit.values(), *self.equations, *self.events.values(),
                 *self.post_events.values(), *([self.voltage] if self.voltage is not None else [])]
        return reads_time(exprs)


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
class _Frame:
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

    def copy(self) -> "_Frame":
        return _Frame(dict(self.values), dict(self.derivatives), list(self.solves),
                      list(self.conserved), dict(self.volumes), list(self.equations), order=list(self.order))


class _Executor:
    """Symbolic interpreter for NMODL statements."""

    def __init__(self, mech: Mechanism, constants: dict[str, sympy.Expr]):
        self.mech = mech
        self.constants = constants
        self.call_depth = 0
        self.currents: set[str] = set()  # names whose modcc conductance is tracked
        self.warned: set[str] = set()  # FUNCTIONs already reported (gradgen.nmodl.unassigned)

    # -- expressions

    def evaluate(self, expr: sympy.Basic, frame: _Frame, pos: SourcePos) -> sympy.Basic:
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
                        caller: _Frame) -> sympy.Basic:
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

    def _modcc_conductance(self, stmt: Assign, frame: _Frame) -> None:
        """Record modcc's conductance of a current assignment where it differs from ∂i/∂v:
        only the v written in the statement itself counts (not inside LOCALs or calls)."""
        explicit = self.evaluate(_mark_explicit_v(stmt.expr), frame, stmt.pos)
        frame.conductances.pop(stmt.target, None)
        if V in explicit.free_symbols:  # v also enters through a LOCAL or a call
            frame.conductances[stmt.target] = sympy.diff(explicit, EXPLICIT_V).subs(EXPLICIT_V, V)

    def _add_rate(self, state: str, rate: sympy.Expr, frame: _Frame, pos: SourcePos) -> None:
        if state not in {s.name for s in self.mech.states}:
            raise GradgenError(f"'{state}' in a reaction is not a STATE", pos,
                               hint=f"declare it in STATE {{ {state} }}")
        frame.derivatives[state] = frame.derivatives.get(state, sympy.Integer(0)) + rate

    def _react(self, stmt: Reaction, frame: _Frame) -> None:
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

    def _branch(self, stmt: If, frame: _Frame) -> None:
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

    def _call_procedure(self, stmt: Call, frame: _Frame) -> None:
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


def _refuse_events(mech: Mechanism) -> None:
    """Constructs that parse but have no lowering (and so no gradient) yet."""
    if mech.white_noise:
        raise GradgenError("WHITE_NOISE (stochastic states) cannot be converted", mech.pos,
                           hint="sensitivities of a stochastic mechanism are not defined here")


def lower(mech: Mechanism) -> LoweredMechanism:
    """Lower a parsed mechanism to closed forms (see the module docstring)."""
    _refuse_events(mech)
    constants = {c.name: sympy.Float(c.value) for c in mech.constants if c.value is not None}
    states = [s.name for s in mech.states]
    ion_reads, current_ions, concentration_writes = _ion_tables(mech)
    # NEURON-dialect files also list built-ins and ion variables (v, celsius, ena) as PARAMETER.
    parameters = [p for p in mech.parameters
                  if p.name not in BUILTIN_NAMES and p.name not in ion_reads and p.name not in current_ions]
    executor = _Executor(mech, constants)

    # (the clock of gradgen's own translation is the time, never a constant: gradgen.nmodl.clock)
    assigned = {a.name for a in mech.assigned} - BUILTIN_NAMES - set(ion_reads) - set(current_ions) - {CLOCK.name}
    initial = _Frame({TIME.name: sympy.Integer(0)})  # NEURON's finitialize runs INITIAL at t = 0
    initial_equations: dict[str, sympy.Expr] = {}
    if mech.initial is not None:
        # an ASSIGNED value INITIAL reads before anything set it (m = minf, minf set by
        # BREAKPOINT) is NEURON's start value of an ASSIGNED, 0, there and only there
        early, set_there = read_before_assigned(mech, mech.initial)
        unset = (early & assigned) - set_there
        initial.values.update({name: sympy.Integer(0) for name in unset})
        executor.run(mech.initial.body, initial)
        initial_equations = _initial_solves(executor, mech, initial)
        for name in unset:
            initial.values.pop(name, None)
    # ASSIGNED values fixed at INITIAL (e.g. a q10 factor) are constants for the other blocks.
    state_symbols = {sympy.Symbol(s) for s in states} | {V}
    carried = {}
    # not one an event changes (t0 = t in NET_RECEIVE): it is fixed only until the first event
    changed_by_events = {stmt.target for block in event_blocks(mech)
                         for stmt in walk(block.body) if isinstance(stmt, Assign)}
    frozen: dict[str, sympy.Expr] = {}  # INITIAL's value of v: NEURON keeps the one at V^0
    only_initial = assigned - assigned_outside_initial(mech)
    for name in assigned - changed_by_events:
        value = initial.values.get(name)
        if value is not None and not (value.free_symbols & state_symbols):
            carried[name] = value
        elif value is not None and name in only_initial and not (value.free_symbols & (state_symbols - {V})):
            frozen[name] = value
            carried[name] = sympy.Symbol(name)
    carried.update(parameters_set_in_initial(mech, parameters, initial.values, state_symbols))

    breakpoint = _Frame({**carried, TIME.name: T_CURRENT})
    if mech.breakpoint is None and (current_ions or states or mech.kind == "voltage"):
        raise GradgenError("the mechanism has no BREAKPOINT block", mech.pos)
    executor.currents = set(current_ions)
    # without one (a holder of RANGE values such as a spine scale factor) nothing is computed
    executor.run(mech.breakpoint.body if mech.breakpoint else [], breakpoint)
    executor.currents = set()
    voltage = _voltage_process(mech, breakpoint.values, states, current_ions)
    voltage = None if voltage is None else resolve(voltage, "current")

    derivatives: dict[str, sympy.Expr] = {}
    solve_method = None
    conserved: list[tuple[dict[str, int], sympy.Expr]] = []
    equations: list[sympy.Expr] = []
    explicit: dict[str, sympy.Expr] = {}
    state_assignments: dict[str, sympy.Expr] = {}
    solve_order: list[str] = []
    # a translation's clock update (gradgen.nmodl.clock): the gradient code advances its own
    breakpoint.solves = [s for s in breakpoint.solves if s.block != CLOCK_PROCEDURE]
    if len(breakpoint.solves) > 1:
        raise GradgenError("more than one SOLVE in BREAKPOINT is not supported",
                           breakpoint.solves[1].pos, hint="merge the blocks into one")
    # ASSIGNED values passed between the blocks as NEURON runs them (nrn_cur, nrn_state): the
    # SOLVEd block sees what BREAKPOINT computed from neither v nor a state (rates(cai) in
    # BREAKPOINT), BREAKPOINT what the SOLVEd block computed from no state (minf from
    # rates(v): the last state update ran at the same v)
    before_solve = _passed(breakpoint.values, assigned, state_symbols)
    solved = _Frame({})
    for solve in breakpoint.solves:
        frame = _Frame({**carried, **before_solve, TIME.name: T_STATE})
        block, solve_method = _solved_block(mech, solve)
        executor.run(block.body, frame)
        after_solve = _passed(frame.values, assigned, state_symbols - {V})
        if any(carried.get(n) is not value for n, value in after_solve.items()):
            breakpoint = _Frame({**carried, **after_solve, TIME.name: T_CURRENT})
            executor.currents = set(current_ions)
            executor.run(mech.breakpoint.body, breakpoint)
            executor.currents = set()
        for name, volume in frame.volumes.items():
            if name in frame.derivatives:
                frame.derivatives[name] = frame.derivatives[name] / volume
        if solve_method == "derivimplicit":
            rates_read_early(frame.derivatives)
        derivatives.update(frame.derivatives)
        conserved, equations, solved = frame.conserved, frame.equations, frame
        if solve_method == "explicit" and frame.derivatives:
            raise GradgenError(f"the ODEs of '{solve.block}' are SOLVEd without METHOD", solve.pos,
                               hint="add METHOD cnexp (or sparse for coupled ODEs)")
        if solve_method == "explicit":  # the procedure's assignments, in order, from the old states
            explicit = {s: frame.values.get(s, sympy.Symbol(s)) for s in states}
        elif frame.derivatives:
            state_assignments = {s: frame.values[s] for s in states if s in frame.values}
            last = {n: i for i, n in enumerate(frame.order) if n in state_assignments}
            solve_order = [n for i, n in enumerate(frame.order)
                           if (n.endswith("'") and n[:-1] in frame.derivatives) or last.get(n) == i]

    # STATEs BREAKPOINT assigns (g = gbar*m*m*h): nrn_cur sets them before the next update reads them
    breakpoint_states = {s: breakpoint.values[s] for s in states if s in breakpoint.values} if breakpoint.solves else {}
    after_solve: dict[str, sympy.Expr] = {}
    if mech.after_solve:  # an if/else that held the SOLVE: nrn_state runs it after the update
        after = _Frame({**carried, **_passed(breakpoint.values, assigned, state_symbols)})
        executor.run(mech.after_solve, after)
        after_solve = {s: after.values[s] for s in states if s in after.values}
    currents = []
    for name, ion in current_ions.items():
        if name in breakpoint.values:
            conductance = breakpoint.conductances.get(name)
            currents.append(Current(name, ion, resolve(breakpoint.values[name], "current"),
                                    None if conductance is None else resolve(conductance, "current")))
        elif name in solved.values:
            # assigned only in the SOLVEd block (after the states' update, at the new v): NEURON's
            # nrn_cur reads the value the last nrn_state left, which is the same closed form, and
            # its numerical conductance of a value BREAKPOINT never changes is 0
            currents.append(Current(name, ion, resolve(solved.values[name], "solved current"), sympy.Integer(0)))
        else:
            raise GradgenError(f"the current '{name}' is declared but never assigned in BREAKPOINT",
                               mech.breakpoint.pos)
    for cur in currents:
        if cur.name in mech.electrode_currents:  # injected (inward positive): the membrane current is -i
            cur.expr = -cur.expr
            cur.conductance = None if cur.conductance is None else -cur.conductance

    init_states = {s: initial.values.get(s, _start_value(s, concentration_writes)) for s in states}
    states = read_own_currents(mech, states, currents, derivatives, state_assignments, after_solve, init_states)
    own_currents = {sympy.Symbol(c.name): sympy.Symbol(last_current(c.name)) for c in currents
                    if last_current(c.name) in states}  # read as read_own_currents reads them
    # an ion current INITIAL reads (cai = -phi*ica/beta, ModelDB 139421 capr) is 0 there: Arbor
    # zeroes the currents before its second INITIAL pass, NEURON's first run has none yet
    unset_currents = {sympy.Symbol(n): sympy.Integer(0) for n, ion in ion_reads.items() if n == f"i{ion}"}
    init_states = {s: e.xreplace(unset_currents) for s, e in init_states.items()}
    for cur in currents:
        cur.expr = guards_to_exprelr(cur.expr)
        if cur.conductance is not None:
            cur.conductance = guards_to_exprelr(cur.conductance)
        elif any(p.has(V) for p in cur.expr.atoms(sympy.Piecewise)):
            # an if/else with v in it: NEURON's numerical conductance is the slope of the
            # branch taken; written out, as modcc would take the if/else's LOCAL as constant
            cur.conductance = sympy.diff(cur.expr, V)
    derivatives = {s: guards_to_exprelr(resolve(e, "state")) for s, e in derivatives.items()}
    # cnexp where the ODE reads its state through values assigned before it: NEURON's a
    cnexp_coefficients = {s: guards_to_exprelr(resolve(a.xreplace(own_currents), "state"))
                          for s, a in solved.coefficients.items() if solve_method == "cnexp" and s in derivatives}
    if derivatives:  # a STATE nothing reads or changes (NEURON keeps it constant) stays constant
        used = {sym.name for e in [*derivatives.values(), *(c.expr for c in currents), *init_states.values(),
                                   *equations, *initial_equations.values()] for sym in e.free_symbols}
        for state in states:
            if state not in derivatives and state not in used and state not in state_assignments \
                    and state not in after_solve and state not in breakpoint_states:
                derivatives[state] = sympy.Integer(0)
    init_states = {s: zero_base_powers(guards_to_exprelr(e)) for s, e in init_states.items()}
    equations = [guards_to_exprelr(resolve(e, "state")) for e in equations]
    initial_equations = {s: guards_to_exprelr(e) for s, e in initial_equations.items()}
    explicit = {s: guards_to_exprelr(resolve(e, "state")) for s, e in explicit.items()}
    state_assignments = {s: guards_to_exprelr(resolve(e, "state")) for s, e in state_assignments.items()}
    after_solve = {s: guards_to_exprelr(resolve(e, "state")) for s, e in after_solve.items()}
    breakpoint_states = {s: guards_to_exprelr(resolve(e, "current")) for s, e in breakpoint_states.items()}
    events = {s: guards_to_exprelr(resolve(e, "event"))
              for s, e in _event_jumps(executor, mech.net_receive, mech, carried).items()}
    post_events = {s: guards_to_exprelr(resolve(e, "event"))
                   for s, e in _event_jumps(executor, mech.post_event, mech, carried).items()}
    states = hold_initial_values(frozen, states, solve_method, init_states, derivatives, explicit,
                                 [*derivatives.values(), *(c.expr for c in currents), *events.values(),
                                  *post_events.values(), *explicit.values(), *state_assignments.values()])
    lowered = LoweredMechanism(mech, parameters, states, currents, derivatives, init_states,
                               ion_reads, solve_method, conserved, equations, concentration_writes,
                               events, mech.net_receive.args if mech.net_receive else [], post_events,
                               voltage, initial_equations, explicit, state_assignments, solve_order,
                               after_solve, breakpoint_states, cnexp_coefficients)
    _check_symbols(lowered)
    if voltage is not None and lowered.keeps_clock():  # its gradient version has no state update
        raise GradgenError("a VOLTAGE_PROCESS that reads the time t is not supported", mech.pos,
                           hint="clamp to a value that does not depend on t")
    return lowered


#: NEURON's start values of the ion concentrations (cai0_ca_ion, ...; 1 mM for other ions),
#: which Arbor's default ion properties share.
NEURON_START_CONCENTRATIONS = {"nai": 10.0, "nao": 140.0, "ki": 54.4, "ko": 2.5, "cai": 5e-5, "cao": 2.0}


def _start_value(state: str, concentration_writes: dict[str, str]) -> sympy.Expr:
    """A STATE's value where INITIAL does not set it: 0, or, for a concentration the
    mechanism writes, the ion's start value, which NEURON copies into the state first."""
    if state in concentration_writes:
        return sympy.Float(NEURON_START_CONCENTRATIONS.get(state, 1.0))
    return sympy.Integer(0)


def _voltage_process(mech: Mechanism, values: dict[str, sympy.Expr], states: list[str],
                     currents: dict[str, str | None]) -> sympy.Expr | None:
    """A VOLTAGE_PROCESS's BREAKPOINT as the voltage it sets (a clamp or a limit of v).

    Only the stateless form Arbor's catalogue uses (``v = F(v, p)``, no current, no ion)."""
    if mech.kind != "voltage":
        if V.name in values:
            raise GradgenError("only a VOLTAGE_PROCESS may assign v", mech.breakpoint.pos,
                               hint="declare the mechanism as VOLTAGE_PROCESS")
        return None
    if states or currents or mech.ions or mech.net_receive is not None:
        raise GradgenError("a VOLTAGE_PROCESS with states, currents, ions or events is not supported",
                           mech.pos, hint="a voltage process that only sets v (v = F(v, p)) is")
    if V.name not in values:
        raise GradgenError("the VOLTAGE_PROCESS never assigns v", mech.breakpoint.pos,
                           hint="assign the voltage it imposes, e.g. v = v0")
    return values[V.name]


def _passed(values: dict[str, sympy.Expr], assigned: set[str], excluded: set[sympy.Symbol]
            ) -> dict[str, sympy.Expr]:
    """The ASSIGNED values of a block that another block may read: none of ``excluded``."""
    return {n: e for n, e in values.items() if n in assigned and not (e.free_symbols & excluded)}


def _event_jumps(executor: _Executor, block: Block | None, mech: Mechanism,
                 carried: dict[str, sympy.Expr]) -> dict[str, sympy.Expr]:
    """NET_RECEIVE or POST_EVENT as closed forms: each state it assigns -> its value after the event."""
    if block is None:
        return {}
    # NEURON's ``flag`` is 0 for every event a NetCon delivers; only self-events (net_send,
    # refused for Arbor) carry another
    frame = _Frame({**carried, TIME.name: T_EVENT, EVENT_FLAG: sympy.Integer(0)})
    executor.run(block.body, frame)
    states = {s.name for s in mech.states}
    jumps = {name: value for name, value in frame.values.items() if name in states}
    for name, value in jumps.items():
        if V in value.free_symbols:
            raise GradgenError(f"{block.name} sets '{name}' from the voltage v", block.pos,
                               hint="event jumps that depend on v are not supported")
    return jumps


def _exprelr_form(piecewise: sympy.Piecewise) -> sympy.Expr:
    """``c·exprelr(u)`` if ``piecewise`` is a guarded c·u/(exp(u) − 1) (NEURON's vtrap), else itself.

    The guard must be |w| < eps (eps ≤ 0.01) and its branch the limit c or the first-order
    series c·(1 − u/2); exprelr is exact there, smooth, and has no if/else for modcc or the
    derivatives.
    """
    if len(piecewise.args) != 2 or piecewise.args[1].cond is not sympy.true:
        return piecewise
    guard = piecewise.args[0].cond  # must be |w| < eps, eps small: the guard of a 0/0
    small = isinstance(guard, (sympy.StrictLessThan, sympy.LessThan)) and guard.rhs.is_Number
    if not (small and isinstance(guard.lhs, fabs) and 0 < guard.rhs <= 1e-2):
        return piecewise
    guarded, quotient = piecewise.args[0].expr, piecewise.args[1].expr
    exps = list(quotient.atoms(sympy.exp))
    if len(exps) != 1:
        return piecewise
    u = exps[0].args[0]
    scale = sympy.simplify(quotient * (exps[0] - 1) / u)
    if scale.has(sympy.exp):
        return piecewise
    if not any(sympy.simplify(guarded - series) == 0 for series in (scale, scale * (1 - u / 2))):
        return piecewise
    return scale * exprelr(u)


def guards_to_exprelr(expr: sympy.Expr) -> sympy.Expr:
    """Replace every vtrap-style guarded quotient in ``expr`` by exprelr (see _exprelr_form)."""
    if not expr.has(sympy.Piecewise):
        return expr
    return expr.replace(lambda e: isinstance(e, sympy.Piecewise), _exprelr_form)


def _solved_block(mech: Mechanism, solve: Solve) -> tuple[Block, str]:
    """The DERIVATIVE, KINETIC or LINEAR block a BREAKPOINT SOLVE names, and its method."""
    if solve.block in mech.linears:
        if solve.method is not None:
            raise GradgenError(f"LINEAR {solve.block} with METHOD {solve.method}", solve.pos,
                               hint="write SOLVE without METHOD for a LINEAR block")
        return mech.linears[solve.block], "linear"
    if solve.block in mech.kinetics:
        if solve.method not in (None, "sparse"):
            raise GradgenError(f"KINETIC {solve.block} with METHOD {solve.method}", solve.pos,
                               hint="Arbor solves kinetic schemes with METHOD sparse")
        return mech.kinetics[solve.block], "sparse"
    if solve.block in mech.procedures:
        # NEURON and modcc both run a SOLVEd PROCEDURE once per step in the state update
        # (nrn_state, advance_state), at V^{n+1}: an explicit discrete map of the states.
        # METHOD after_cvode is the same under NEURON's fixed step (measured on NEURON 9: the
        # PROCEDURE runs once a step and reads v at V^{n+1}); only CVODE calls it elsewhere.
        if solve.method not in (None, "after_cvode"):
            raise GradgenError(f"PROCEDURE {solve.block} solved with METHOD {solve.method}", solve.pos,
                               hint="a PROCEDURE updates its states itself: write SOLVE without METHOD")
        return mech.procedures[solve.block], "explicit"
    block = mech.derivatives.get(solve.block)
    if block is not None and solve.method is None:
        return block, "explicit"  # modcc pastes a METHOD-less block into advance_state
    if block is None:
        raise GradgenError(f"SOLVE names '{solve.block}', which is no DERIVATIVE, KINETIC, LINEAR "
                           "block or PROCEDURE", solve.pos)
    if solve.method not in DERIVATIVE_METHODS:
        raise GradgenError(
            f"SOLVE ... METHOD {solve.method or '(none)'} is not supported", solve.pos,
            hint="DERIVATIVE blocks are solved with " + ", ".join(DERIVATIVE_METHODS))
    return block, solve.method


def _initial_solves(executor: _Executor, mech: Mechanism, initial: _Frame) -> dict[str, sympy.Expr]:
    """SOLVEs in INITIAL: ``SOLVE kin STEADYSTATE sparse`` (ds/dt = 0 and the CONSERVE laws)
    or ``SOLVE lin`` of a LINEAR block; state -> equation that is 0 at its initial value."""
    out: dict[str, sympy.Expr] = {}
    for solve in initial.solves:
        frame = initial.copy()
        frame.derivatives, frame.conserved, frame.equations = {}, [], []
        if solve.block in mech.linears and not solve.steady_state:
            executor.run(mech.linears[solve.block].body, frame)
            names = [s.name for s in mech.states if any(e.has(sympy.Symbol(s.name)) for e in frame.equations)]
            if len(names) != len(frame.equations):
                raise GradgenError(f"the LINEAR block '{solve.block}' has {len(frame.equations)} "
                                   f"equation(s) for {len(names)} state(s)", solve.pos,
                                   hint="write one ~ equation per STATE it determines")
            equations = list(frame.equations)
        elif solve.steady_state and solve.block in mech.kinetics:
            executor.run(mech.kinetics[solve.block].body, frame)
            names = list(frame.derivatives)
            equations = [frame.derivatives[n] for n in names]
            for weights, total in frame.conserved:
                # A conservation law replaces the balance of its last state (that row is redundant).
                row = max(names.index(n) for n in weights)
                equations[row] = sympy.Add(*[c * sympy.Symbol(n) for n, c in weights.items()]) - total
        else:
            raise GradgenError("SOLVE in INITIAL is supported for a LINEAR block or as STEADYSTATE "
                               "of a KINETIC block", solve.pos, hint="assign the initial states directly")
        symbols = [sympy.Symbol(n) for n in names]
        if any(sympy.diff(e, s).has(*symbols) for e in equations for s in symbols):
            raise GradgenError(f"the initial states solved by '{solve.block}' are not a linear system",
                               solve.pos, hint="assign the initial states directly")
        for name, equation in zip(names, equations):
            out[name] = equation
            initial.values[name] = sympy.Symbol(name)
    return out


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
    for expr in low.equations:
        checks.append(("LINEAR equation", expr, mech.pos))
    for state, expr in low.initial_equations.items():
        checks.append((f"initial equation of '{state}'", expr, mech.initial.pos))
    for state, expr in low.events.items():
        checks.append((f"NET_RECEIVE update of '{state}'", expr, mech.net_receive.pos))
    for state, expr in low.post_events.items():
        checks.append((f"POST_EVENT update of '{state}'", expr, mech.post_event.pos))
    if low.voltage is not None:
        checks.append(("voltage set by the VOLTAGE_PROCESS", low.voltage, mech.breakpoint.pos))
    for state, expr in low.explicit.items():
        checks.append((f"update of '{state}' in the SOLVEd PROCEDURE", expr, mech.pos))
    for state, expr in low.state_assignments.items():
        checks.append((f"value assigned to '{state}' in the solved block", expr, mech.pos))
    for state, expr in [*low.after_solve.items(), *low.breakpoint_states.items()]:
        checks.append((f"value BREAKPOINT assigns to '{state}'", expr, mech.breakpoint.pos))
    for what, expr, pos in checks:
        allowed = known | set(low.event_args) | {DT.name, CLOCK.name}  # the step, the clock
        if mech.kind == "junction" and what.startswith("current"):
            allowed |= {V_PEER.name}  # a junction's current reads the peer's voltage
        unknown = sorted(s.name for s in expr.free_symbols if s.name not in allowed)
        if TIME.name in unknown:
            raise GradgenError(f"the {what} depends on the time t: t is not available to mechanisms "
                               "in Arbor", pos, hint="drive time-dependent input from the simulator "
                               "(a current clamp or spike source)")
        if unknown:
            raise GradgenError(
                f"the {what} depends on {', '.join(unknown)}, which is neither a parameter, a "
                "state, an ion variable nor set before use", pos,
                hint="assign it before use, or declare it as PARAMETER")
    for state in low.states:
        jumps_only = state in low.events or state in low.post_events  # constant between events
        if low.solve_method not in (None, "linear", "explicit") and state not in low.derivatives \
                and not jumps_only and state not in low.state_assignments and state not in low.after_solve \
                and state not in low.breakpoint_states:
            raise GradgenError(f"STATE '{state}' has no derivative in the solved block", mech.pos)


def lower_file(path: Path | str) -> LoweredMechanism:
    """Parse and lower one `.mod` file; refuse what would not convert correctly."""
    from gradgen.nmodl.convertible import check_convertible
    from gradgen.nmodl.parser import parse_file

    lowered = lower(parse_file(path))
    check_convertible(lowered)
    return lowered
