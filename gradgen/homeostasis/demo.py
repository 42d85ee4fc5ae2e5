"""The rate-homeostasis experiment shared by examples/homeostasis_rate.py and
benchmarks/homeostasis.py: an HH cell in noise learns gnabar, gkbar and its input gain.

Two cells: one CV (a 10 µm × 10 µm cylinder) and a cable (200 µm, radius 1 µm, 5 CVs, the
error site in the first CV). Noise is the built-in Ornstein–Uhlenbeck input on every CV,
chosen so that the cell starts far above the target rate.
"""
from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path

import arbor
import numpy as np
from arbor import units as U

from gradgen.homeostasis.convert import (
    HomeostaticConfig,
    RateTarget,
    convert_homeostatic,
)
from gradgen.homeostasis.run import HomeostaticRun, HomeostaticTraces
from gradgen.params import ParamRef
from gradgen.resources import mechanisms_dir
from gradgen.targets.arbor.decor import CellSpec, Decor
from gradgen.targets.arbor.model import GradientModel

PARAMS = ["hh.gnabar", "hh.gkbar", "noise.gain"]
BOUNDS = {"hh.gnabar": (0.06, 0.24), "hh.gkbar": (0.018, 0.072), "noise.gain": (0.1, 2.0)}
WINDOW_MS = 50_000.0  # counting window for the settling time (150 spikes at 3 Hz: ±8 % noise)
SETTLED = 0.25  # every later window within ±25 % of the target counts as settled


@dataclass(frozen=True)
class Case:
    name: str
    length_um: float
    radius_um: float
    n_cv: int
    site: str
    noise: dict[str, float]


CASES = {
    "single_cv": Case("single_cv", 10.0, 5.0, 1, "(location 0 0.5)", {"mu": 0.002, "sigma": 0.002, "tau": 5.0}),
    "cable": Case("cable", 200.0, 1.0, 5, "(location 0 0.1)", {"mu": 0.003, "sigma": 0.003, "tau": 5.0}),
}


def config(target_hz: float = 3.0, alpha: float = 2e-8, lam: float = 1e-4, tau_rate: float = 10_000.0,
           max_rate: float = 3e-6) -> HomeostaticConfig:
    """The experiment's settings. Measured on one CV (1000 s, 3 Hz): without the speed cap
    θ plunged within 20 s while the smoothed rate lagged, and the cell fell nearly silent
    for 200 s (τ_f 20 s, α 1e-8); with |d(θ/θ0)/dt| ≤ 3e-6/ms it settled in ~100 s."""
    return HomeostaticConfig(alpha=alpha, lam=lam, target=RateTarget(target_hz, tau_rate=tau_rate),
                             bounds=BOUNDS, noise={}, max_rate=max_rate)


def cell(case: Case) -> CellSpec:
    tree = arbor.segment_tree()
    tree.append(arbor.mnpos, arbor.mpoint(0, 0, 0, case.radius_um),
                arbor.mpoint(case.length_um, 0, 0, case.radius_um), tag=1)
    decor = Decor()
    decor.set_property(Vm=-65 * U.mV, cm=0.01 * U.F / U.m2, rL=100 * U.Ohm * U.cm)
    decor.paint("(all)", arbor.density("hh"))
    decor.paint("(all)", arbor.density("noise"))
    policy = arbor.cv_policy_single() if case.n_cv == 1 else arbor.cv_policy_fixed_per_branch(case.n_cv)
    return CellSpec(arbor.morphology(tree), decor, arbor.label_dict(), policy)


def model(case: Case, cfg: HomeostaticConfig, out_dir: Path) -> GradientModel:
    cfg = dataclasses.replace(cfg, noise={**case.noise, **(cfg.noise or {})})
    convert_homeostatic([mechanisms_dir() / "hh.mod"], out_dir, [ParamRef.parse(p) for p in PARAMS], cfg)
    return GradientModel.load(out_dir)


@dataclass
class Result:
    case: Case
    traces: HomeostaticTraces
    target_hz: float
    plain_wall_s: float

    @property
    def final_rate_hz(self) -> float:
        """Counted rate over the last half of the run."""
        t_end = self.traces.t[-1]
        return self.traces.spike_rate(t_end / 2, t_end)

    @property
    def settling_time_s(self) -> float | None:
        """Start of the first 50-s window after which every window's counted rate is within
        ±25 % of the target (None: never)."""
        centres, rates = self.traces.windowed_rate(WINDOW_MS)
        ok = np.abs(rates - self.target_hz) <= SETTLED * self.target_hz
        for i in range(len(ok)):
            if ok[i:].all():
                return float((centres[i] - WINDOW_MS / 2) / 1000.0)
        return None


def run(case: Case, cfg: HomeostaticConfig, t_end_ms: float, dt: float, sample_dt: float = 100.0,
        work: Path | None = None) -> Result:
    """The homeostatic run and, for the cost ratio, a plain run of the original model."""
    with tempfile.TemporaryDirectory() as tmp:
        m = model(case, cfg, Path(work or tmp) / case.name)
        spec = cell(case)
        traces = HomeostaticRun(m, spec, case.site).run(t_end_ms, dt, sample_dt)
        plain = HomeostaticRun(m, spec, case.site, gradients=False).run(t_end_ms, dt, sample_dt)
    return Result(case, traces, cfg.target.rate_target_hz, plain.wall_s)
