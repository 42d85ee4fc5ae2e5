"""Straight-line code reordered so that fewer values are live at once.

CSE puts every common subexpression at the top of a block, so the K sensitivities' temporaries
(``c·σ_k``, one per parameter and state) are all computed before the first of them is used:
in the exact mechanism's SIMD code, hundreds of vector values live across the block, which the
compiler spills to the stack and reloads. Moving each temporary to just before its first
reader computes the same values from the same operands (the results are bit-identical), with
each one live for a few statements.
"""
from __future__ import annotations

from collections import Counter

from gradgen.sensitivity.straight_line import Code


def sink_temporaries(code: Code) -> Code:
    """``code`` with each LOCAL assigned once moved down to just before its first reader, or
    before the first later assignment of anything it reads if that comes first (it then reads
    the same values). Built from the last statement back, so that a temporary's readers have
    found their places before it looks for the first of them."""
    statements = code.statements
    temporaries = set(code.locals)
    counts = Counter(statement.target for statement in statements)
    reads = [{symbol.name for symbol in statement.expr.free_symbols} for statement in statements]
    order: list[int] = []  # the statements after the current one, in their final order
    for i in reversed(range(len(statements))):
        target = statements[i].target
        at = 0
        if target in temporaries and counts[target] == 1:
            at = next((position for position, j in enumerate(order)
                       if target in reads[j] or statements[j].target in reads[i]), 0)
        order.insert(at, i)
    return Code([statements[i] for i in order], list(code.locals))
