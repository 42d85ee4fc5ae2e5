"""Optimizer ``lbfgs``: scipy's L-BFGS-B on z with the loss gradient from the sensitivities.

The gradient method of the BrainPy single-neuron protocol (Wang et al. 2024), here with
dL/dz from one gradient-system run per evaluation: scipy asks for the loss and its gradient
at the same point, so each evaluation is cached by z and counts as one simulation per
protocol. Bounds on the physical values become bounds on z. A run that blows up is a very
large loss with a zero gradient, which the line search rejects.
"""
from __future__ import annotations

import math
import time

import numpy as np

from gradgen.errors import NonFiniteSimulation
from gradgen.extras import require
from gradgen.tuning.optim import FAILED_RUN_LOSS, Budget, History, progress_bar
from gradgen.tuning.problem import TuningProblem


class _Stop(Exception):
    """The budget is spent (raised from inside scipy's loop)."""


def run_lbfgs(problem: TuningProblem, budget: Budget, progress: bool = True) -> History:
    """L-BFGS-B from z0 until the budget (iterations = evaluations) is spent or it converges."""
    optimize = require("scipy.optimize", "tune", "L-BFGS-B")
    low, high = np.array([p.z_bounds() for p in problem.param.parameters]).T
    bounds = [(None if math.isinf(a) else a, None if math.isinf(b) else b) for a, b in zip(low, high)]
    history = History()
    cache: dict[bytes, tuple[float, np.ndarray]] = {}

    with progress_bar(budget, history, "l-bfgs-b", progress) as bar:
        def evaluate(z: np.ndarray) -> tuple[float, np.ndarray]:
            key = np.asarray(z, float).tobytes()
            if key in cache:
                return cache[key]
            if history.done(budget):
                raise _Stop
            start = time.perf_counter()
            try:
                e = problem.evaluate(z)
                loss, gradient = e.loss, np.asarray(e.gradient, float)
            except NonFiniteSimulation:
                loss, gradient = math.inf, np.zeros(len(z))
            history.record(len(history.rows), history.simulations + problem.simulations_per_evaluation,
                           history.seconds + time.perf_counter() - start, loss, z)
            bar.set_postfix(best_rms_mV=f"{history.rows[-1]['best_rms_mV']:.3g}")
            bar.update()
            if not (math.isfinite(loss) and np.all(np.isfinite(gradient))):
                loss, gradient = FAILED_RUN_LOSS, np.zeros(len(z))
            cache[key] = (loss, gradient)
            return loss, gradient

        try:
            optimize.minimize(evaluate, problem.param.z0(), jac=True, method="L-BFGS-B", bounds=bounds,
                              options={"maxiter": 10**6, "maxfun": 10**6, "ftol": 1e-12, "gtol": 1e-9})
        except _Stop:
            pass
    return history
