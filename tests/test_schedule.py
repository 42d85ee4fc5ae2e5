"""The exact mechanism's statement order (gradgen.sensitivity.schedule): same values, fewer live."""
from __future__ import annotations

import random

import sympy

from gradgen.sensitivity.schedule import sink_temporaries
from gradgen.sensitivity.straight_line import Assignment, Code


def _run(code: Code, values: dict[str, float]) -> dict[str, float]:
    """Execute straight-line code on a copy of ``values``."""
    env = dict(values)
    for s in code.statements:
        env[s.target] = float(s.expr.subs({sympy.Symbol(n): v for n, v in env.items()}))
    return env


def _code(lines: list[tuple[str, str]], locals_: list[str]) -> Code:
    return Code([Assignment(t, sympy.sympify(e)) for t, e in lines], locals_)


def test_a_temporary_moves_to_its_first_reader():
    code = _code([("t0", "a*2"), ("t1", "b*3"), ("x", "t1 + 1"), ("y", "t0 + x")], ["t0", "t1"])
    order = [s.target for s in sink_temporaries(code).statements]
    assert order == ["t1", "x", "t0", "y"]


def test_a_temporary_stays_before_a_write_of_what_it_reads():
    # t0 reads s; s is stored before t0's reader: t0 must read the old s
    code = _code([("t0", "s*2"), ("s", "s + 1"), ("y", "t0")], ["t0"])
    sunk = sink_temporaries(code)
    assert [s.target for s in sunk.statements] == ["t0", "s", "y"]
    assert _run(sunk, {"s": 1.0})["y"] == 2.0


def test_chains_of_temporaries_keep_their_values():
    """A random DAG of temporaries with stores in between: every order the pass makes computes
    the same values as the original."""
    rng = random.Random(3)
    for _ in range(30):
        lines, temps, fields = [], [], ["f0", "f1", "f2"]
        for i in range(25):
            names = temps + fields
            a, b = rng.choice(names), rng.choice(names)
            if rng.random() < 0.25:
                target = rng.choice(fields)
            else:
                target = f"t{i}"
                temps.append(target)
            lines.append((target, f"{a} + 2*{b} + {i}"))
        code = _code(lines, temps)
        start = {"f0": 0.5, "f1": -1.25, "f2": 2.0}
        assert _run(sink_temporaries(code), start) == _run(code, start)
