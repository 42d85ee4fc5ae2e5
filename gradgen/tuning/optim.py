"""The optimisers: Adam on the gradient system, CMA-ES on populations of original cells.

Both work on the same z (see :mod:`gradgen.tuning.params`) and the same loss, record the
loss after every simulation batch (one gradient-system run counts as one simulation, a
CMA-ES generation as its population size), show a tqdm bar, stop at an iteration cap, a
wall-time budget or a target RMS error, and can resume from a checkpoint (data only, see
:mod:`gradgen.tuning.checkpoint`; Adam: z and optax's state leaves; CMA-ES: every generation's
candidates and losses, replayed through ``ask``/``tell`` so that a resumed run continues
exactly as an uninterrupted one would). A non-finite loss or gradient stops the run with a
clear error and is never saved.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from tqdm import tqdm

from gradgen.errors import GradgenError
from gradgen.extras import require
from gradgen.losses import rms_of_loss
from gradgen.tuning.checkpoint import Checkpoint
from gradgen.tuning.problem import TuningProblem


@dataclass
class Budget:
    """When to stop: whichever comes first."""

    iterations: int
    seconds: float = math.inf
    rms_mV: float = 0.0  # stop once the best RMS error is at or below this


@dataclass
class History:
    """One row per iteration: cumulative simulations and seconds, loss, best loss so far."""

    rows: list[dict] = field(default_factory=list)
    best_z: list[float] | None = None
    best_loss: float = math.inf

    def record(self, iteration: int, simulations: int, seconds: float, loss: float,
               z: np.ndarray) -> None:
        """A non-finite loss (a failed run) is recorded as null and never becomes the best."""
        finite = math.isfinite(loss)
        if finite and loss < self.best_loss:
            self.best_loss, self.best_z = loss, [float(x) for x in z]
        self.rows.append({"iteration": iteration, "simulations": simulations,
                          "seconds": seconds, "loss": loss if finite else None,
                          "rms_mV": rms_of_loss(loss) if finite else None,
                          "best_loss": self.best_loss, "best_rms_mV": rms_of_loss(self.best_loss)})

    @property
    def simulations(self) -> int:
        return self.rows[-1]["simulations"] if self.rows else 0

    @property
    def seconds(self) -> float:
        return self.rows[-1]["seconds"] if self.rows else 0.0

    def done(self, budget: Budget) -> bool:
        return bool(self.rows) and (len(self.rows) >= budget.iterations
                                    or self.seconds >= budget.seconds
                                    or rms_of_loss(self.best_loss) <= budget.rms_mV)

    def first_reaching(self, rms_mV: float) -> dict | None:
        """The first row whose best RMS is at or below ``rms_mV``."""
        return next((r for r in self.rows if r["best_rms_mV"] <= rms_mV), None)

    def as_dict(self) -> dict:
        return {"rows": self.rows, "best_z": self.best_z, "best_loss": self.best_loss}

    @staticmethod
    def from_dict(data: dict) -> "History":
        return History(data["rows"], data["best_z"], data["best_loss"])


def progress_bar(budget: Budget, history: History, label: str, show: bool) -> tqdm:
    return tqdm(total=budget.iterations, initial=len(history.rows), desc=label, disable=not show,
                unit="it", dynamic_ncols=True)


def run_adam(problem: TuningProblem, budget: Budget, learning_rate: float = 1e-2,
             checkpoint: Checkpoint | None = None, progress: bool = True) -> History:
    """Adam (optax) on z; z is clipped to the bounds after every step."""
    optax = require("optax", "tune", "Adam")
    import jax

    jax.config.update("jax_enable_x64", True)  # float64 everywhere: gradients, moments
    optimiser = optax.adam(learning_rate)
    z = problem.param.z0()
    state = optimiser.init(jax.numpy.asarray(z))
    history = History()
    saved = checkpoint.load() if checkpoint is not None else None
    if saved is not None:
        z, state, history = _adam_from(checkpoint, saved, z, state)
    with progress_bar(budget, history, "adam", progress) as bar:
        while not history.done(budget):
            start = time.perf_counter()
            evaluation = problem.evaluate(z)
            _require_finite([evaluation.loss, *evaluation.gradient], len(history.rows), z)
            updates, state = optimiser.update(jax.numpy.asarray(evaluation.gradient), state)
            elapsed = history.seconds + time.perf_counter() - start
            history.record(len(history.rows), history.simulations + problem.simulations_per_evaluation,
                           elapsed, evaluation.loss, z)
            z = problem.param.clip(z + np.asarray(updates))
            bar.set_postfix(rms_mV=f"{history.rows[-1]['rms_mV']:.3g}")
            bar.update()
            if checkpoint is not None:
                leaves = jax.tree_util.tree_leaves(state)
                checkpoint.save({"history": history.as_dict()},
                                {"z": z, **{f"leaf{i}": np.asarray(x) for i, x in enumerate(leaves)}})
    return history


def _require_finite(values, iteration: int, z) -> None:
    """Stop at the first non-finite loss or gradient instead of carrying it on."""
    if not np.all(np.isfinite(np.asarray(values, float))):
        raise GradgenError(f"iteration {iteration}: the simulation at z = "
                           f"{[float(x) for x in np.ravel(z)]} gave a non-finite loss or gradient",
                           hint="lower the step size or set [tune.bounds]; the checkpoint keeps "
                                "the last finite iteration")


def _adam_from(checkpoint: Checkpoint, saved: tuple[dict, dict], z0: np.ndarray, template):
    """z, optax state and history from a checkpoint's arrays (names and shapes checked)."""
    import jax

    header, arrays = saved
    leaves, treedef = jax.tree_util.tree_flatten(template)
    names = [f"leaf{i}" for i in range(len(leaves))]
    if set(arrays) != {"z", *names} or arrays["z"].shape != z0.shape or \
            any(arrays[n].shape != np.shape(x) for n, x in zip(names, leaves)):
        raise checkpoint.refuse("does not hold this optimiser's state")
    state = jax.tree_util.tree_unflatten(
        treedef, [jax.numpy.asarray(arrays[n], dtype=np.asarray(x).dtype) for n, x in zip(names, leaves)])
    return arrays["z"], state, _history(checkpoint, header)


