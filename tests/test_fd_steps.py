"""Finite-difference steps of the check (gradgen.checks.fd) for small and zero parameters.

Published mechanisms hold parameters of 0 (121600's GHK leaks, ``pca = 0``) and tiny ones
(102288 IKCa, ``k2 = 1.3e-7`` mM). An absolute step floor moved them to negative values, where
the original blew up; steps are now relative to a nonzero θ, one-sided for θ = 0, and a
larger step at which the original blows up ends the retries with a note.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gradgen.checks.coverage import check_file, row_ok
from gradgen.checks.fd import LARGER_STEPS, finite_difference, fd_step
from gradgen.errors import GradgenError, NonFiniteSimulation

DATA = Path(__file__).parent / "data" / "modeldb"
DT, T_END = 0.0025, 20.0
FORWARD_BOUND_MV, GRADIENT_BOUND = 1e-8, 0.02  # the acceptance bounds


@pytest.mark.parametrize("value", [1.3e-7, -2.5e-9, 1e-3, 70.0])
def test_steps_of_a_nonzero_parameter_keep_its_sign_through_every_retry(value):
    largest = fd_step(value, 1e-4) * 10**LARGER_STEPS
    assert 0 < largest <= 0.1 * abs(value)  # value ± the largest retry keeps the sign


def test_zero_gets_an_absolute_step():
    assert fd_step(0.0, 1e-4) == pytest.approx(1e-7)


class Quadratic:
    """V = θ² + θ in every sample, blowing up below ``floor`` or above ``ceiling``: the FD
    logic alone (no simulator), to see which θ it visits."""

    def __init__(self, value: float, floor: float = -np.inf, ceiling: float = np.inf):
        self.defaults = {"m.p": value}
        self.floor, self.ceiling, self.visited = floor, ceiling, []

    def simulate(self, spec, sites, t_end, dt, gradients, values):
        x = values["m.p"]
        self.visited.append(x)
        if not self.floor <= x <= self.ceiling:
            raise NonFiniteSimulation("V", 1.0, sites[0])
        return type("Traces", (), {"v": np.full((1, 4), x * x + x)})()


def test_zero_is_differenced_on_its_positive_side_to_second_order():
    model = Quadratic(0.0, floor=0.0)
    fd = finite_difference(model, None, ["here"], 1.0, 0.1, "m.p")
    assert min(model.visited) == 0.0
    assert np.allclose(fd.dv, 1.0, rtol=1e-9)  # d(θ² + θ)/dθ at 0, exact for a quadratic


def test_a_parameter_that_does_not_move_v_at_zero_has_exactly_zero_differences():
    """121600 HH's el = 0 beside gl = 0: rounding in -3a + 4a - a made a nonzero FD."""
    class Constant(Quadratic):
        def simulate(self, spec, sites, t_end, dt, gradients, values):
            super().simulate(spec, sites, t_end, dt, gradients, values)
            return type("Traces", (), {"v": np.full((1, 4), -64.91237)})()

    fd = finite_difference(Constant(0.0), None, ["here"], 1.0, 0.1, "m.p")
    assert not np.any(fd.dv)


def test_the_steps_of_zero_go_on_to_a_tenth_of_its_unit_while_rounding_dominates():
    class Noisy(Quadratic):  # noise of 1e-6 in V: steps below ~1e-2 disagree by over 1e-3
        def simulate(self, spec, sites, t_end, dt, gradients, values):
            traces = super().simulate(spec, sites, t_end, dt, gradients, values)
            traces.v = traces.v + 1e-6 * (-1) ** len(self.visited)
            return traces

    model = Noisy(0.0)
    fd = finite_difference(model, None, ["here"], 1.0, 0.1, "m.p")
    assert max(model.visited) > 1e-2  # beyond the three decades of a nonzero θ
    assert np.allclose(fd.dv, 1.0, rtol=1e-3) and fd.convergence <= 1e-3


