"""The optimisers: Adam on the gradient system, CMA-ES on populations of original cells.

Both work on the same z (see :mod:`gradgen.tune_params`) and the same loss, record the
loss after every simulation batch (one gradient-system run counts as one simulation, a
CMA-ES generation as its population size), show a tqdm bar, stop at an iteration cap, a
wall-time budget or a target RMS error, and can resume from a checkpoint (Adam: NPZ with
the moments; CMA-ES: the pickled strategy, which is how ``cma`` saves itself).
"""
from __future__ import annotations

import json
import math
import pickle
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from gradgen.errors import GradgenError
from gradgen.tune_problem import TuningProblem, rms_of_loss


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
        if loss < self.best_loss:
            self.best_loss, self.best_z = loss, [float(x) for x in z]
        self.rows.append({"iteration": iteration, "simulations": simulations,
                          "seconds": seconds, "loss": loss, "rms_mV": rms_of_loss(loss),
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

    def to_json(self) -> str:
        return json.dumps({"rows": self.rows, "best_z": self.best_z, "best_loss": self.best_loss})

    @staticmethod
    def from_json(text: str) -> "History":
        data = json.loads(text)
        return History(data["rows"], data["best_z"], data["best_loss"])


def _bar(budget: Budget, history: History, label: str, show: bool) -> tqdm:
    return tqdm(total=budget.iterations, initial=len(history.rows), desc=label, disable=not show,
                unit="it", dynamic_ncols=True)


def run_adam(problem: TuningProblem, budget: Budget, learning_rate: float = 1e-2,
             checkpoint: Path | None = None, progress: bool = True) -> History:
    """Adam (optax) on z; z is clipped to the bounds after every step."""
    import jax
    import optax

    jax.config.update("jax_enable_x64", True)  # float64 everywhere: gradients, moments
    optimiser = optax.adam(learning_rate)
    z = problem.param.z0()
    state = optimiser.init(jax.numpy.asarray(z))
    history = History()
    if checkpoint is not None and checkpoint.exists():
        z, state, history = _load_adam(checkpoint, state)
    with _bar(budget, history, "adam", progress) as bar:
        while not history.done(budget):
            start = time.perf_counter()
            evaluation = problem.evaluate(z)
            updates, state = optimiser.update(jax.numpy.asarray(evaluation.gradient), state)
            elapsed = history.seconds + time.perf_counter() - start
            history.record(len(history.rows), history.simulations + 1, elapsed, evaluation.loss, z)
            z = problem.param.clip(z + np.asarray(updates))
            bar.set_postfix(rms_mV=f"{history.rows[-1]['rms_mV']:.3g}")
            bar.update()
            if checkpoint is not None:
                _save_adam(checkpoint, z, state, history)
    return history


def _save_adam(path: Path, z: np.ndarray, state, history: History) -> None:
    import jax

    leaves = jax.tree_util.tree_leaves(state)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, z=z, history=history.to_json(), **{f"leaf{i}": np.asarray(x) for i, x in enumerate(leaves)})
    tmp.replace(path)


def _load_adam(path: Path, template):
    import jax

    try:
        with np.load(path) as data:
            leaves, treedef = jax.tree_util.tree_flatten(template)
            if len([k for k in data.files if k.startswith("leaf")]) != len(leaves):
                raise GradgenError(f"checkpoint {path} was written by another optimiser setup",
                                   hint="delete it to start afresh")
            state = jax.tree_util.tree_unflatten(
                treedef, [jax.numpy.asarray(data[f"leaf{i}"]) for i in range(len(leaves))])
            return np.array(data["z"]), state, History.from_json(str(data["history"]))
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as error:
        raise _unreadable(path, error) from None


def _unreadable(path: Path, error: Exception) -> GradgenError:
    return GradgenError(f"checkpoint {path} is unreadable ({type(error).__name__}): truncated or "
                        "not written by gradgen", hint="delete it to start afresh")


def run_cmaes(problem: TuningProblem, budget: Budget, population: int = 20, sigma0: float = 0.1,
              seed: int = 1, threads: int = 1, checkpoint: Path | None = None,
              progress: bool = True) -> History:
    """CMA-ES (``cma``) from z0 with step size ``sigma0``; each generation is one Arbor run."""
    import cma

    if checkpoint is not None and checkpoint.exists():
        try:
            strategy, history = pickle.loads(checkpoint.read_bytes())
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as error:
            raise _unreadable(checkpoint, error) from None
    else:
        low, high = np.array([p.z_bounds() for p in problem.param.parameters]).T
        bounds = [[None if math.isinf(x) else float(x) for x in low],
                  [None if math.isinf(x) else float(x) for x in high]]
        strategy = cma.CMAEvolutionStrategy(problem.param.z0(), sigma0, {
            "popsize": population, "seed": seed, "bounds": bounds, "verbose": -9})
        history = History()
    with _bar(budget, history, "cma-es", progress) as bar:
        while not history.done(budget):
            start = time.perf_counter()
            candidates = strategy.ask()
            losses = [e.loss for e in problem.population(candidates, threads)]
            strategy.tell(candidates, losses)
            elapsed = history.seconds + time.perf_counter() - start
            best = int(np.argmin(losses))
            history.record(len(history.rows), history.simulations + len(candidates), elapsed,
                           losses[best], np.asarray(candidates[best]))
            bar.set_postfix(best_rms_mV=f"{history.rows[-1]['best_rms_mV']:.3g}")
            bar.update()
            if checkpoint is not None:
                tmp = checkpoint.with_name(checkpoint.name + ".tmp")
                tmp.write_bytes(pickle.dumps((strategy, history)))
                tmp.replace(checkpoint)
    return history
