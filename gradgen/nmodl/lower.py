"""Lowering: execute a mechanism's blocks symbolically into closed-form expressions.

FUNCTIONs and PROCEDUREs are inlined, if/else becomes ``Piecewise``, LOCALs disappear,
KINETIC reactions become the ODEs of mass action (COMPARTMENT volumes divide them), a
LINEAR block its equations (expressions that the new states make zero).
What remains is what the derivation pass needs: the membrane currents I(v, s, p, ions),
the state derivatives ds/dt, and the initial states s0(v, p). Every free symbol of those
is accounted for (voltage, state, parameter, ion variable, temperature); anything else is
reported with the position of the statement that introduced it.

This module decides which block runs in which frame and what passes between them, as NEURON
runs them; :mod:`.block_executor` executes the statements, :mod:`.solved_blocks` finds what a
SOLVE names, and the result is a :class:`~gradgen.nmodl.lowered.LoweredMechanism`.
"""
from __future__ import annotations

from pathlib import Path

import sympy

from gradgen.errors import GradgenError, SourcePos
from gradgen.protocol import last_current
from gradgen.nmodl.assigned_roles import assigned_outside_initial, event_blocks, read_before_assigned
from gradgen.nmodl.block_executor import BlockExecutor, Frame
from gradgen.nmodl.exprelr_guards import guards_to_exprelr
from gradgen.nmodl.initial_parameters import parameters_set_in_initial
from gradgen.nmodl.neuron_reads import hold_initial_values, rates_read_early, read_own_currents, zero_base_powers
from gradgen.nmodl.clock import CLOCK, CLOCK_PROCEDURE, DT, T_CURRENT, T_EVENT, T_STATE, resolve
from gradgen.nmodl.ir import Assign, Block, Mechanism, walk
from gradgen.nmodl.lowered import BUILTIN_NAMES, FREE_BUILTINS, TIME, V, V_PEER, Current, LoweredMechanism
from gradgen.nmodl.solved_blocks import initial_solve_equations, solved_block

#: NET_RECEIVE's implicit argument: which self-event arrived (0: one from a NetCon).
EVENT_FLAG = "flag"


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
    executor = BlockExecutor(mech, constants)

    # (the clock of gradgen's own translation is the time, never a constant: gradgen.nmodl.clock)
    assigned = {a.name for a in mech.assigned} - BUILTIN_NAMES - set(ion_reads) - set(current_ions) - {CLOCK.name}
    initial = Frame({TIME.name: sympy.Integer(0)})  # NEURON's finitialize runs INITIAL at t = 0
    initial_equations: dict[str, sympy.Expr] = {}
    if mech.initial is not None:
        # an ASSIGNED value INITIAL reads before anything set it (m = minf, minf set by
        # BREAKPOINT) is NEURON's start value of an ASSIGNED, 0, there and only there
        early, set_there = read_before_assigned(mech, mech.initial)
        unset = (early & assigned) - set_there
        initial.values.update({name: sympy.Integer(0) for name in unset})
        executor.run(mech.initial.body, initial)
        initial_equations = initial_solve_equations(executor, mech, initial)
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

    breakpoint = Frame({**carried, TIME.name: T_CURRENT})
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
    solved = Frame({})
    for solve in breakpoint.solves:
        frame = Frame({**carried, **before_solve, TIME.name: T_STATE})
        block, solve_method = solved_block(mech, solve)
        executor.run(block.body, frame)
        after_solve = _passed(frame.values, assigned, state_symbols - {V})
        if any(carried.get(n) is not value for n, value in after_solve.items()):
            breakpoint = Frame({**carried, **after_solve, TIME.name: T_CURRENT})
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
        after = Frame({**carried, **_passed(breakpoint.values, assigned, state_symbols)})
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


def _event_jumps(executor: BlockExecutor, block: Block | None, mech: Mechanism,
                 carried: dict[str, sympy.Expr]) -> dict[str, sympy.Expr]:
    """NET_RECEIVE or POST_EVENT as closed forms: each state it assigns -> its value after the event."""
    if block is None:
        return {}
    # NEURON's ``flag`` is 0 for every event a NetCon delivers; only self-events (net_send,
    # refused for Arbor) carry another
    frame = Frame({**carried, TIME.name: T_EVENT, EVENT_FLAG: sympy.Integer(0)})
    executor.run(block.body, frame)
    states = {s.name for s in mech.states}
    jumps = {name: value for name, value in frame.values.items() if name in states}
    for name, value in jumps.items():
        if V in value.free_symbols:
            raise GradgenError(f"{block.name} sets '{name}' from the voltage v", block.pos,
                               hint="event jumps that depend on v are not supported")
    return jumps


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