def _history(checkpoint: Checkpoint, header: dict) -> History:
    try:
        history = History.from_dict(header["history"])
        if all(isinstance(r, dict) and {"simulations", "seconds", "best_loss"} <= set(r) for r in history.rows):
            return history
    except (KeyError, TypeError):
        pass
    raise checkpoint.refuse("has no readable history")


#: The loss an optimiser is told for a run that blew up: worse than any real loss, and
#: finite, so that CMA-ES checkpoints and their replay stay data and scipy's line search
#: (L-BFGS-B) rejects the step.
FAILED_RUN_LOSS = 1e300


def run_cmaes(problem: TuningProblem, budget: Budget, population: int = 20, sigma0: float = 0.1,
              seed: int = 1, threads: int = 1, checkpoint: Checkpoint | None = None,
              progress: bool = True,
              population_losses: Callable[[list], list[float]] | None = None) -> History:
    """CMA-ES (``cma``) from z0 with step size ``sigma0``; each generation is one Arbor run,
    or ``population_losses`` (e.g. :class:`gradgen.tuning.distributed.DaskPopulation`)."""
    cma = require("cma", "tune", "CMA-ES")

    low, high = np.array([p.z_bounds() for p in problem.param.parameters]).T
    bounds = [[None if math.isinf(x) else float(x) for x in low],
              [None if math.isinf(x) else float(x) for x in high]]
    strategy = cma.CMAEvolutionStrategy(problem.param.z0(), sigma0, {
        "popsize": population, "seed": seed, "bounds": bounds, "verbose": -9})
    history = History()
    generations: list[tuple[np.ndarray, np.ndarray]] = []
    saved = checkpoint.load() if checkpoint is not None else None
    if saved is not None:
        history, generations = _replay(checkpoint, saved, strategy)
    with progress_bar(budget, history, "cma-es", progress) as bar:
        while not history.done(budget):
            start = time.perf_counter()
            candidates = strategy.ask()
            losses = (population_losses(candidates) if population_losses is not None
                      else [e.loss for e in problem.population(candidates, threads)])
            losses = [x if math.isfinite(x) else FAILED_RUN_LOSS for x in losses]
            if min(losses) >= FAILED_RUN_LOSS:
                raise GradgenError(f"generation {len(history.rows)}: every member's run blew up",
                                   hint="lower sigma0 or set [tune.bounds]")
            strategy.tell(candidates, losses)
            elapsed = history.seconds + time.perf_counter() - start
            best = int(np.argmin(losses))
            history.record(len(history.rows),
                           history.simulations + len(candidates) * problem.simulations_per_evaluation,
                           elapsed, losses[best], np.asarray(candidates[best]))
            bar.set_postfix(best_rms_mV=f"{history.rows[-1]['best_rms_mV']:.3g}")
            bar.update()
            generations.append((np.array(candidates), np.array(losses)))
            if checkpoint is not None:
                checkpoint.save({"history": history.as_dict()}, {
                    "candidates": np.array([c for c, _ in generations]),
                    "losses": np.array([f for _, f in generations]),
                    "mean": strategy.mean, "sigma": np.array(strategy.sigma)})
    return history


def _replay(checkpoint: Checkpoint, saved: tuple[dict, dict], strategy) -> tuple[History, list]:
    """Bring a fresh strategy (same options and seed) to the saved generation by asking
    and telling again what the saved generations asked and were told; any difference (another
    ``cma`` or numpy version) is an error, not a different run."""
    header, arrays = saved
    candidates, losses = arrays.get("candidates"), arrays.get("losses")
    if set(arrays) != {"candidates", "losses", "mean", "sigma"} or candidates.ndim != 3 or \
            losses.shape != candidates.shape[:2] or candidates.shape[2] != len(strategy.mean):
        raise checkpoint.refuse("does not hold CMA-ES generations")
    for asked, told in zip(candidates, losses):
        again = strategy.ask()
        if not np.array_equal(np.array(again), asked):
            raise checkpoint.refuse("does not replay with the installed cma/numpy")
        strategy.tell(again, [float(f) for f in told])
    if not (np.array_equal(strategy.mean, arrays["mean"]) and float(strategy.sigma) == float(arrays["sigma"])):
        raise checkpoint.refuse("does not replay to its saved mean and step size")
    return _history(checkpoint, header), list(zip(candidates, losses))
