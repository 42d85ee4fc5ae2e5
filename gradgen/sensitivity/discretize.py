"""The discrete state update the simulator applies, as symbolic maps.

modcc's ``cnexp`` treats each ODE s' = a·s + b on its own, with a and b evaluated at the
new voltage, and applies the Padé(1,1) step

    s ← (s + b/a)·(2 + a·dt)/(2 − a·dt) − b/a,

state after state in the order of the DERIVATIVE block, overwriting s in place (so a later
equation sees the earlier states' new values). Differentiating this map, not the ODE, makes
the sensitivities those of the simulated system.

modcc's ``sparse`` (KINETIC schemes, and NEURON's derivimplicit here) is one backward-Euler
step of the whole system, s⁺ = s + dt·f(s⁺, V^{n+1}), solved as a linear system (by three
Newton iterations where f is nonlinear in the states); modcc replaces one balance row by
each CONSERVE law, which for a scheme that conserves that quantity gives the same s⁺
(up to rounding), so the update here is the plain backward-Euler solve. Such updates stay
systems (:class:`LinearStep`), solved by elimination in the generated code.

A LINEAR block is solved in advance_state too: its states become the solution of the
block's equations at V^{n+1}, independent of their old values.

A SOLVEd PROCEDURE (NEURON's explicit updates, ``m = m + mexp*(minf - m)``) is run as
written once per step by both simulators (nrn_state, advance_state), at V^{n+1}: its map
is the lowered procedure itself.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Mapping

import sympy

from gradgen.errors import GradgenError
from gradgen.nmodl.expression_graph import subexpressions, xreplace_shared
from gradgen.nmodl.lowered import LoweredMechanism
from gradgen.sensitivity.dag_diff import Differentiator

DT = sympy.Symbol("dt")


def cnexp_update(low: LoweredMechanism) -> dict[str, sympy.Expr]:
    """modcc's ``cnexp``: the Padé(1,1) step of each s' = a·s + b (a, b at V^{n+1}),

        s ← (s + b/a)·(2 + a·dt)/(2 − a·dt) − b/a,

    state after state in the DERIVATIVE block's order, in place."""
    return _per_state(low, lambda s, a, b: (s + b / a) * (2 + a * DT) / (2 - a * DT) - b / a)


def exponential_update(low: LoweredMechanism) -> dict[str, sympy.Expr]:
    """NEURON's ``cnexp``: the exact exponential step of each s' = a·s + b (a, b at V^{n+1}),

        s ← −b/a + (s + b/a)·exp(a·dt),

    state after state in the DERIVATIVE block's order, in place (as :func:`cnexp_update`)."""
    return _per_state(low, lambda s, a, b: -b / a + (s + b / a) * sympy.exp(a * DT))


def forward_euler_update(low: LoweredMechanism) -> dict[str, sympy.Expr]:
    """NEURON's ``euler``: s ← s + dt·f(s, V^{n+1}) for every state at once."""
    return {name: sympy.Symbol(name) + DT * rhs for name, rhs in low.derivatives.items()}


def _per_state(low: LoweredMechanism, step: Callable[[sympy.Symbol, sympy.Expr, sympy.Expr], sympy.Expr]
               ) -> dict[str, sympy.Expr]:
    """Apply ``step(s, a, b)`` to each s' = a·s + b in order, later states seeing the earlier
    states' new values (a = 0: forward Euler of the constant rate). Where the ODE reads its
    state through values the block assigned before it, a is the one NEURON takes with those
    held fixed (``low.cnexp_coefficients``) and b = rhs − a·s, both at the step's values."""
    current: dict[sympy.Symbol, sympy.Expr] = {}
    new: dict[str, sympy.Expr] = {}
    for name, rhs in low.derivatives.items():
        s = sympy.Symbol(name)
        # (each shared subexpression once: expression_graph, dag_diff)
        if name in low.cnexp_coefficients:
            a = low.cnexp_coefficients[name]
            b = xreplace_shared(rhs - a * s, current)
        else:
            a = Differentiator(s)(rhs)
            if s in subexpressions(a):
                raise GradgenError(f"the ODE of '{name}' is not linear in '{name}': cnexp would linearise it "
                                   "silently", low.mechanism.pos, hint="write it as s' = (sinf - s)/tau")
            b = xreplace_shared(rhs, {s: sympy.Integer(0), **current})
        a = xreplace_shared(a, current)
        new[name] = s + b * DT if a == 0 else step(s, a, b)
        current[s] = new[name]
    return new


