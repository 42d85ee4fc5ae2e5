"""θ the check leaves out with a reason (gradgen.checks.excluded), and θ values set for a check.

- Switch times (116094's electrode stimuli: ``del``/``dur`` compared with t): V jumps in them,
  so they are not FD-compared; the check runs at values that switch the stimulus on
  (``check_file(values=…)``, ``gradgen check --set``), since their defaults (0) never do.
- θ that V does not visibly depend on (180370 mAHP's ``cainf``, read only as ``cai − cainf``):
  FD differences that stay at the rounding floor over three decades of steps, with a gradient
  that predicts no more, are left out instead of compared (rel. error 1 against noise).
"""
from __future__ import annotations

import subprocess
from unittest.mock import ANY
import sys
from pathlib import Path

import numpy as np

from gradgen.checks.coverage import check_file, row_ok
from gradgen.checks.excluded import equality_switches, invisible, switch_times
from gradgen.checks.fd import finite_difference
from gradgen.nmodl.lower import lower_file

DATA = Path(__file__).parent / "data" / "modeldb"
DT, T_END = 0.0025, 20.0
FORWARD_BOUND_MV, GRADIENT_BOUND = 1e-8, 0.02  # the acceptance bounds
SWITCHED_ON = {"swclamp.del": 5.0, "swclamp.dur": 10.0, "swclamp.amp": 0.002}


def test_switch_times_are_the_parameters_compared_with_t_where_the_switch_falls_in_the_run():
    clamp = lower_file(DATA / "switched_clamp.mod")
    assert set(switch_times(clamp, {"del": 5.0, "dur": 10.0}, DT, T_END)) == {"del", "dur"}
    assert set(switch_times(clamp, {"del": 5.0, "dur": 100.0}, DT, T_END)) == {"del"}  # on to the end
    assert switch_times(clamp, {"del": 50.0, "dur": 10.0}, DT, T_END) == {}  # never on in 20 ms
    assert switch_times(clamp, {"del": 5.0, "dur": 15.0 - DT}, DT, T_END) == {"del": ANY, "dur": ANY}
    # off at 20.0025 ms: after the last step (from 19.9975 ms), so nothing switches off
    assert set(switch_times(clamp, {"del": 5.0, "dur": 15.0 + DT}, DT, T_END)) == {"del"}
    assert switch_times(lower_file(DATA / "offset_gate.mod"), {}, DT, T_END) == {}


class Noisy:
    """V = 65 + slope·θ plus rounding-like noise of 1e-13 mV that changes with θ (no simulator)."""

    def __init__(self, value: float, slope: float):
        self.defaults, self.slope = {"m.p": value}, slope

    def simulate(self, spec, sites, t_end, dt, gradients, values):
        x = values["m.p"]
        noise = 1e-13 * np.sin(1e9 * x + np.arange(4))  # flat in the step's size
        return type("Traces", (), {"v": (65.0 + self.slope * x + noise)[None, :]})()


def test_a_parameter_read_only_in_equalities_is_a_switch(tmp_path):
    """26997 kdr's maflag picks one of three rate formulas: read only in == (a flag), it is a
    switch; vh, read in the formulas and in a == too, is not."""
    mod = tmp_path / "flag.mod"
    mod.write_text("""NEURON { SUFFIX flag NONSPECIFIC_CURRENT i RANGE form }
PARAMETER { g = 0.001 (S/cm2) form = 1 vh = -40 (mV) }
STATE { m }
INITIAL { m = 0 }
BREAKPOINT { SOLVE d METHOD cnexp  i = g*m*(v + 70) }
DERIVATIVE d { m' = (rate(v) - m)/2 }
FUNCTION rate(v) {
  if (form == 1) { rate = 1/(1 + exp(-(v - vh)/6)) } else { rate = exp((v - vh)/6) }
  if (vh != 0) { rate = rate*1 }
}
""")
    assert set(equality_switches(lower_file(mod))) == {"form"}
    row = check_file(mod, DT, T_END)
    assert row.error is None and row_ok(row, FORWARD_BOUND_MV, GRADIENT_BOUND), row
    assert set(row.excluded) == {"flag.form"}


