"""Levenberg–Marquardt on the sensitivity Jacobian (optimizer ``lm``).

The gradient system gives every dV(t)/dθ_k, hence the whole residual Jacobian J = dr/dz of
the least-squares loss (:mod:`gradgen.losses`), not just a gradient. A Gauss–Newton-type
method uses it: near the optimum it converges in a handful of runs where Adam crawls along
the badly conditioned directions.

The solver is scipy's ``least_squares(method="trf", tr_solver="exact")`` rather than a loop
of our own, because it already does what the issue demands:

- **non-finite run = rejected step**: trf shrinks its trust region to a quarter of the
  step and tries again when the residuals at a trial point are not finite;
- **unidentified directions stay still**: the exact trust-region step is the LM step
  −Σ s_i/(s_i² + λ)·(u_i·r)·v_i, with λ from the trust radius; a direction whose singular
  value s_i is tiny moves by ≈ s_i/λ·(u_i·r) ≈ 0 instead of the Gauss–Newton 1/s_i.
  ``x_scale=1`` on purpose: z is already dimensionless (e-folds with the ``log``
  transform), and ``x_scale="jac"`` would enlarge exactly the weakly determined directions;
- **bounds** (the transform's image of ``[tune.bounds]``) are kept by trf's
  strictly-feasible reflective steps, so no run sees a parameter outside them.

Cost accounting: ``least_squares`` asks for r at a trial point and, if it accepts it, for J
there; both come from the SAME gradient-system run (cached by z), so every trial point costs
one gradient run per protocol, and each is counted as one simulation per protocol.
Stopping: ``iterations`` caps the evaluations, ``seconds`` the wall time, ``stop_rms_mV``
the best RMS error; otherwise scipy's own tolerances (ftol = xtol = gtol = 1e-10).

Checkpoint ``lm.npz`` (best z and the history as JSON, no pickle). trf's trust radius is
internal to scipy, so a resumed run restarts trf from the best z with the history
continued; its first evaluation repeats the best point (one extra run).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares

from gradgen.errors import GradgenError
from gradgen.tune_optim import Budget, History, _bar
from gradgen.tune_problem import Evaluation, TuningProblem

TOLERANCE = 1e-10  # scipy's ftol, xtol and gtol: converge fully unless the budget stops it


class _Stop(Exception):
    """The budget is spent (raised inside scipy's loop, caught around it)."""


@dataclass
class LeastSquaresRun:
    """The history and J = dr/dz at the start and at the best point."""

    history: History
    start_jacobian: np.ndarray | None
    end_jacobian: np.ndarray | None
    status: str


class _Evaluations:
    """Residuals and Jacobian of the same gradient run, cached by z; records the history."""

    def __init__(self, problem: TuningProblem, history: History, budget: Budget, bar):
        self.problem, self.history, self.budget, self.bar = problem, history, budget, bar
        self.last_key: bytes | None = None
        self.last: Evaluation | None = None
        self.first: Evaluation | None = None
        self.best: Evaluation | None = None

    def evaluate(self, z: np.ndarray) -> Evaluation:
        key = np.asarray(z, float).tobytes()
        if key == self.last_key:
            return self.last
        if self.history.done(self.budget):
            raise _Stop
        start = time.perf_counter()
        evaluation = self.problem.evaluate(z)
        elapsed = self.history.seconds + time.perf_counter() - start
        self.history.record(len(self.history.rows),
                            self.history.simulations + self.problem.simulations_per_evaluation,
                            elapsed, evaluation.loss, z)
        if self.first is None:
            self.first = evaluation
        if math.isfinite(evaluation.loss) and (self.best is None or evaluation.loss < self.best.loss):
            self.best = evaluation
        self.last_key, self.last = key, evaluation
        self.bar.set_postfix(best_rms_mV=f"{self.history.rows[-1]['best_rms_mV']:.3g}")
        self.bar.update()
        return evaluation

    def residuals(self, z: np.ndarray) -> np.ndarray:
        r = self.evaluate(z).residuals
        return r if np.all(np.isfinite(r)) else np.full(r.shape, np.nan)

    def jacobian(self, z: np.ndarray) -> np.ndarray:
        return self.evaluate(z).jacobian


def run_lm(problem: TuningProblem, budget: Budget, checkpoint: Path | None = None,
           progress: bool = True) -> LeastSquaresRun:
    """Levenberg–Marquardt (scipy trf, exact trust-region steps) on z from z0 (or the checkpoint)."""
    if problem.loss.name != "least_squares":
        raise GradgenError(f"optimizer 'lm' needs the least-squares loss, not '{problem.loss.name}'")
    z0, history = problem.param.z0(), History()
    if checkpoint is not None and checkpoint.exists():
        z0, history = _load(checkpoint)
    low, high = np.array([p.z_bounds() for p in problem.param.parameters]).T
    z0 = np.clip(z0, np.nextafter(low, high), np.nextafter(high, low))  # trf starts strictly inside
    status = "budget"
    with _bar(budget, history, "lm", progress) as bar:
        evaluations = _Evaluations(problem, history, budget, bar)
        if history.done(budget):
            return LeastSquaresRun(history, None, None, "budget")
        try:
            result = least_squares(
                evaluations.residuals, z0, jac=evaluations.jacobian, bounds=(low, high),
                method="trf", tr_solver="exact", x_scale=1.0, ftol=TOLERANCE, xtol=TOLERANCE,
                gtol=TOLERANCE, callback=lambda _: _save(checkpoint, history),
                max_nfev=max(budget.iterations - len(history.rows), 1))
            status = result.message
        except _Stop:
            pass
        except ValueError as error:
            if evaluations.first is not None and not math.isfinite(evaluations.first.loss):
                raise GradgenError("the model's run at the start point is not finite",
                                   hint="check the start values and the time step") from None
            raise
        _save(checkpoint, history)
    end = evaluations.best.jacobian if evaluations.best is not None else None
    start = evaluations.first.jacobian if evaluations.first is not None else None
    return LeastSquaresRun(history, start, end, status)


def _save(path: Path | None, history: History) -> None:
    if path is None or history.best_z is None:
        return
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, z=np.array(history.best_z), history=history.to_json())
    tmp.replace(path)


def _load(path: Path) -> tuple[np.ndarray, History]:
    try:
        with np.load(path) as data:
            return np.array(data["z"], float), History.from_json(str(data["history"]))
    except (OSError, KeyError, ValueError) as error:
        raise GradgenError(f"checkpoint {path} cannot be read ({error})",
                           hint="delete it to start afresh") from None
