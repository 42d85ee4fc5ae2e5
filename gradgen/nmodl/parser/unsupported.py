"""Report NMODL constructs that gradgen recognises but cannot translate.

Run on comment-free text before parsing: a dedicated "X is not supported yet" with the
keyword's position and a hint is far more useful than the syntax error the grammar would
give somewhere inside the construct (or inside the C code of a VERBATIM block).
"""
from __future__ import annotations

import re

from gradgen.errors import GradgenError
from gradgen.nmodl.parser.preprocess import position

_EVENTS = "only continuous HH-style channels and leaks are supported for now"
_SOLVE = "solve the equations by hand and assign the solution"
_LOCK = "delete it; gradgen-generated code needs no thread locks"
_DIFFUSION = "ion diffusion is set up in the simulator, not in the mechanism"
_LOOP = "a loop whose count is known only at run time cannot be unrolled; use FROM i = a TO b with constant bounds"
_POINTER = "pass the value in as a PARAMETER or through an ion instead"

_HINTS: dict[str, str] = {
    "VERBATIM": "C code inside VERBATIM cannot be translated; rewrite it in NMODL",
    "LONGITUDINAL_DIFFUSION": _DIFFUSION,
    "NONLINEAR": _SOLVE,
    "DISCRETE": _SOLVE,
    "PARTIAL": _SOLVE,
    "WATCH": _EVENTS,
    "FOR_NETCONS": _EVENTS,
    "ARTIFICIAL_CELL": _EVENTS,
    "RANDOM": _EVENTS,
    "BEFORE": _EVENTS,
    "CONSTRUCTOR": _EVENTS,
    "DESTRUCTOR": _EVENTS,
    "FUNCTION_TABLE": "write the function as a FUNCTION with a formula",
    "POINTER": _POINTER,
    "BBCOREPOINTER": _POINTER,
    "EXTERNAL": _POINTER,
    "REPRESENTS": "delete the REPRESENTS annotation",
    "WHILE": _LOOP,
    "while": _LOOP,  # NMODL's keyword is lower case, as if and else
    "MUTEXLOCK": _LOCK,
    "MUTEXUNLOCK": _LOCK,
    "SENS": "gradgen computes sensitivities itself; delete the SENS statement",
    "LAG": "keep the delayed value in a STATE variable instead",
    "RESET": _EVENTS,
    "MATCH": _SOLVE,
    "SOLVEFOR": "delete SOLVEFOR; each SOLVE integrates its whole block",
    "IFERROR": "delete IFERROR",
}
# Other unsupported constructs: (pattern, what it is, hint). Arrays and FROM loops parse
# (unrolled by arrays.py).
_OTHERS: list[tuple[str, str, str]] = [
    (r"\bAFTER\b(?![ \t]+SOLVE\b)", "AFTER blocks other than AFTER SOLVE", _EVENTS),
    (r'"', "strings", "outside INCLUDE and printf a string has no meaning for gradgen; remove it"),
]

_PATTERN = re.compile(
    r"\b(?P<keyword>" + "|".join(sorted(_HINTS, key=len, reverse=True)) + r")\b"
    + "".join(f"|(?P<other{i}>{pattern})" for i, (pattern, _, _) in enumerate(_OTHERS))
)


def check_supported(text: str, filename: str) -> None:
    """Raise a GradgenError at the first unsupported construct in comment-free ``text``."""
    m = _PATTERN.search(text)
    if m is None:
        return
    pos = position(text, m.start(), filename)
    if m.lastgroup == "keyword":
        word = m.group("keyword")
        raise GradgenError(f"{word} is not supported yet", pos=pos, hint=_HINTS[word])
    _, what, hint = _OTHERS[int(m.lastgroup.removeprefix("other"))]
    raise GradgenError(f"{what} are not supported yet", pos=pos, hint=hint)