@dataclass
class LinearStep:
    """An update whose new states x solve ``matrix · x = rhs`` (both at V^{n+1}; rhs may read
    the old states). Kept as a system: the generated code solves it by elimination
    (:mod:`gradgen.sensitivity.linear_solve`), as the simulator does."""

    names: list[str]
    matrix: sympy.Matrix
    rhs: list[sympy.Expr]


def sparse_update(low: LoweredMechanism) -> LinearStep | dict[str, sympy.Expr]:
    """Backward Euler of the whole system: (I − dt·A) s⁺ = s + dt·b where it is linear,
    else modcc's Newton iterations (:func:`newton_update`)."""
    names = list(low.derivatives)
    symbols = [sympy.Symbol(n) for n in names]
    rhs = [low.derivatives[n] for n in names]
    jacobian = sympy.Matrix(rhs).jacobian(symbols)
    minus_b = -sympy.Matrix(rhs).xreplace({s: 0 for s in symbols})
    _require_conserved(low)
    if any(jacobian.has(s) for s in symbols):
        return newton_update(low, names, rhs, jacobian)
    return LinearStep(names, sympy.eye(len(names)) - DT * jacobian,
                      list(sympy.Matrix(symbols) - DT * minus_b))


def _require_conserved(low: LoweredMechanism) -> None:
    """Refuse a CONSERVE law the reactions do not keep. One they keep changes nothing: every
    backward-Euler step keeps a linear invariant of the reactions, so the solve with the law in
    place of a balance row (NEURON, modcc's linear solver) and the solve without it (modcc's
    Newton iterations, which ignore the law) have the same solution."""
    for weights, _ in low.conserved:
        balance = sympy.expand(sympy.Add(*[c * low.derivatives.get(n, 0) for n, c in weights.items()]))
        if balance != 0:
            raise GradgenError(
                "a CONSERVE law that the reactions do not conserve", low.mechanism.pos,
                hint="CONSERVE may only restate a conservation the scheme already has")


#: modcc's SparseNonlinearSolverVisitor: Newton iterations of a nonlinear ``sparse`` system.
NEWTON_ITERATIONS = 3
#: Largest nonlinear system whose Newton step is solved symbolically here.
NEWTON_MAX_STATES = 4


def newton_update(low: LoweredMechanism, names: list[str], rhs: list[sympy.Expr],
                  jacobian: sympy.Matrix) -> dict[str, sympy.Expr]:
    """Backward Euler of a nonlinear system as modcc's ``sparse`` solves it: from y = s
    (the old states), :data:`NEWTON_ITERATIONS` steps y ← y − J(y)⁻¹·F(y) with
    F(y) = y − s − dt·f(y, V^{n+1}) and the exact J = I − dt·∂f/∂y, then s⁺ = y.

    NEURON's derivimplicit solves the same equation by Newton's method until it converges;
    at a step where the first guess s is O(dt) from s⁺, three exact iterations leave an
    error far below the check's bounds. A closed form per state (differentiated exactly)."""
    constant = [n for n, r in zip(names, rhs) if r == 0]  # a STATE that never changes: s⁺ = s
    if constant:
        moving = [i for i, n in enumerate(names) if n not in constant]
        update = newton_update(low, [names[i] for i in moving], [rhs[i] for i in moving],
                               jacobian.extract(moving, moving))
        return {n: update.get(n, sympy.Symbol(n)) for n in names}
    if len(names) > NEWTON_MAX_STATES:
        raise GradgenError(
            f"the ODEs of {len(names)} states are nonlinear in their states: the Newton step of "
            f"more than {NEWTON_MAX_STATES} coupled states is not reproduced", low.mechanism.pos,
            hint="fewer coupled states in the nonlinear ODEs (first-order reactions in a KINETIC block "
                 "are linear)")
    old = [sympy.Symbol(n) for n in names]
    f, j = sympy.Matrix(rhs), sympy.eye(len(names)) - DT * jacobian
    y = sympy.Matrix(old)
    for _ in range(NEWTON_ITERATIONS):
        at_y = dict(zip(old, y))
        residual = y - sympy.Matrix(old) - DT * f.xreplace(at_y)
        y = y - j.xreplace(at_y).LUsolve(residual)
    return dict(zip(names, y))


