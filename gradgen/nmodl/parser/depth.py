"""How deeply a parse tree nests, so that deep input is refused with its position, not a crash.

The tree builder (a lark Transformer) and SymPy recurse once per level. Two kinds of depth
matter: a chain of one operator (``a + b + c + ...``, left-associative in the grammar) is
deep in the parse tree but flat once SymPy has built it, so it only needs a larger Python
recursion limit while the tree is transformed; genuine nesting (``exp(exp(...))``,
``-(-(...))``, ``a^(b^(...))``) stays deep in every later step and is capped.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from lark import Tree

from gradgen.errors import GradgenError, SourcePos

#: Deepest genuine nesting accepted. Mechanisms in mechanisms/ and the NMODL corpus nest
#: below 20; 100 nested exp() still convert in about 1 s, while 200 exhaust SymPy's recursion
#: in the derivative (measured with nested exp(), the costliest case).
MAX_NESTING = 100
#: Longest operator chain (terms of one sum) accepted: 5000 terms convert in about 2 s; the
#: cap keeps the raised recursion limit (below) far from the C stack's size.
MAX_TREE_DEPTH = 5000
#: Python frames the transformer uses per tree level, with a margin (3 measured).
_FRAMES_PER_LEVEL = 4

#: Operators that SymPy flattens into one n-ary node: a chain of them is not nesting.
_CHAINS = {"add": "sum", "sub": "sum", "mul": "product", "div": "product",
           "and_op": "and", "or_op": "or"}

#: Statements: the position of an error; nesting counts from an assignment, while nested
#: if/else statements keep counting (they recurse in the lowering as expressions do).
_STATEMENTS = {"assign", "derivative_assign", "if_stmt", "linear_eq", "reaction", "flux", "conserve"}
_RESETS = _STATEMENTS - {"if_stmt"}


@dataclass(frozen=True)
class Depth:
    """The deepest tree level and the deepest genuine nesting, with the statement it is in."""

    tree: int
    nesting: int
    nesting_line: int
    nesting_col: int


def measure(tree: Tree) -> Depth:
    """Depths of ``tree`` without recursion (the point is that recursion may fail)."""
    deepest_tree, deepest = 0, (0, 0, 0)
    stack: list[tuple[Tree, int, int, tuple[int, int]]] = [(tree, 1, 0, (1, 1))]
    while stack:
        node, level, nesting, start = stack.pop()
        deepest_tree = max(deepest_tree, level)
        if nesting > deepest[0]:
            deepest = (nesting, *start)
        chain = _CHAINS.get(node.data)
        for child in node.children:
            if not isinstance(child, Tree):
                continue
            same_chain = chain is not None and _CHAINS.get(child.data) == chain
            child_nesting = nesting if same_chain else nesting + 1
            where = start
            if child.data in _STATEMENTS:  # an expression's depth counts from its statement
                child_nesting = 0 if child.data in _RESETS else child_nesting
                meta = child.meta
                where = (getattr(meta, "line", start[0]), getattr(meta, "column", start[1]))
            stack.append((child, level + 1, child_nesting, where))
    return Depth(deepest_tree, *deepest)


def check_depth(tree: Tree, filename: str) -> Depth:
    """Refuse a tree nested deeper than gradgen can differentiate; return its depth."""
    depth = measure(tree)
    pos = SourcePos(filename, depth.nesting_line, depth.nesting_col)
    if depth.tree > MAX_TREE_DEPTH:
        raise GradgenError(f"an expression is {depth.tree} levels deep; gradgen accepts at most "
                           f"{MAX_TREE_DEPTH}", pos, hint="split it into LOCAL partial sums")
    if depth.nesting > MAX_NESTING:
        raise GradgenError(f"an expression nests {depth.nesting} levels deep; gradgen accepts at "
                           f"most {MAX_NESTING}", pos, hint="compute parts in LOCAL variables")
    return depth


@contextmanager
def recursion_for(depth: Depth) -> Iterator[None]:
    """Raise Python's recursion limit enough to transform a tree of this depth."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, _FRAMES_PER_LEVEL * depth.tree + 1000))
    try:
        yield
    finally:
        sys.setrecursionlimit(old)
