"""The original's SOLVE in INITIAL as source text, for a target to paste into a gradient mechanism.

Initial states that INITIAL solves for (``SOLVE kin STEADYSTATE sparse``, ``SOLVE lin`` of a
LINEAR block) are where a gradient mechanism cannot match the original by solving the same
equations its own way: NEURON finds a KINETIC steady state iteratively (backward-Euler steps
with a huge dt from the states' current values, scopmath's ``_ss_sparse``), 3e-8 from the
exact solution on ``kmarkov`` (5.9e-6 mV in V over 20 ms). So the gradient mechanism keeps the
original's own code and lets the simulator solve: the SOLVE statement, the solved block as
written, every FUNCTION and PROCEDURE it calls, and the original's ASSIGNED variables they
read, set to their INITIAL values before the SOLVE. The sensitivities σ(0) are then computed
from the states found (:func:`gradgen.sensitivity.derive.derive_contributor`).

Only where the simulator's solve depends on nothing but that code: NEURON's does. modcc
orders a LINEAR system's unknowns by iterating its symbol table (a hash map), so a gradient
mechanism, with many more symbols, eliminates the pasted system in another order; and even in
the original's order (its unknowns renamed to match) the result is not the original's to the
bit on allen/NaV, whose 12-state initial system amplifies rounding: the original with only
its PARAMETERs made RANGE (as gradient versions declare them) already ends 4e-10 away in the
states (measured, same C++ apart from the parameter loads). The Arbor target does not paste.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import sympy

from gradgen.nmodl.ir import Block, If, Mechanism, Solve
from gradgen.nmodl.lower import BUILTIN_NAMES, LoweredMechanism
from gradgen.nmodl.parser.preprocess import preprocess

_IDENTIFIER = re.compile(r"\b[A-Za-z_]\w*\b")
#: Functions a target provides itself (NEURON's gradient version defines exprelr when used,
#: Arbor has it built in): never pasted twice.
_PROVIDED = {"exprelr"}


@dataclass(frozen=True)
class InitialSolveSource:
    """What a target pastes into the gradient mechanism's INITIAL (see the module docstring)."""

    statements: list[str]  # "SOLVE seqinitial", "SOLVE scheme STEADYSTATE sparse", in order
    blocks: list[str]  # the solved blocks and the FUNCTIONs/PROCEDUREs they call, as written
    assigned: list[str]  # the original's ASSIGNED names those blocks read: to declare
    #: name -> value set before the SOLVEs: those ASSIGNED names, and solved states INITIAL
    #: gives a start value (NEURON's iteration starts from it)
    values: dict[str, sympy.Expr] = field(default_factory=dict)
    calls_exprelr: bool = False


def _unix_lines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _offset(text: str, line: int, col: int) -> int:
    lines = text.split("\n")
    return sum(len(s) + 1 for s in lines[:line - 1]) + col - 1


def _block_text(clean: str, block: Block) -> str | None:
    """The block from its keyword to its closing brace in the comment-free text."""
    start = _offset(clean, block.pos.line, block.pos.col)
    open_brace = clean.find("{", start)
    if open_brace < 0:
        return None
    depth = 0
    for i in range(open_brace, len(clean)):
        depth += {"{": 1, "}": -1}.get(clean[i], 0)
        if depth == 0:
            return clean[start:i + 1]
    return None


def _top_level_solves(mech: Mechanism) -> list[Solve] | None:
    """INITIAL's SOLVEs, or None where one sits inside if/else (not pasted: the branch matters)."""
    solves = []
    for stmt in mech.initial.body if mech.initial else []:
        if isinstance(stmt, Solve):
            solves.append(stmt)
        elif isinstance(stmt, If) and _nested_solve(stmt):
            return None
    return solves


def _nested_solve(stmt: If) -> bool:
    return any(isinstance(s, Solve) or (isinstance(s, If) and _nested_solve(s)) for s in stmt.then + stmt.orelse)


def initial_solve_source(low: LoweredMechanism) -> InitialSolveSource | None:
    """The pasteable form of ``low``'s initial solves; None where there are none or where
    pasting is not safe (VERBATIM, a block from an INCLUDEd file, a CONSTANT read): then the
    states are solved by elimination in the generated code, as before."""
    mech = low.mechanism
    solves = _top_level_solves(mech)
    if not low.initial_equations or not solves:
        return None
    clean = preprocess(_unix_lines(mech.text), mech.pos.file).text
    callable_blocks = {**mech.functions, **mech.procedures}
    solved = {**mech.kinetics, **mech.linears}
    pending = [solved[s.block] for s in solves if s.block in solved]
    if len(pending) != len(solves):
        return None
    texts: dict[str, str] = {}
    while pending:
        block = pending.pop(0)
        if block.name in texts:
            continue
        text = _block_text(clean, block) if block.pos.file == mech.pos.file else None
        if text is None or "VERBATIM" in text:
            return None
        texts[block.name] = text
        pending += [callable_blocks[n] for n in _IDENTIFIER.findall(text)
                    if n in callable_blocks and n not in _PROVIDED and n not in texts]
    names = {n for text in texts.values() for n in _IDENTIFIER.findall(text)}
    if names & {c.name for c in mech.constants}:
        return None
    ion_names = {n for i in mech.ions for n in i.read + i.write} | set(mech.nonspecific_currents)
    assigned = [a.name for a in mech.assigned
                if a.name in names and a.name not in BUILTIN_NAMES | ion_names | set(low.states)]
    values = {n: low.initial_assigned[n] for n in assigned if n in low.initial_assigned}
    values.update({s: v for s, v in low.initial_guesses.items()})
    statements = [f"SOLVE {s.block}" + (f" STEADYSTATE {s.method}" if s.steady_state else "") for s in solves]
    return InitialSolveSource(statements, list(texts.values()), assigned, values,
                              calls_exprelr="exprelr" in names)


__all__ = ["InitialSolveSource", "initial_solve_source"]
