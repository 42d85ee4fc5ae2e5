"""Elimination as straight-line code (gradgen.sensitivity.linear_solve) against numpy, and
the 12-state KINETIC scheme with a LINEAR INITIAL (Arbor's allen NaV) through lowering."""
from pathlib import Path

import numpy as np
import pytest
import sympy

from gradgen.sensitivity.linear_solve import eliminate

NAV = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "arbor-catalogue" / "allen" / "NaV.mod"


def _run(statements, values):
    env = dict(values)
    for symbol, expr in statements:
        env[symbol] = float(expr.xreplace(env))
    return env


@pytest.mark.parametrize("swapped", [False, True])
def test_elimination_code_solves_like_numpy(swapped):
    rng = np.random.default_rng(3)
    n = 6
    pattern = rng.random((n, n)) < 0.5
    np.fill_diagonal(pattern, True)
    # swapped: equations in another order, so some diagonal entries are structurally zero
    order = [1, 0, 3, 2, 5, 4] if swapped else list(range(n))
    symbols = {(order[i], j): sympy.Symbol(f"m{i}_{j}") for i in range(n) for j in range(n) if pattern[i, j]}
    matrix = sympy.Matrix(n, n, lambda i, j: symbols.get((i, j), 0))
    if swapped:
        assert any(matrix[i, i] == 0 for i in range(n))
    values = {s: rng.normal() + (5.0 if order.index(i) == j else 0.0) for (i, j), s in symbols.items()}
    rhs = [sympy.Symbol(f"r{i}") for i in range(n)]
    values.update({r: rng.normal() for r in rhs})
    elimination = eliminate(matrix, "t")
    solve, x = elimination.solve(rhs)
    env = _run(elimination.statements + solve, values)
    numeric = np.array(matrix.xreplace(values), dtype=float)
    expected = np.linalg.solve(numeric, [values[r] for r in rhs])
    got = np.array([env[xi] if isinstance(xi, sympy.Symbol) else float(xi) for xi in x])
    assert np.allclose(got, expected, rtol=1e-12, atol=1e-12)
    # structural zeros skip work: no statement multiplies by a known zero
    assert len(elimination.statements) < n ** 3


def test_twelve_state_nav_lowers_to_systems_not_closed_forms():
    if not NAV.exists():
        pytest.skip(f"{NAV} absent")
    from gradgen.nmodl.lower import lower_file
    from gradgen.params import parse_param_list
    from gradgen.sensitivity.derive import derive_contributor

    low = lower_file(NAV)
    assert len(low.initial_equations) == 12  # the LINEAR block of INITIAL, kept as equations
    system = derive_contributor(low, parse_param_list(["NaV.gbar,NaV.Con"]))
    # the largest generated expression stays small (a closed form has thousands of operations)
    sizes = [sympy.count_ops(a.expr) for code in (system.initial, system.phase_b) for a in code.statements]
    assert max(sizes) < 200, max(sizes)
