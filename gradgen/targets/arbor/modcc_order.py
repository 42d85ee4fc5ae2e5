"""modcc's order of a LINEAR system's unknowns, matched between an original and its gradient version.

A gradient mechanism pastes the original's LINEAR block for its initial states
(:mod:`gradgen.nmodl.initial_solve`) so that modcc solves them with the original's own code.
But modcc takes the unknowns (the matrix columns) in the order it iterates the module's symbol
table, a hash map: the gradient version, with many more symbols, gets another column order,
and its Gauss–Jordan elimination (pivots picked by column, fraction-free row operations) then
rounds otherwise. On an ill-conditioned system that matters: allen/NaV's 12 initial states
moved by 6e-10, V by 1.5e-6 mV over 20 ms.

The orders are read from modcc itself: a probe copy of each file whose first equation of the
block is replaced by ``~ 7001*s1 + 7002*s2 + … = 0`` (numbers, so no new symbol) shows in the
generated ``init`` the coefficients in column order. The pasted block then names, in each
column, the gradient version's state of that column, and after the SOLVE the values are
moved to the states they belong to (through LOCALs, which are no module symbols). The result
is checked by a second probe.
"""
from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

from gradgen.errors import GradgenError
from gradgen.protocol import permuted_state
from gradgen.targets.arbor.build import tool

_PROBE_BASE = 7001


def _block_span(text: str, block: str) -> tuple[int, int]:
    found = re.search(rf"^LINEAR\s+{re.escape(block)}\s*\{{", text, re.M)
    if not found:
        raise GradgenError(f"no LINEAR block '{block}' to order")
    depth = 0
    for i in range(found.end() - 1, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return found.start(), i + 1
    raise GradgenError(f"unbalanced braces in LINEAR block '{block}'")


def column_order(text: str, block: str, states: list[str]) -> list[str]:
    """The states in the order modcc makes them the columns of ``block``'s system in ``text``."""
    start, end = _block_span(text, block)
    body = text[start:end]
    first = re.search(r"^[ \t]*~[^\n]*$", body, re.M)
    if not first:
        raise GradgenError(f"LINEAR block '{block}' has no equation")
    probe = " + ".join(f"{_PROBE_BASE + j}*{s}" for j, s in enumerate(states))
    probed = text[:start] + body[:first.start()] + f"  ~ {probe} = 0" + body[first.end():] + text[end:]
    with tempfile.TemporaryDirectory() as tmp:
        source, out = Path(tmp) / "probe.mod", Path(tmp) / "out"
        source.write_text(probed)
        out.mkdir()
        proc = subprocess.run([tool("modcc"), "-t", "cpu", "-o", str(out), str(source)], capture_output=True, text=True)
        generated = next(out.glob("*_cpu.cpp"), None)
        if proc.returncode != 0 or generated is None:
            raise GradgenError(f"modcc failed on the probe of LINEAR block '{block}'",
                               hint="gradgen generated code modcc rejects: please report it with the .mod files")
        cpp = generated.read_text()
    init = cpp[cpp.index("static void init("):]
    init = init[:init.index("\n}\n")]
    found = [int(float(x)) - _PROBE_BASE for x in re.findall(rf"= +({_PROBE_BASE // 1000}\d\d\d)\.0;", init)]
    if sorted(found) != list(range(len(states))):
        raise GradgenError(f"cannot read modcc's column order of LINEAR block '{block}'")
    return [states[j] for j in found]


def match_original_order(gradient: str, original: str, block: str, states: list[str]) -> str:
    """``gradient`` (a gradient mechanism with ``SOLVE block`` and the pasted LINEAR ``block``
    in its INITIAL) rewritten so that modcc solves it column for column as in ``original``."""
    want, have = column_order(original, block, states), column_order(gradient, block, states)
    if want == have:
        return gradient
    stand_in = dict(zip(want, have))  # the original's column j is the gradient's state have[j]
    start, end = _block_span(gradient, block)
    body = re.sub(r"\b(" + "|".join(map(re.escape, states)) + r")\b", lambda m: stand_in[m.group(1)],
                  gradient[start:end])
    text = gradient[:start] + body + gradient[end:]
    temps = [permuted_state(j) for j in range(len(states))]
    moves = "".join(f"    {t} = {s}\n" for t, s in zip(temps, have))
    moves += "".join(f"    {s} = {t}\n" for t, s in zip(temps, want))
    solve = re.compile(rf"^    SOLVE {re.escape(block)}\n", re.M)
    text, n = solve.subn(lambda m: m.group(0) + moves, text, count=1)
    initial = re.compile(r"^INITIAL \{\n(    LOCAL )?", re.M)
    text, m = initial.subn(lambda g: f"INITIAL {{\n    LOCAL {', '.join(temps)}" + (", " if g.group(1) else "\n"),
                           text, count=1)
    if n != 1 or m != 1 or column_order(text, block, states) != have:
        raise GradgenError(f"could not match modcc's column order of LINEAR block '{block}'")
    return text


__all__ = ["column_order", "match_original_order"]
