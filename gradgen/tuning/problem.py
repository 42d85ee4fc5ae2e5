"""A tuning problem: one cell, one voltage probe, a target trace and the loss.

The loss is L = ½·mean((V − V*)²) over the selected samples (every ``sample_dt``, optionally
only inside time windows). Gradient-based methods get dL/dz from one gradient-system run;
population methods get L for many parameter vectors from one Arbor simulation of the
*original* cells, side by side.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Sequence

import arbor
import numpy as np

from gradgen.errors import GradgenError, GradgenWarning
from gradgen.targets.arbor.blowup import first_nonfinite
from gradgen.targets.arbor.decor import CellSpec
from gradgen.targets.arbor.model import GradientModel
from gradgen.targets.arbor.recipe import CellsRecipe, regular_schedule
from gradgen.targets.arbor.sites import cv_centre
from gradgen.tuning.params import Parameterisation


@dataclass
class Protocol:
    """What is simulated and which samples the loss sees (ms)."""

    t_end: float
    dt: float = 0.025
    sample_dt: float = 1.0
    windows: tuple[tuple[float, float], ...] = ()  # empty: every sample

    def times(self) -> np.ndarray:
        return np.arange(0.0, self.t_end, self.sample_dt)

    def mask(self) -> np.ndarray:
        t = self.times()
        if not self.windows:
            return np.ones(t.shape, bool)
        inside = np.zeros(t.shape, bool)
        for start, stop in self.windows:
            inside |= (t >= start) & (t < stop)
        if not inside.any():
            raise GradgenError(f"the loss windows {list(self.windows)} contain no sample",
                               hint=f"samples are every {self.sample_dt} ms in [0, {self.t_end})")
        return inside


def rms_of_loss(loss: float) -> float:
    """RMS voltage error (mV) of a ½·mean-square loss."""
    return float(np.sqrt(2.0 * loss))


@dataclass
class Evaluation:
    loss: float
    v: np.ndarray  # the sampled trace
    gradient: np.ndarray | None = None  # dL/dz


class TuningProblem:
    """Loss (and its gradient) of a parameterisation against a target trace."""

    def __init__(self, model: GradientModel, spec: CellSpec, site: str, protocol: Protocol,
                 parameterisation: Parameterisation, target: np.ndarray | None = None):
        missing = set(parameterisation.thetas) - {p.name for p in model.params}
        if missing:
            raise GradgenError(f"the gradient model lacks parameter(s) {', '.join(sorted(missing))}",
                               hint="convert with every tuned copy as a parameter")
        self.model, self.spec, self.site = model, spec, site
        self.protocol, self.param = protocol, parameterisation
        self.mask = protocol.mask()
        self.target = None if target is None else self._checked(np.asarray(target, float))

    def _checked(self, target: np.ndarray) -> np.ndarray:
        n = len(self.protocol.times())
        if target.shape != (n,):
            raise GradgenError(f"the target has {target.size} samples, the protocol makes {n}",
                               hint=f"sample it every {self.protocol.sample_dt} ms over "
                                    f"[0, {self.protocol.t_end}) ms")
        return target

    def trace(self, values: dict[str, float]) -> np.ndarray:
        """V at the probe of the original model with these model values (e.g. a target)."""
        p = self.protocol
        traces = self.model.simulate(self.spec, [self.site], p.t_end, p.dt, gradients=False,
                                     values=values, sample_dt=p.sample_dt)
        return traces.v[0]

    def set_target(self, target: np.ndarray) -> None:
        self.target = self._checked(np.asarray(target, float))

    def loss_of(self, v: np.ndarray) -> float:
        residual = (v - self.target)[self.mask]
        return 0.5 * float(np.mean(residual**2))

    def evaluate(self, z: Sequence[float]) -> Evaluation:
        """Loss and dL/dz from one run of the gradient system."""
        p = self.protocol
        traces = self.model.simulate(self.spec, [self.site], p.t_end, p.dt, gradients=True,
                                     values=self.param.model_values(z), sample_dt=p.sample_dt)
        v = traces.v[0]
        residual = (v - self.target)[self.mask]
        dv = traces.dv[0][:, self.mask]  # [k, t]
        theta_grad = dv @ residual / residual.size
        by_name = {ref.name: float(g) for ref, g in zip(self.model.params, theta_grad)}
        return Evaluation(self.loss_of(v), v, self.param.z_gradient(z, by_name))

    def population(self, zs: Sequence[Sequence[float]], threads: int = 1) -> list[Evaluation]:
        """Losses of many parameter vectors: N original cells in one Arbor simulation."""
        cells = [self.model.cell(self.spec, gradients=False, values=self.param.model_values(z))
                 for z in zs]
        traces = run_population(cells, self.model.properties(False), cv_centre(cells[0], self.site),
                                self.protocol, threads)
        blown = [first_nonfinite(self.protocol.times()[:len(v)], v[None, :], None, [self.site]) for v in traces]
        failed = [(i, b) for i, b in enumerate(blown) if b is not None]
        if failed:  # CMA-ES ranks an infinite loss last; one bad member must not stop the run
            warnings.warn(f"{len(failed)} of {len(traces)} population members blew up (member "
                          f"{failed[0][0]}: {failed[0][1].message}); their losses count as infinite",
                          GradgenWarning, stacklevel=2)
        return [Evaluation(math.inf if b is not None else self.loss_of(v), v)
                for v, b in zip(traces, blown)]


def run_population(cells: list[arbor.cable_cell], props, site: str, protocol: Protocol,
                   threads: int) -> list[np.ndarray]:
    """V at ``site`` of N unconnected cells simulated side by side in one Arbor simulation."""
    recipe = CellsRecipe(cells, props, [[arbor.cable_probe_membrane_voltage(site, "v")]] * len(cells),
                         threads=threads)
    recipe.sample_run([(gid, "v") for gid in range(len(cells))], protocol.t_end, protocol.dt,
                      regular_schedule(protocol.sample_dt, protocol.t_end))
    return [recipe.samples((gid, "v"))[:, 1] for gid in range(len(cells))]
