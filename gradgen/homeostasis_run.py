"""Run a homeostatic model (see :mod:`gradgen.homeostasis`) in Arbor and read θ(t) back.

The cell is the user's :class:`gradgen.CellSpec`, painted as for an ordinary gradient run,
except that the hub gets the error weight (cell volume / CV volume) on the CV of the error
site, and the learned values θ_k travel in ions ``gp<k>`` whose diffusivity is
:data:`MIXING` times the carriers': Arbor's implicit diffusion solve then equalises them
over the cell within one step (deviation ~ 1/MIXING of one learning step).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from functools import cached_property

import arbor
import numpy as np
from arbor import units as U

from gradgen.emit import HUB_NAME
from gradgen.errors import GradgenError
from gradgen.homeostasis import parameter_ion
from gradgen.runtime import MANIFEST, CellSpec, GradientModel, cv_centre, cv_lengths, membrane_of

MIXING = 1e4  # θ-ion diffusivity / carrier diffusivity, times (number of CVs)²


@dataclass
class HomeostaticTraces:
    """Samples at the error site: t (ms), v, θ_k, u_k (and φ_k, f for a rate target), and the
    number of spikes (upward crossings of -10 mV) up to each sample."""

    t: np.ndarray
    v: np.ndarray
    theta: np.ndarray  # [k, t]
    u: np.ndarray  # [k, t]
    rate: np.ndarray | None  # smoothed rate estimate f (Hz)
    phi: np.ndarray | None  # [k, t] df/dθ_k
    spike_count: np.ndarray
    wall_s: float

    def spike_rate(self, t0: float, t1: float) -> float:
        """Mean rate of counted spikes between the samples nearest t0 and t1 (ms), in Hz."""
        i0, i1 = np.searchsorted(self.t, [t0, t1])
        i1 = min(i1, len(self.t) - 1)
        return 1000.0 * (self.spike_count[i1] - self.spike_count[i0]) / (self.t[i1] - self.t[i0])

    def windowed_rate(self, window: float) -> tuple[np.ndarray, np.ndarray]:
        """(window centres in ms, counted rate in Hz) over consecutive windows of ``window`` ms."""
        edges = np.arange(self.t[0], self.t[-1] + 1e-9, window)
        counts = np.interp(edges, self.t, self.spike_count)
        return 0.5 * (edges[1:] + edges[:-1]), 1000.0 * np.diff(counts) / window


def _site_cv(cell: arbor.cable_cell, site: str) -> tuple[str, int]:
    """The region of the CV that holds ``site`` and the number of (non-empty) CVs."""
    loc = cell.locations(site)[0]
    data = arbor.cv_data(cell)
    for i in range(data.num_cv):
        cables = data.cables(i)
        for c in cables:
            if c.branch == loc.branch and c.prox <= loc.pos <= c.dist and c.dist > c.prox:
                return f"(cable {c.branch} {c.prox!r} {c.dist!r})", i
    raise GradgenError(f"error site {site!r} lies in no CV")


class HomeostaticRun(arbor.recipe):
    """One cell whose parameters learn; probes at the error site and a spike detector."""

    def __init__(self, model: GradientModel, spec: CellSpec, site: str, gradients: bool = True):
        super().__init__()
        self.model, self.n_params, self.gradients = model, len(model.params), gradients
        self.rate_mode = _manifest(model)["homeostatic"]["target"]["kind"] == "rate"
        base = arbor.neuron_cable_properties()
        membrane = membrane_of(spec, base)
        start = {p["name"]: p["default"] for p in _manifest(model)["parameters"]}
        if not gradients:  # the plain reference: original mechanisms, θ fixed at the start values
            self._cell = model.cell(spec, gradients=False, values=start)
            self._props = model.properties(False, base)
        else:
            densities = model._densities(spec, True, {}, membrane)
            probe_cell = spec.build(spec.decor.to_arbor(densities))
            diffusivity = model.diffusivity(spec, probe_cell, membrane)
            n_cv = sum(1 for h in cv_lengths(probe_cell, spec.morphology) if h > 0)
            region, _ = _site_cv(probe_cell, site)
            hub = [d for d in densities if d[1].mech.name == HUB_NAME]
            densities = [d for d in densities if d[1].mech.name != HUB_NAME]
            if n_cv == 1:
                densities.append(("(all)", arbor.density(HUB_NAME, {"cm": membrane.cm, "gg_ew": 1.0})))
            else:
                densities.append((f"(difference (all) {region})",
                                  arbor.density(HUB_NAME, {"cm": membrane.cm, "gg_ew": 0.0})))
                densities.append((region, arbor.density(HUB_NAME, {"cm": membrane.cm, "gg_ew": float(n_cv)})))
            assert len(hub) == 1
            self._cell = spec.build(spec.decor.to_arbor(densities))
            self._props = model.properties(True, base, diffusivity)
            for k, name in enumerate(p.name for p in model.params):
                self._props.set_ion(parameter_ion(k), valence=1, int_con=start[name] * U.mM, ext_con=0 * U.mM,
                                    rev_pot=0 * U.mV, diff=diffusivity * MIXING * n_cv**2 * U.m2 / U.s)
        self.site = cv_centre(self._cell, site)
        self._probes = [arbor.cable_probe_membrane_voltage(self.site, "v")]
        if gradients:
            names = [f"{s}{k}" for k in range(self.n_params) for s in
                     (("theta", "u", "phi") if self.rate_mode else ("theta", "u"))]
            names += (["rate"] if self.rate_mode else []) + ["spike_count"]
            self._probes += [arbor.cable_probe_density_state(self.site, HUB_NAME, n, n) for n in names]
            self.state_names = names
        else:
            self.state_names = []

    def num_cells(self) -> int:
        return 1

    def cell_kind(self, gid):
        return arbor.cell_kind.cable

    def cell_description(self, gid):
        return self._cell

    def global_properties(self, kind):
        return self._props

    def probes(self, gid):
        return self._probes

    @cached_property
    def sim(self) -> arbor.simulation:
        return arbor.simulation(self, seed=1)

    def run(self, t_end: float, dt: float, sample_dt: float = 1.0) -> HomeostaticTraces:
        """Reset, simulate ``t_end`` ms and return the samples (every ``sample_dt`` ms)."""
        sim = self.sim
        sim.reset()
        schedule = arbor.regular_schedule(0 * U.ms, sample_dt * U.ms, t_end * U.ms)
        handles = {n: sim.sample((0, n), schedule) for n in ["v"] + self.state_names}
        start = time.perf_counter()
        sim.run(t_end * U.ms, dt * U.ms)
        wall = time.perf_counter() - start

        def trace(name: str) -> np.ndarray:
            return sim.samples(handles[name])[0][0]

        t = trace("v")[:, 0]
        K = self.n_params

        def stack(prefix: str) -> np.ndarray:
            return np.stack([trace(f"{prefix}{k}")[:, 1] for k in range(K)]) if self.gradients else np.zeros((0, len(t)))

        # Arbor 0.12's Python spike recording returned nothing here; the hub counts crossings.
        count = trace("spike_count")[:, 1] if self.gradients else np.zeros(len(t))
        return HomeostaticTraces(
            t=t, v=trace("v")[:, 1], theta=stack("theta"), u=stack("u"),
            rate=trace("rate")[:, 1] if self.gradients and self.rate_mode else None,
            phi=stack("phi") if self.gradients and self.rate_mode else None, spike_count=count, wall_s=wall)


def _manifest(model: GradientModel) -> dict:
    data = json.loads((model.directory / MANIFEST).read_text())
    if "homeostatic" not in data:
        raise GradgenError(f"{model.directory} is not a homeostatic model",
                           hint="convert with `gradgen convert --homeostatic`")
    return data
