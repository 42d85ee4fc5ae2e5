"""Run a homeostatic model (see :mod:`gradgen.homeostasis.convert`) in Arbor and read θ(t) back.

The cell is the user's :class:`gradgen.CellSpec`, painted as for an ordinary gradient run,
except that the hub gets the error weight (cell volume / CV volume) on the CV of the error
site, and the learned values θ_k travel in their parameter ions, whose diffusivity is
:data:`MIXING`·N² times the carriers' (N CVs), so that Arbor's implicit diffusion solve
spreads each learning step over the whole cell within about one step.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import arbor
import numpy as np
from arbor import units as U

from gradgen.errors import GradgenError
from gradgen.manifest import Manifest
from gradgen.protocol import (
    ERROR_WEIGHT,
    HUB_NAME,
    RATE_STATE,
    SPIKE_COUNT_STATE,
    hub_state,
    parameter_ion,
    rate_gradient_state,
    theta_state,
)

# θ-ion diffusivity / (carrier diffusivity · N²). Faster mixing makes θ more uniform but the
from gradgen.targets.arbor.decor import CellSpec
from gradgen.targets.arbor.geometry.transform import EquivalentGeometry

# θ-ion diffusivity / (carrier diffusivity · N²). Faster mixing makes θ more uniform but the
from gradgen.targets.arbor.model import GradientModel

# θ-ion diffusivity / (carrier diffusivity · N²). Faster mixing makes θ more uniform but the
from gradgen.targets.arbor.recipe import CellsRecipe, regular_schedule

# θ-ion diffusivity / (carrier diffusivity · N²). Faster mixing makes θ more uniform but the
from gradgen.targets.arbor.sites import cv_centre, cv_of

# θ-ion diffusivity / (carrier diffusivity · N²). Faster mixing makes θ more uniform but the
# near-singular solve then drifts by rounding, proportionally: measured on a 20-CV HH cable
# (50 ms, α = 0) a drift of 4.7e-6 at 1e4, 9e-8 at 1e2, 4e-11 at 1; at 1 the error site
# and the far end differ by 3e-7 (relative) while θ learns.
MIXING = 1.0


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


def _error_site(original: arbor.cable_cell, geo: EquivalentGeometry, site: str) -> tuple[str, float]:
    """The region of the CV holding ``site`` (original coordinates) and the hub's error weight
    there: cell volume / CV volume, i.e. area ratio on the constant-radius geometry."""
    i, cables = cv_of(original, site, "error site")
    total = sum(piece.area_um2 for piece in geo.pieces)
    mine = sum(piece.area_um2 for piece in geo.pieces if piece.cv == i)
    region = " ".join(f"(cable {x.branch} {x.prox!r} {x.dist!r})" for x in cables)
    region = f"(join {region} (region-nil))" if len(cables) > 1 else region
    return region, total / mine


class HomeostaticRun(CellsRecipe):
    """One cell whose parameters learn, probed at the error site (``gradients=False``: the
    original mechanisms with θ fixed at its start values, the plain reference)."""

    def __init__(self, model: GradientModel, spec: CellSpec, site: str, gradients: bool = True):
        self.n_params, self.gradients = len(model.params), gradients
        manifest = homeostatic_manifest(model)
        self.rate_mode = manifest.homeostatic["target"]["kind"] == "rate"
        base = arbor.neuron_cable_properties()
        start = manifest.defaults
        if not gradients:  # the plain reference: original mechanisms, θ fixed at the start values
            cell = model.cell(spec, gradients=False, values=start)
            props = model.properties(False, base)
            self.site = cv_centre(cell, site)
        else:
            geo = model.geometry(spec).equivalent
            region, weight = _error_site(model.cell(spec, gradients=False), geo, site)
            cell = model.with_hub_paints([(region, {ERROR_WEIGHT: weight})]).cell(spec, gradients=True)
            props = model.properties(True, base)
            n_cv = len({piece.cv for piece in geo.pieces})
            for k, name in enumerate(p.name for p in model.params):
                props.set_ion(parameter_ion(k), valence=1, int_con=start[name] * U.mM, ext_con=0 * U.mM,
                              rev_pot=0 * U.mV,
                              diff=geo.default_diffusivity * MIXING * n_cv**2 * U.m2 / U.s)
            self.site = cv_centre(cell, geo.map_locset(site))
        probes = [arbor.cable_probe_membrane_voltage(self.site, "v")]
        if gradients:
            per_k = (theta_state, hub_state, rate_gradient_state) if self.rate_mode else (theta_state, hub_state)
            names = [name(k) for k in range(self.n_params) for name in per_k]
            names += ([RATE_STATE] if self.rate_mode else []) + [SPIKE_COUNT_STATE]
            probes += [arbor.cable_probe_density_state(self.site, HUB_NAME, n, n) for n in names]
            self.state_names = names
        else:
            self.state_names = []
        super().__init__([cell], props, [probes], seed=1)

    def run(self, t_end: float, dt: float, sample_dt: float = 1.0) -> HomeostaticTraces:
        """Reset, simulate ``t_end`` ms and return the samples (every ``sample_dt`` ms)."""
        start = time.perf_counter()
        self.sample_run([(0, name) for name in ["v"] + self.state_names], t_end, dt,
                        regular_schedule(sample_dt, t_end))
        wall = time.perf_counter() - start

        def trace(name: str) -> np.ndarray:
            return self.samples((0, name))[:, 1]

        t = self.samples((0, "v"))[:, 0]

        def stack(state_of: Callable[[int], str]) -> np.ndarray:
            if not self.gradients:
                return np.zeros((0, len(t)))
            return np.stack([trace(state_of(k)) for k in range(self.n_params)])

        # Arbor 0.12's Python spike recording returned nothing here; the hub counts crossings.
        count = trace(SPIKE_COUNT_STATE) if self.gradients else np.zeros(len(t))
        rated = self.gradients and self.rate_mode
        return HomeostaticTraces(
            t=t, v=trace("v"), theta=stack(theta_state), u=stack(hub_state),
            rate=trace(RATE_STATE) if rated else None,
            phi=stack(rate_gradient_state) if rated else None, spike_count=count, wall_s=wall)


def homeostatic_manifest(model: GradientModel) -> Manifest:
    """The model's manifest; refuses a model that was not converted as homeostatic."""
    if model.manifest.homeostatic is None:
        raise GradgenError(f"{model.directory} is not a homeostatic model",
                           hint="convert with `gradgen convert --homeostatic`")
    return model.manifest
