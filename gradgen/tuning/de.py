"""Differential evolution (scipy), a second gradient-free baseline beside CMA-ES.

scipy's ``differential_evolution`` with ``vectorized=True`` hands over a whole generation at
once, so each generation is ONE Arbor simulation of N original cells side by side, like a
CMA-ES generation (:meth:`gradgen.tuning.problem.TuningProblem.population`). DE needs a box:
z0 ± ``half_width`` (in z; e^±1 ≈ 0.37–2.7× a conductance with the ``log`` transform),
cut to the parameters' bounds. The first generation is drawn around z0 with spread
``sigma0`` (as CMA-ES starts), so every method starts from the same point. ``polish`` is off:
scipy would polish with finite-difference L-BFGS-B, which is not what is measured here.
No checkpoint: scipy's DE keeps its state internal.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np
from scipy.optimize import differential_evolution

from gradgen.tuning.optim import Budget, History, progress_bar
from gradgen.tuning.problem import TuningProblem


def run_de(problem: TuningProblem, budget: Budget, population: int = 20, sigma0: float = 0.1,
           half_width: float = 1.0, seed: int = 1, threads: int = 1, progress: bool = True,
           population_losses: Callable[[list], list[float]] | None = None) -> History:
    """DE (best1bin, deferred updating) from z0; ``budget.iterations`` caps the generations;
    ``population_losses`` evaluates a generation elsewhere (e.g. on dask workers)."""
    z0 = problem.param.z0()
    low, high = np.array([p.z_bounds() for p in problem.param.parameters]).T
    box = np.stack([np.maximum(z0 - half_width, low), np.minimum(z0 + half_width, high)], axis=1)
    rng = np.random.default_rng(seed)
    init = np.clip(z0 + sigma0 * rng.standard_normal((population, len(z0))), box[:, 0], box[:, 1])
    history = History()

    with progress_bar(budget, history, "de", progress) as bar:
        def losses(zs: np.ndarray) -> np.ndarray:  # zs: [K, population]
            start = time.perf_counter()
            candidates = list(zs.T)
            values = np.array(population_losses(candidates) if population_losses is not None
                              else [e.loss for e in problem.population(candidates, threads)])
            values[~np.isfinite(values)] = np.inf  # a failed run never wins
            best = int(np.argmin(values))
            history.record(len(history.rows), history.simulations
                           + len(candidates) * problem.simulations_per_evaluation,
                           history.seconds + time.perf_counter() - start, float(values[best]),
                           candidates[best])
            bar.set_postfix(best_rms_mV=f"{history.rows[-1]['best_rms_mV']:.3g}")
            bar.update()
            return values

        def stop(intermediate_result) -> bool:  # scipy passes the state under this name
            return history.done(budget)

        differential_evolution(losses, box, init=init, vectorized=True, updating="deferred",
                               maxiter=max(budget.iterations - 1, 1), polish=False, tol=0.0,
                               rng=seed, callback=stop)
    return history