def test_a_retry_that_blows_up_ends_the_retries_with_a_note():
    class Noisy(Quadratic):  # noise of 1e-6 in V: the small steps disagree, larger ones are tried
        def simulate(self, spec, sites, t_end, dt, gradients, values):
            traces = super().simulate(spec, sites, t_end, dt, gradients, values)
            traces.v = traces.v + 1e-6 * (-1) ** len(self.visited)
            return traces

    model = Noisy(1.0, ceiling=1.005)  # steps 1e-4, 1e-5, then 1e-3; 1e-2 blows up
    fd = finite_difference(model, None, ["here"], 1.0, 0.1, "m.p")
    assert fd.note is not None and "stopped at 0.01" in fd.note, fd.note
    assert max(model.visited) == pytest.approx(1.01)  # tried once, then no larger step
    assert fd.convergence < 0.1  # the pair at 1e-3 and 1e-4 is kept


def test_a_first_step_that_blows_up_is_one_clear_error():
    model = Quadratic(1.0, ceiling=1.0)
    with pytest.raises(GradgenError, match=r"finite differences of m.p = 1 with step 0.0001: .*blew up"):
        finite_difference(model, None, ["here"], 1.0, 0.1, "m.p")


def test_a_zero_permeability_is_checked_without_going_negative():
    """pca = 0 of a GHK leak: FD of the original on its positive side, against the gradient."""
    row = check_file(DATA / "ghk_leak.mod", DT, T_END)
    assert row.error is None, row.error
    assert row_ok(row, FORWARD_BOUND_MV, GRADIENT_BOUND), row


def test_where_larger_steps_cross_a_jump_of_v_smaller_steps_show_the_derivative():
    """17664 Kdr: tauh jumps at v = −25 mV, so a step of ek that moves a sample of V across it
    makes V jump; the more so the larger the step. Here V = θ + 1e-3 beyond θ + 2e-6: steps of
    1e-4 and 1e-5 cross it (and so do the larger retries, less and less), 1e-6 and 1e-7 do not."""
    class Jump(Quadratic):
        def simulate(self, spec, sites, t_end, dt, gradients, values):
            x = values["m.p"]
            self.visited.append(x)
            return type("Traces", (), {"v": np.full((1, 4), x + 1e-3 * (x > 1.0 + 2e-6))})()

    model = Jump(1.0)
    fd = finite_difference(model, None, ["here"], 1.0, 0.1, "m.p")
    assert fd.convergence <= 1e-3 and np.allclose(fd.dv, 1.0, rtol=1e-6), (fd.convergence, fd.dv)
    assert min(abs(x - 1.0) for x in model.visited) == pytest.approx(1e-7)


def test_a_theta_of_tiny_effect_is_shown_converged_at_ten_percent_by_a_thirty_percent_step():
    """243448 trpm8's p_ca moves V by ~1e-9 mV at 10 %: the differences carry a rounding floor
    (~1e-12 mV) that keeps the steps up to 10 % apart; the 30 % step agrees with the 10 % one.
    Here V = 1e-9·θ plus 5e-14 of noise: 1 % vs 10 % differ by ~3e-3, 10 % vs 30 % by ~3e-4."""
    class Tiny(Quadratic):
        def simulate(self, spec, sites, t_end, dt, gradients, values):
            x = values["m.p"]
            self.visited.append(x)
            return type("Traces", (), {"v": (1e-9 * x + 5e-14 * np.sin(1e9 * x + np.arange(4)))[None, :]})()

    model = Tiny(1.0)
    fd = finite_difference(model, None, ["here"], 1.0, 0.1, "m.p")
    assert max(model.visited) == pytest.approx(1.3) and min(model.visited) > 0
    assert fd.convergence <= 1e-3 and np.allclose(fd.dv, 1e-9, rtol=2e-3), (fd.convergence, fd.dv)