def linear_update(low: LoweredMechanism) -> LinearStep:
    """LINEAR: the states that solve the block's equations at V^{n+1} (old values unused)."""
    symbols = [sympy.Symbol(s) for s in low.states
               if any(eq.has(sympy.Symbol(s)) for eq in low.equations)]
    if len(symbols) != len(low.equations):
        raise GradgenError(
            f"the LINEAR block has {len(low.equations)} equation(s) for {len(symbols)} state(s)",
            low.mechanism.pos, hint="write one ~ equation per STATE it determines")
    return linear_system(dict(zip([s.name for s in symbols], low.equations)), low)


def linear_system(equations: Mapping[str, sympy.Expr], low: LoweredMechanism) -> LinearStep:
    """The states x that make every expression of ``equations`` (state -> expr) zero."""
    symbols = [sympy.Symbol(n) for n in equations]
    values = sympy.Matrix(list(equations.values()))
    matrix = values.jacobian(symbols)
    if any(matrix.has(s) for s in symbols):
        raise GradgenError("the LINEAR block is nonlinear in its states", low.mechanism.pos,
                           hint="NONLINEAR systems are not supported")
    return LinearStep(list(equations), matrix, list(-values.xreplace({s: 0 for s in symbols})))


def explicit_update(low: LoweredMechanism) -> dict[str, sympy.Expr]:
    """A SOLVEd PROCEDURE: each state's value after the procedure, from the old states."""
    return dict(low.explicit)


#: The discrete maps gradgen reproduces exactly, by name.
UPDATES: dict[str, Callable[[LoweredMechanism], dict[str, sympy.Expr] | LinearStep]] = {
    "pade": cnexp_update,  # modcc's cnexp: Padé(1,1) per state, in order, at V^{n+1}
    "backward_euler": sparse_update,  # modcc's sparse: one backward-Euler step of the system
    "linear_solve": linear_update,  # a LINEAR block solved at V^{n+1}
    "exponential": exponential_update,  # NEURON's cnexp: exact exponential per state, in order
    "forward_euler": forward_euler_update,  # NEURON's euler
    "explicit": explicit_update,  # a SOLVEd PROCEDURE, as written
}

#: How modcc (the Arbor target) steps each SOLVE method: Arbor offers only cnexp and
#: sparse. NEURON's derivimplicit (backward Euler, Newton's method) becomes sparse, which is
#: backward Euler too (Newton iterations where nonlinear); runge (RK4, explicit) becomes
#: sparse as well, which unlike cnexp does not divide by an ODE's coefficient (0 in a
#: synapse's gVD' = B·(inf − gVD)/tau while B = 0: NaN); euler becomes cnexp (``gradgen
#: translate`` writes the same); a KINETIC block is always solved by sparse. A target that
#: integrates otherwise passes its own mapping to :func:`state_update`.
MODCC_METHODS: dict[str, str] = {"cnexp": "pade", "derivimplicit": "backward_euler",
                                 "euler": "pade", "runge": "backward_euler",
                                 "sparse": "backward_euler", "linear": "linear_solve",
                                 "explicit": "explicit"}


