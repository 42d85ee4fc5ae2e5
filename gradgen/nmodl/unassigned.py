"""Values a block leaves unassigned on some path, read as NEURON's generated C reads them.

nocmodl declares a FUNCTION's result as an uninitialised C local (``double _lalpha;``): on a
path of if/else that assigns no result (ModelDB 26997's ``alpha(v, j)`` for a ``flag`` other
than 1, 2 or 3) NEURON returns whatever the stack held. No value is NEURON's there; gradgen
takes 0, the value modcc gives its own locals, and says so once per FUNCTION.
"""
from __future__ import annotations

import warnings

import sympy

from gradgen.errors import GradgenError, GradgenWarning
from gradgen.nmodl.ir import Block


def function_result(block: Block, result: sympy.Expr, warned: set[str]) -> sympy.Expr:
    """The value of FUNCTION ``block`` with its unassigned paths (the symbol of its own name,
    which the if/else merge leaves where one arm assigns nothing) read as 0."""
    own = sympy.Symbol(block.name)
    if not result.has(own):
        return result
    if result == own:  # no path assigns it: nothing to read as NEURON would
        raise GradgenError(f"FUNCTION '{block.name}' never assigns its result", block.pos,
                           hint=f"add '{block.name} = ...' to the function body")
    if block.name not in warned:
        warned.add(block.name)
        warnings.warn(GradgenWarning(
            f"{block.pos}: FUNCTION '{block.name}' assigns no result on some path of its if/else; "
            "NEURON returns an undefined value there (an uninitialised C variable), gradgen "
            "returns 0"), stacklevel=2)
    return result.xreplace({own: sympy.Integer(0)})


__all__ = ["function_result"]
