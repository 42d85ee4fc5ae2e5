"""Remove NMODL comments, the TITLE line, UNITSON/UNITSOFF and INCLUDE lines before parsing.

Removed text is overwritten with spaces (newlines kept), so a line and column in the
cleaned text is the same line and column in the user's file; error messages stay exact.
UNITSON/UNITSOFF only switch NEURON's unit checking; INCLUDE names a file that
:func:`gradgen.nmodl.parser.parse_text` parses as a fragment of its own (with its own positions).
VERBATIM blocks are copied unchanged: their C code may contain ``:`` or ``?``, and the
unsupported-construct check reports the VERBATIM keyword itself. The one exception is a block
holding only ``return 0;``: NEURON's idiom for a PROCEDURE without an error code (79 files of
a ModelDB survey), a no-op, blanked like a comment. ``PROTECT x = e`` is an assignment under
NEURON's thread lock (for GLOBALs written by many instances): the keyword is blanked, the
assignment stays. A ``printf(...)`` statement only writes to the terminal (76 calls in 5 files of
a ModelDB survey, most in monitors): it is blanked, a string anywhere else is still refused.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from gradgen.errors import GradgenError, SourcePos

# One alternative per thing that starts a region to blank or keep; the first match wins.
_START = re.compile(
    r"(?P<comment>\bCOMMENT\b)"
    r"|(?P<verbatim>\bVERBATIM\b)"
    r"|(?P<title>^[ \t]*TITLE\b)"
    r"|(?P<units>\bUNITS(?:ON|OFF)\b)"
    r"|(?P<protect>\bPROTECT\b)"
    r"|(?P<printf>\bprintf[ \t]*\()"
    r'|(?P<include>\bINCLUDE[ \t]*"(?P<file>[^"\n]*)")'
    r"|(?P<line>[:?])",
    re.MULTILINE,
)
_END_COMMENT = re.compile(r"\bENDCOMMENT\b")
_END_VERBATIM = re.compile(r"\bENDVERBATIM\b")
_NO_OP_VERBATIM = re.compile(r"\s*return\s+0\s*;\s*")


@dataclass(frozen=True)
class Preprocessed:
    """The cleaned text (same length and line structure as the input), TITLE and INCLUDEs."""

    text: str
    title: str | None
    includes: list[tuple[str, SourcePos]] = field(default_factory=list)


def _blank(text: str) -> str:
    """Spaces for every character except newlines, so positions after it do not move."""
    return re.sub(r"[^\n]", " ", text)


def position(text: str, offset: int, filename: str) -> SourcePos:
    """The 1-based line and column of character ``offset`` of ``text``."""
    line = text.count("\n", 0, offset) + 1
    col = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return SourcePos(filename, line, col)


def _call_end(text: str, start: int, pos: SourcePos) -> int:
    """The offset just past the ``)`` that closes a call whose ``(`` ends at ``start``;
    parentheses inside string literals do not count."""
    depth, i, in_string = 1, start, False
    while i < len(text):
        c = text[i]
        if in_string:
            if c == "\\":
                i += 1
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise GradgenError("printf( without its closing parenthesis", pos=pos,
                       hint="close the call: printf(\"format\", values)")


def preprocess(text: str, filename: str = "<string>") -> Preprocessed:
    """Blank comments and the TITLE line; return the cleaned text and the first TITLE."""
    out: list[str] = []
    title: str | None = None
    includes: list[tuple[str, SourcePos]] = []
    i = 0
    while (m := _START.search(text, i)) is not None:
        out.append(text[i : m.start()])
        kind = m.lastgroup
        if kind == "comment":
            end = _END_COMMENT.search(text, m.end())
            if end is None:
                raise GradgenError(
                    "COMMENT without ENDCOMMENT",
                    pos=position(text, m.start(), filename),
                    hint="close the comment with ENDCOMMENT on a line of its own",
                )
            out.append(_blank(text[m.start() : end.end()]))
            i = end.end()
        elif kind in ("units", "include", "protect"):
            if kind == "include":
                includes.append((m.group("file"), position(text, m.start(), filename)))
            out.append(_blank(m.group()))
            i = m.end()
        elif kind == "printf":
            stop = _call_end(text, m.end(), position(text, m.start(), filename))
            out.append(_blank(text[m.start() : stop]))
            i = stop
        elif kind == "verbatim":
            end = _END_VERBATIM.search(text, m.end())
            stop = end.end() if end else len(text)
            no_op = end is not None and _NO_OP_VERBATIM.fullmatch(text, m.end(), end.start())
            out.append(_blank(text[m.start() : stop]) if no_op else text[m.start() : stop])
            i = stop
        else:
            eol = text.find("\n", m.end())
            eol = len(text) if eol < 0 else eol
            if kind == "title" and title is None:
                title = text[m.end() : eol].strip() or None
            out.append(_blank(text[m.start() : eol]))
            i = eol
    out.append(text[i:])
    return Preprocessed("".join(out), title, includes)
