"""NMODL `.mod` text -> :class:`gradgen.nmodl.ir.Mechanism`.

Pipeline: :mod:`.preprocess` blanks comments and takes the TITLE, :mod:`.unsupported`
rejects constructs gradgen cannot translate yet, the lark grammar ``nmodl.lark`` (LALR,
contextual lexer) parses, and :mod:`.build` makes the IR (:mod:`.arrays` unrolls arrays and
FROM loops into scalars). Every user error is a
:class:`~gradgen.errors.GradgenError` with file:line:col and a hint.
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken
from lark.lexer import PatternStr

from gradgen.errors import GradgenError, SourcePos
from gradgen.nmodl.ir import Mechanism
from gradgen.nmodl.parser.build import build_mechanism
from gradgen.nmodl.parser.depth import check_depth, recursion_for
from gradgen.nmodl.parser.preprocess import Preprocessed, preprocess
from gradgen.nmodl.parser.unsupported import check_supported

__all__ = ["parse_file", "parse_text"]

_MAX_EXPECTED = 8
_FIRST_WORD = re.compile(r"\w+|\S")
_OPERATORS = {repr(op) for op in "+ - * / ^ < > <= >= == != && ||".split()}


@lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark.open(
        "nmodl.lark",
        rel_to=__file__,
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
    )


def parse_file(path: str | Path) -> Mechanism:
    """Parse the `.mod` file at ``path``; positions in errors and IR name that path."""
    try:
        raw = Path(path).read_bytes()
    except OSError as err:
        raise GradgenError(f"cannot read {path}: {err.strerror}",
                           hint="check the path of the .mod file") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # old files have Latin-1 symbols (µ, °) in comments
    return parse_text(text, filename=str(path))


def parse_text(text: str, filename: str = "<string>") -> Mechanism:
    """Parse NMODL source ``text``; ``filename`` is used in positions and messages.

    INCLUDEd files are looked up next to ``filename`` and parsed as fragments of their
    own, so errors inside them name the included file and its lines.
    """
    text = _unix_lines(text)
    clean = preprocess(text, filename)
    tree = _parse_clean(clean.text, filename)
    fragments = [(_parse_clean(included.text, path), path)
                 for path, included in _includes(clean.includes, filename, set())]
    deepest = max((check_depth(t, name) for t, name in [(tree, filename), *fragments]),
                  key=lambda depth: depth.tree)
    with recursion_for(deepest):
        return build_mechanism(tree, text, clean.title, filename, fragments)


def _unix_lines(text: str) -> str:
    """Windows (CR LF) and old Mac (CR) line ends as LF, so lines and comments end where they do."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _parse_clean(text: str, filename: str) -> Tree:
    check_supported(text, filename)
    try:
        return _parser().parse(text)
    except UnexpectedInput as err:
        raise _syntax_error(err, text, filename) from None


def _includes(names: list[tuple[str, SourcePos]], filename: str,
              seen: set[Path]) -> list[tuple[str, Preprocessed]]:
    """The preprocessed INCLUDEd files, depth first, each file once."""
    out: list[tuple[str, Preprocessed]] = []
    for name, pos in names:
        path = (Path(filename).parent / name).resolve()
        if path in seen:
            continue
        seen.add(path)
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as err:
            raise GradgenError(f"cannot read INCLUDE \"{name}\": {err.strerror}", pos=pos,
                               hint="the file is looked up next to the .mod file") from None
        included = preprocess(_unix_lines(text), str(path))
        out.append((str(path), included))
        out += _includes(included.includes, str(path), seen)
    return out


def _describe_terminal(name: str) -> str:
    """How a grammar terminal reads in a message: a keyword or symbol quoted, else a word."""
    if name == "$END":
        return "end of file"
    pattern = _parser().get_terminal(name).pattern
    if isinstance(pattern, PatternStr):
        return repr(pattern.value)
    return {"NAME": "a name", "NUMBER": "a number", "UNIT_TEXT": "a unit"}.get(name, name)


def _describe_token(token: Token) -> str:
    if token.type == "$END":
        return "end of file"
    if token.type == "NAME":
        return f"name {token.value!r}"
    if token.type == "NUMBER":
        return f"number {token.value}"
    if token.type == "UNIT_TEXT":  # the catch-all unit pattern matched out of context
        return repr(_FIRST_WORD.match(token.value).group())
    return repr(token.value)


def _expected(names: set[str]) -> str:
    words = {_describe_terminal(n) for n in names}
    first = []
    if len(words & _OPERATORS) > 2:  # after an operand: say "an operator", not all thirteen
        words, first = words - _OPERATORS, ["an operator"]
    words = first + sorted(words)
    if len(words) > _MAX_EXPECTED:
        words = words[:_MAX_EXPECTED] + ["..."]
    return ", ".join(words)


def _end_pos(text: str, filename: str) -> SourcePos:
    """Where the file ends: just after its last non-blank character."""
    body = text.rstrip()
    line = body.count("\n") + 1
    return SourcePos(filename, line, len(body) - (body.rfind("\n") + 1) + 1)


def _syntax_error(err: UnexpectedInput, text: str, filename: str) -> GradgenError:
    """A lark parse failure as a one-line GradgenError at the offending token."""
    if isinstance(err, UnexpectedToken) and err.token.type == "$END":
        return GradgenError(
            f"unexpected end of file, expected {_expected(err.expected)}",
            pos=_end_pos(text, filename),
            hint="a closing '}' or ')' is probably missing",
        )
    if isinstance(err, UnexpectedToken):
        found = _describe_token(err.token)
        expected = err.expected
    elif isinstance(err, UnexpectedCharacters):
        found = repr(err.char)
        expected = err.allowed or set()
    else:
        found, expected = "input", set()
    message = f"unexpected {found}"
    if expected:
        message += f", expected {_expected(expected)}"
    return GradgenError(
        message,
        pos=SourcePos(filename, err.line, err.column),
        hint="check this line and the end of the previous one for a missing or extra "
        "operator, parenthesis, brace or '='",
    )