#: How NEURON (nocmodl) steps each SOLVE method. ``derivimplicit`` is one backward-Euler
#: step solved by Newton's method: exact for a linear system, to convergence (three
#: iterations here, :func:`newton_update`) for a nonlinear one; ``runge`` is not reproduced.
NEURON_METHODS: dict[str, str] = {"cnexp": "exponential", "derivimplicit": "backward_euler",
                                  "euler": "forward_euler", "sparse": "backward_euler",
                                  "linear": "linear_solve", "explicit": "explicit"}


#: Which state values an assignment in a solved DERIVATIVE block (``cai = ca``, ``m = minf``)
#: reads, as NEURON runs each METHOD: cnexp replaces each ODE in place by its update (the
#: states integrated before the assignment are new, the others old); derivimplicit's last
#: Newton evaluation reads the new states, and so does sparse's (a KINETIC block: NEURON
#: evaluates it once more after its iterations, measured with NEURON 9: ``S = a`` after
#: ``~ a <-> b`` leaves S at the new a, linear scheme or not); euler and runge evaluate the
#: block at the old states and then step the ODEs.
ASSIGNMENTS_READ: dict[str, str] = {"cnexp": "in_order", "derivimplicit": "new", "sparse": "new",
                                    "euler": "old", "runge": "old"}


def prelude_assignments(low: LoweredMechanism) -> dict[str, sympy.Expr]:
    """States the solved block assigns before their own ODE (145836 SynExp3NMDA2's
    ``rates(v)`` resetting A, B and gVD inside a time window): NEURON's state array holds the
    assigned value when the ODEs are integrated, so the step starts there (see
    :func:`state_update`)."""
    order = low.solve_order
    return {s: e for s, e in low.state_assignments.items()
            if f"{s}'" in order and order.index(s) < order.index(f"{s}'")}


def _reading_the_states(low: LoweredMechanism, preludes: dict[str, sympy.Expr]) -> LoweredMechanism:
    """``low`` with its ODEs written in the states themselves where lowering put the assigned
    value of a prelude (a ← g(a), then a' = f(g(a)) becomes a' = f(a), stepped from g(a)).
    Exact when every read of such a state in the ODEs is a read of its assigned value; a read
    of the value from before the assignment is refused."""
    masks = {e: sympy.Dummy(s) for s, e in preludes.items()}
    symbols = {sympy.Symbol(s) for s in preludes}
    for state, rate in low.derivatives.items():
        if rate.xreplace(masks).free_symbols & symbols:
            raise GradgenError(f"the ODE of '{state}' reads a state from before the solved block "
                               "assigns it", low.mechanism.pos,
                               hint="read the state after its assignment, or assign it after the ODEs")
    back = {e: sympy.Symbol(s) for s, e in preludes.items()}
    return dataclasses.replace(low, derivatives={s: r.xreplace(back) for s, r in low.derivatives.items()})


def _starting_at(update: dict[str, sympy.Expr] | LinearStep, starts: dict[sympy.Symbol, sympy.Expr]
                 ) -> dict[str, sympy.Expr] | LinearStep:
    if isinstance(update, LinearStep):
        return LinearStep(update.names, update.matrix.xreplace(starts), [e.xreplace(starts) for e in update.rhs])
    return {n: e.xreplace(starts) for n, e in update.items()}