def test_differences_at_the_rounding_floor_with_a_gradient_predicting_no_more_are_left_out():
    fd = finite_difference(Noisy(1e-4, 0.0), None, ["here"], 1.0, 0.1, "m.p")
    assert fd.convergence > 1e-3 and fd.spans[-1][0] >= 1e3 * fd.spans[0][0]
    assert invisible(fd.spans, False, gradient_max=0.0) is not None
    # a slope near the rounding floor (17664 CalciumP's cainf, 1e-11 mV at a 10 % step) too,
    # where no steps agree; here the 30 % step shows the derivative converged: it is compared
    tiny = finite_difference(Noisy(1e-4, 1e-6), None, ["here"], 1.0, 0.1, "m.p")
    assert invisible(tiny.spans, False, gradient_max=1e-6) is not None
    assert tiny.convergence <= 1e-3 and invisible(tiny.spans, True, gradient_max=1e-6) is None


def test_a_gradient_that_predicts_a_visible_change_is_compared_not_left_out():
    fd = finite_difference(Noisy(1e-4, 0.0), None, ["here"], 1.0, 0.1, "m.p")
    # 1 mV per unit at the largest step (1e-5) predicts 2e-5 mV: far above the floor
    assert invisible(fd.spans, False, gradient_max=1.0) is None


def test_differences_that_move_v_visibly_are_compared_even_against_a_zero_gradient():
    """A slope whose smallest differences are rounding still moves V by 2e-9 mV at the
    largest step: a wrong zero gradient of such a θ is compared (and fails), never left out."""
    fd = finite_difference(Noisy(1e-4, 1e-4), None, ["here"], 1.0, 0.1, "m.p")
    assert fd.spans[-1][1] > 1e-10
    assert invisible(fd.spans, fd.convergence <= 1e-3, gradient_max=0.0) is None


def test_set_needs_name_equals_number():
    run = subprocess.run([sys.executable, "-m", "gradgen.cli", "check", str(DATA / "switched_clamp.mod"),
                          "--all-params", "--set", "swclamp.amp=lots"], capture_output=True, text=True)
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert "--set swclamp.amp=lots" in run.stderr


def test_a_stimulus_off_by_default_moves_nothing_and_says_so():
    row = check_file(DATA / "switched_clamp.mod", DT, T_END)
    assert row.error is not None and "no parameter moves V" in row.error, row


def test_a_stimulus_switched_on_is_checked_without_its_switch_times():
    row = check_file(DATA / "switched_clamp.mod", DT, T_END, values=SWITCHED_ON)
    assert row.error is None, row.error
    assert row_ok(row, FORWARD_BOUND_MV, GRADIENT_BOUND), row
    assert set(row.excluded) == {"swclamp.del", "swclamp.dur"} and row.values == SWITCHED_ON
    assert row.worst_parameter in {"swclamp.amp", "swclamp.tau", "swclamp.erev"}


def test_setting_an_unknown_parameter_is_refused():
    row = check_file(DATA / "switched_clamp.mod", DT, T_END, values={"swclamp.gain": 1.0})
    assert row.error is not None and "swclamp.gain" in row.error


def test_a_parameter_v_does_not_depend_on_is_left_out_with_its_reason():
    row = check_file(DATA / "offset_gate.mod", DT, T_END)
    assert row.error is None, row.error
    assert row_ok(row, FORWARD_BOUND_MV, GRADIENT_BOUND), row
    assert set(row.excluded or {}) == {"offgate.sinf"}, row.excluded
    assert "does not visibly depend" in row.excluded["offgate.sinf"]


def test_set_of_a_name_that_is_not_checked_is_one_line_exit_2():
    run = subprocess.run([sys.executable, "-m", "gradgen.cli", "check", str(DATA / "switched_clamp.mod"),
                          "--all-params", "--set", "swclamp.gain=1"], capture_output=True, text=True)
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert "swclamp.gain" in run.stderr


def test_a_model_that_is_not_finite_at_its_defaults_is_said_to_be(tmp_path):
    """168858 cad's pool parameters default to 0 (set from hoc): its own V is NaN, in NEURON
    as in Arbor; the check says the model is not finite, not that the gradient blew up."""
    mod = tmp_path / "zero.mod"
    mod.write_text("""NEURON { SUFFIX zero NONSPECIFIC_CURRENT i RANGE g, k }
PARAMETER { g = 0.001 (S/cm2) k = 0 }
BREAKPOINT { i = g*(v + 70)/k }
""")
    row = check_file(mod, DT, T_END)
    assert row.error.startswith("the model itself is not finite at these parameter values: V from t = ")
