"""A tuning problem: one cell, its protocols and probes, the targets and the loss.

A protocol is what is simulated (duration, steps, stimuli) and which samples the loss
sees; the problem's loss compares each (protocol, probe) trace with its target in residual
blocks (:mod:`gradgen.losses`): the config makes one per protocol (at its probe); the
problem takes any list. Gradient-based methods get the loss, dL/dz, the residuals and
their Jacobian dr/dz from one gradient-system run per protocol; population methods get the
loss of many parameter vectors from one Arbor simulation of the *original* cells per
protocol, side by side.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import warnings
from dataclasses import dataclass, field
from typing import Sequence

import arbor
import numpy as np
from arbor import units as U

from gradgen.errors import GradgenError, GradgenWarning
from gradgen.losses import (
    LOSSES,
    Loss,
    ResidualBlock,
    residuals,
    theta_gradient,
    theta_jacobian,
    to_z,
)
from gradgen.targets.arbor.blowup import first_nonfinite
from gradgen.targets.arbor.decor import CellSpec
from gradgen.targets.arbor.model import GradientModel
from gradgen.targets.arbor.recipe import CellsRecipe, regular_schedule
from gradgen.targets.arbor.sites import cv_centre
from gradgen.tuning.params import Parameterisation


@dataclass(frozen=True)
class Stimulus:
    """A current clamp: ``amplitude`` nA from ``delay`` for ``duration`` ms at ``location``."""

    location: str  # a locset expression, e.g. '(location 0 0.5)'
    delay: float
    duration: float
    amplitude: float


@dataclass
class Protocol:
    """What is simulated and which samples the loss sees (ms)."""

    t_end: float
    dt: float = 0.025
    sample_dt: float = 1.0
    windows: tuple[tuple[float, float], ...] = ()  # empty: every sample
    stimuli: tuple[Stimulus, ...] = ()
    name: str = "main"

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

    def spec(self, base: CellSpec) -> CellSpec:
        """The cell with this protocol's stimuli placed."""
        if not self.stimuli:
            return base
        decor = copy.copy(base.decor)
        decor.places = list(base.decor.places)
        for s in self.stimuli:
            decor.place(s.location, arbor.i_clamp(s.delay * U.ms, s.duration * U.ms, s.amplitude * U.nA))
        return dataclasses.replace(base, decor=decor)


@dataclass
class Evaluation:
    loss: float
    v: np.ndarray  # the first block's sampled trace
    gradient: np.ndarray | None = None  # dL/dz
    residuals: np.ndarray | None = None  # r of the least-squares form (gradgen.losses)
    jacobian: np.ndarray | None = None  # dr/dz
    voltages: dict[str, np.ndarray] = field(default_factory=dict)  # protocol -> V[site, t]