def with_state_assignments(low: LoweredMechanism, update: dict[str, sympy.Expr] | LinearStep,
                           preludes: Mapping[str, sympy.Expr]) -> dict[str, sympy.Expr] | LinearStep:
    """``update`` from the states BREAKPOINT (nrn_cur) left, with the states the solved block
    assigns set as NEURON sets them: before their own ODE, as its start
    (:func:`prelude_assignments`); after it, by :data:`ASSIGNMENTS_READ`; then those of an
    if/else that held the SOLVE (from all new states). A linear system is solved in closed form
    first. ``preludes``: :func:`prelude_assignments` of ``low``, already in ``update``."""
    assignments = {s: e for s, e in low.state_assignments.items() if s not in preludes}
    if not assignments and not low.after_solve and not low.breakpoint_states:
        return update
    reads = ASSIGNMENTS_READ[low.solve_method]
    if isinstance(update, LinearStep) and (reads == "old" or low.solve_method == "sparse") \
            and not low.after_solve and not low.breakpoint_states:
        # values of the old states: rows of their own in the system, which stays a system (for
        # a linear KINETIC scheme a deviation from NEURON, whose assignments read the new
        # states (``Ca = C1 + … + C5`` in ModelDB 243446 narsg, a value V does not read): the
        # translation keeps such a system for modcc's sparse, which runs them before its solve)
        extra = list(assignments)
        n = len(update.names)
        matrix = update.matrix.row_join(sympy.zeros(n, len(extra))).col_join(
            sympy.zeros(len(extra), n).row_join(sympy.eye(len(extra))))
        return LinearStep(update.names + extra, matrix, update.rhs + [assignments[e] for e in extra])
    update = closed_form(update, low)
    if low.breakpoint_states:  # set by nrn_cur before this update reads the states
        start = {sympy.Symbol(n): e for n, e in low.breakpoint_states.items()}
        update = {**{n: e.xreplace(start) for n, e in update.items()}, **{
            n: e for n, e in low.breakpoint_states.items() if n not in update}}
    new = dict(update)
    integrated: dict[sympy.Symbol, sympy.Expr] = {}
    every = {sympy.Symbol(n): e for n, e in update.items()}
    for step in low.solve_order:
        if step.endswith("'"):
            integrated[sympy.Symbol(step[:-1])] = update[step[:-1]]
            continue
        if step in assignments:
            at = {"old": {}, "new": every, "in_order": dict(integrated)}[reads]
            new[step] = assignments[step].xreplace(at)
    after = {sympy.Symbol(n): e for n, e in new.items()}
    new.update({name: e.xreplace(after) for name, e in low.after_solve.items()})
    return new


def closed_form(update: dict[str, sympy.Expr] | LinearStep, low: LoweredMechanism) -> dict[str, sympy.Expr]:
    """Each new state as an expression: a linear system of a few states solved symbolically."""
    if not isinstance(update, LinearStep):
        return update
    if len(update.names) > NEWTON_MAX_STATES:
        raise GradgenError(f"the backward-Euler step of {len(update.names)} coupled ODEs cannot be "
                           "written out for modcc (its sparse solver takes only homogeneous linear "
                           "systems, and this block assigns states or has constant terms)",
                           low.mechanism.pos, hint="write the scheme as a KINETIC block")
    return dict(zip(update.names, update.matrix.LUsolve(sympy.Matrix(update.rhs))))


def state_update(low: LoweredMechanism, methods: Mapping[str, str] = MODCC_METHODS
                 ) -> dict[str, sympy.Expr] | LinearStep:
    """The map the simulator applies for the mechanism's SOLVE method (empty without states):
    closed forms per state, or a linear system (KINETIC, LINEAR); ``methods`` says which of
    :data:`UPDATES` each SOLVE method becomes. States the solved block assigns are set as
    :func:`with_state_assignments` says."""
    if low.solve_method is None or (low.solve_method not in ("linear", "explicit") and not low.derivatives):
        return {}
    if low.solve_method not in methods:
        raise GradgenError(f"SOLVE METHOD {low.solve_method} is not reproduced for this simulator",
                           low.mechanism.pos, hint="methods: " + ", ".join(methods))
    step = UPDATES[methods[low.solve_method]]
    preludes = prelude_assignments(low)
    if not preludes:
        return with_state_assignments(low, step(low), preludes)
    update = step(_reading_the_states(low, preludes))
    return with_state_assignments(low, _starting_at(update, {sympy.Symbol(s): e for s, e in preludes.items()}),
                                  preludes)
