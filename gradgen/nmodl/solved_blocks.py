"""The blocks SOLVE statements name: BREAKPOINT's solved block and its method, INITIAL's as equations."""
from __future__ import annotations

import sympy

from gradgen.errors import GradgenError
from gradgen.nmodl.block_executor import BlockExecutor, Frame
from gradgen.nmodl.ir import Block, Mechanism, Solve

#: The integration METHODs of a DERIVATIVE block that gradgen reads. Which discrete map each
#: becomes is the simulator's choice (:data:`gradgen.sensitivity.discretize.MODCC_METHODS`).
DERIVATIVE_METHODS = ("cnexp", "derivimplicit", "euler", "runge", "sparse")


def solved_block(mech: Mechanism, solve: Solve) -> tuple[Block, str]:
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


def initial_solve_equations(executor: BlockExecutor, mech: Mechanism, initial: Frame) -> dict[str, sympy.Expr]:
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
