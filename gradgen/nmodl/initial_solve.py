"""The original's SOLVE in INITIAL as source text, for a target to paste into a gradient mechanism.

Initial states that INITIAL solves for (``SOLVE kin STEADYSTATE sparse``, ``SOLVE lin`` of a
LINEAR block) are where a gradient mechanism cannot match the original by solving the same
equations its own way. NEURON finds a KINETIC steady state iteratively (backward-Euler steps
with a huge dt from the states' current values, scopmath's ``_ss_sparse``), 3e-8 from the
exact solution on ``kmarkov`` (5.9e-6 mV in V over 20 ms). modcc solves a LINEAR system by
its own Gauss–Jordan elimination, and allen/NaV's 12-state initial system is ill-conditioned
enough that one ulp in a rate moves its states by 5e-10 (V by 1.5e-6 mV over 20 ms). So the
gradient mechanism keeps the original's own code and lets the simulator solve: what INITIAL
does before the SOLVE (as written: a q10 factor computed another way rounds otherwise), the
SOLVE statement, the solved block, every FUNCTION and PROCEDURE these call, and the original's
ASSIGNED variables they use. The sensitivities σ(0) are then computed from the states found
(:func:`gradgen.sensitivity.derive.derive_contributor`).

For modcc that is not yet the original's computation to the bit: it orders the unknowns by
its symbol table (:mod:`gradgen.targets.arbor.modcc_order` matches them), and a parameter
must reach the code as the same double (GLOBALs stay GLOBAL:
:func:`gradgen.targets.arbor.emit.emit_contributor`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Collection

from gradgen.nmodl.ir import Block, If, Mechanism, Solve, walk
from gradgen.nmodl.lowered import BUILTIN_NAMES, LoweredMechanism
from gradgen.nmodl.parser.preprocess import preprocess

#: An array or a FROM loop in source text: the parser unrolls them, modcc reads neither.
_UNROLLED = re.compile(r"\[|\bFROM\s+\w+\s*=")
_IDENTIFIER = re.compile(r"\b[A-Za-z_]\w*\b")
#: Functions a target provides itself (NEURON's gradient version defines exprelr when used,
#: Arbor has it built in): never pasted twice.
_PROVIDED = {"exprelr"}


@dataclass(frozen=True)
class InitialSolveSource:
    """What a target pastes into the gradient mechanism's INITIAL (see the module docstring)."""

    prelude: list[str]  # INITIAL's statements before its SOLVEs, as written, one line each
    locals: list[str]  # the LOCALs INITIAL declares (merged into the generated LOCAL line)
    statements: list[str]  # "SOLVE seqinitial", "SOLVE scheme STEADYSTATE sparse", in order
    blocks: list[str]  # the solved blocks and the FUNCTIONs/PROCEDUREs called, as written
    assigned: list[str]  # the original's ASSIGNED names these read or set: to declare
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
        elif isinstance(stmt, If) and any(isinstance(s, Solve) for s in walk(stmt.then + stmt.orelse)):
            return None
    return solves


def _prelude(clean: str, mech: Mechanism, solves: list[Solve]) -> tuple[list[str], list[str]] | None:
    """INITIAL's text before its first SOLVE as lines, and its LOCALs; None where anything but
    blanks stands between its SOLVEs."""
    initial = mech.initial
    start = clean.index("{", _offset(clean, initial.pos.line, initial.pos.col)) + 1
    at = [_offset(clean, s.pos.line, s.pos.col) for s in solves]
    between = [clean[a:b] for a, b in zip(at, at[1:])]
    if any(re.sub(r"SOLVE[^\n]*", "", part).strip() for part in between):
        return None
    locals_: list[str] = []
    lines = []
    for line in clean[start:at[0]].splitlines():
        found = re.match(r"\s*LOCAL\s+(.*)$", line)
        if found:
            locals_ += [n.strip() for n in found.group(1).split(",") if n.strip()]
        elif line.strip():
            lines.append(line.strip())
    return lines, locals_


def initial_solve_source(low: LoweredMechanism, kinds: Collection[str] = ("kinetic", "linear")
                         ) -> InitialSolveSource | None:
    """The pasteable form of ``low``'s initial solves of blocks of these ``kinds`` ("kinetic":
    STEADYSTATE of a KINETIC block, "linear": a LINEAR block); None where there are none, where
    one is of another kind, or where pasting is not safe (VERBATIM, a block from an INCLUDEd
    file, a CONSTANT read, statements between SOLVEs): then the states are solved by
    elimination in the generated code."""
    mech = low.mechanism
    solves = _top_level_solves(mech)
    if not low.initial_equations or not solves:
        return None
    clean = preprocess(_unix_lines(mech.text), mech.pos.file).text
    if mech.initial.pos.file != mech.pos.file or any(s.pos.file != mech.pos.file for s in solves):
        return None
    prelude = _prelude(clean, mech, solves)
    if prelude is None or "VERBATIM" in "\n".join(prelude[0]):
        return None
    callable_blocks = {**mech.functions, **mech.procedures}
    solved = {**(mech.kinetics if "kinetic" in kinds else {}), **(mech.linears if "linear" in kinds else {})}
    pending = [solved[s.block] for s in solves if s.block in solved]
    if len(pending) != len(solves):
        return None
    pending += [callable_blocks[n] for line in prelude[0] for n in _IDENTIFIER.findall(line)
                if n in callable_blocks and n not in _PROVIDED]
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
    if any(_UNROLLED.search(text) for text in [*texts.values(), *prelude[0]]):
        return None
    names = {n for text in [*texts.values(), *prelude[0]] for n in _IDENTIFIER.findall(text)}
    if names & {c.name for c in mech.constants}:
        return None
    ion_names = {n for i in mech.ions for n in i.read + i.write} | set(mech.nonspecific_currents)
    assigned = [a.name for a in mech.assigned
                if a.name in names and a.name not in BUILTIN_NAMES | ion_names | set(low.states)]
    statements = [f"SOLVE {s.block}" + (f" STEADYSTATE {s.method}" if s.steady_state else "") for s in solves]
    return InitialSolveSource(prelude[0], prelude[1], statements, list(texts.values()), assigned,
                              calls_exprelr="exprelr" in names)


__all__ = ["InitialSolveSource", "initial_solve_source"]