class TuningProblem:
    """Loss (and its derivatives) of a parameterisation against target traces."""

    def __init__(self, model: GradientModel, spec: CellSpec, site: str | Sequence[str],
                 protocol: Protocol | Sequence[Protocol], parameterisation: Parameterisation,
                 target: np.ndarray | None = None, loss: Loss = LOSSES["least_squares"]):
        missing = set(parameterisation.thetas) - {p.name for p in model.params}
        if missing:
            raise GradgenError(f"the gradient model lacks parameter(s) {', '.join(sorted(missing))}",
                               hint="convert with every tuned copy as a parameter")
        protocols = [protocol] if isinstance(protocol, Protocol) else list(protocol)
        if len({p.name for p in protocols}) != len(protocols):
            raise GradgenError("protocol names must differ: " + ", ".join(p.name for p in protocols))
        self.model, self.spec, self.param, self.loss = model, spec, parameterisation, loss
        self.sites = [site] if isinstance(site, str) else list(site)
        self.protocols = {p.name: p for p in protocols}
        self._specs = {p.name: self.prepare(p, spec) for p in protocols}
        self.blocks: list[ResidualBlock] = []
        if target is not None:
            self.set_target(target)

    def prepare(self, protocol: Protocol, spec: CellSpec):
        """What a run of ``protocol`` simulates: the cell with its stimuli (a target's problem
        overrides it)."""
        return protocol.spec(spec)

    @property
    def protocol(self) -> Protocol:
        """The first protocol (the one of a config without [[protocol]] tables)."""
        return next(iter(self.protocols.values()))

    @property
    def target(self) -> np.ndarray | None:
        return self.blocks[0].target if self.blocks else None

    @property
    def simulations_per_evaluation(self) -> int:
        """Arbor runs per loss evaluation: one per protocol."""
        return len(self.protocols)

    def set_target(self, target: np.ndarray) -> None:
        """One block: the first protocol's first probe against ``target``."""
        p = self.protocol
        target = np.asarray(target, float)
        n = len(p.times())
        if target.shape != (n,):
            raise GradgenError(f"the target has {target.size} samples, the protocol makes {n}",
                               hint=f"sample it every {p.sample_dt} ms over [0, {p.t_end}) ms")
        self.set_blocks([ResidualBlock(p.name, 0, target, p.mask())])

    def set_blocks(self, blocks: Sequence[ResidualBlock]) -> None:
        for b in blocks:
            if b.protocol not in self.protocols or not 0 <= b.probe < len(self.sites):
                raise GradgenError(f"residual block ({b.protocol}, probe {b.probe}) names no "
                                   "protocol or probe of the problem")
        self.blocks = list(blocks)

    def _run(self, name: str, values: dict[str, float], gradients: bool):
        p = self.protocols[name]
        return self.model.simulate(self._specs[name], self.sites, p.t_end, p.dt, gradients=gradients,
                                   values=values, sample_dt=p.sample_dt)

    def voltages(self, values: dict[str, float]) -> dict[str, np.ndarray]:
        """V[site, t] of the original model for every protocol (e.g. targets)."""
        return {name: self._run(name, values, False).v for name in self.protocols}

    def trace(self, values: dict[str, float]) -> np.ndarray:
        """V at the first probe in the first protocol of the original model."""
        return self._run(self.protocol.name, values, False).v[0]

    def loss_of_voltages(self, v: dict[str, np.ndarray]) -> float:
        return self.loss.value_and_dv(self.blocks, v)[0]

    def loss_of(self, v: np.ndarray) -> float:
        """Loss of one trace (a problem of one protocol and one probe)."""
        if len(self.blocks) != 1:
            raise GradgenError("loss_of takes one trace; this problem has several blocks",
                               hint="use loss_of_voltages")
        b = self.blocks[0]
        sites = np.zeros((len(self.sites), len(v)))
        sites[b.probe] = v
        return self.loss_of_voltages({b.protocol: sites})

    def evaluate(self, z: Sequence[float]) -> Evaluation:
        """Loss, dL/dz, residuals and dr/dz from one gradient-system run per protocol."""
        values = self.param.model_values(z)
        runs = {name: self._run(name, values, True) for name in self.protocols}
        v = {name: t.v for name, t in runs.items()}
        dv = {name: t.dv for name, t in runs.items()}
        loss, dloss_dv = self.loss.value_and_dv(self.blocks, v)
        slopes = self.param.slope_matrix(z, [ref.name for ref in self.model.params])
        gradient, jacobian = to_z(slopes, theta_gradient(self.blocks, dv, dloss_dv),
                                  theta_jacobian(self.blocks, dv))
        b = self.blocks[0]
        return Evaluation(loss, v[b.protocol][b.probe], gradient, residuals(self.blocks, v),
                          jacobian, v)

    def population(self, zs: Sequence[Sequence[float]], threads: int = 1) -> list[Evaluation]:
        """Losses of many parameter vectors: N original cells in one Arbor simulation per protocol.

        A member whose run blows up gets an infinite loss (population methods rank it last)
        and one warning names the first; it must not stop the whole population.
        """
        runs = {}
        for name, p in self.protocols.items():
            spec = self._specs[name]
            cells = [self.model.cell(spec, gradients=False, values=self.param.model_values(z))
                     for z in zs]
            sites = [cv_centre(cells[0], site) for site in self.sites]
            runs[name] = run_population(cells, self.model.properties(False), sites, p, threads)
        out, failed = [], []
        for i in range(len(zs)):
            v = {name: traces[i] for name, traces in runs.items()}
            blown = next((b for name, p in self.protocols.items()
                          if (b := first_nonfinite(p.times()[:v[name].shape[-1]], v[name], None,
                                                   self.sites)) is not None), None)
            if blown is not None:
                failed.append((i, blown))
            b = self.blocks[0]
            loss = math.inf if blown is not None else self.loss_of_voltages(v)
            out.append(Evaluation(loss, v[b.protocol][b.probe], voltages=v))
        if failed:
            warnings.warn(f"{len(failed)} of {len(zs)} population members blew up (member "
                          f"{failed[0][0]}: {failed[0][1].message}); their losses count as infinite",
                          GradgenWarning, stacklevel=2)
        return out


def run_population(cells: list[arbor.cable_cell], props, sites: Sequence[str], protocol: Protocol,
                   threads: int) -> list[np.ndarray]:
    """V[site, t] of N unconnected cells simulated side by side in one Arbor simulation."""
    probes = [arbor.cable_probe_membrane_voltage(site, f"v{i}") for i, site in enumerate(sites)]
    recipe = CellsRecipe(cells, props, [probes] * len(cells), threads=threads)
    keys = [(gid, f"v{i}") for gid in range(len(cells)) for i in range(len(sites))]
    recipe.sample_run(keys, protocol.t_end, protocol.dt, regular_schedule(protocol.sample_dt, protocol.t_end))
    return [np.stack([recipe.samples((gid, f"v{i}"))[:, 1] for i in range(len(sites))])
            for gid in range(len(cells))]
