"""Stability of homeostatic learning with a voltage target, checked before a run.

Near its resting point a cell is V' = F(V, θ) with a = −∂F/∂V (/ms) and F_k = ∂F/∂θ_k. With
forgetting λ the sensitivity settles at u_k = F_k/(a + λ), and the learning rule
θ_k' = −α s_k² (V − V*) u_k closes the loop. Linearised around V = V* (δu decouples):

    δV' = −a δV + Σ F_k δθ_k,    δθ_k' = −α s_k² u_k δV
    characteristic polynomial (s + a + λ)(s² + a s + α κ),   κ = Σ_k s_k² F_k² / (a + λ)

Routh–Hurwitz on the cubic (all coefficients > 0, a₁a₂ > a₃) holds for every α > 0: the
continuous loop never diverges. It *oscillates* above α_osc = a²/(4κ) (complex roots). The
simulated scheme updates θ explicitly once per step while V is implicit; its 2×2 step map
has determinant (1 + dt²ακ)/(1 + a dt), so it *diverges* above α_div = a/(κ dt) (Jury).
The study quotes α < λ² + λ a for its formulation; it is reported for comparison.

:func:`passive_report` evaluates this analytically for a passive cell (θ = leak g);
:func:`measured_report` measures a and F_k on the actual cell (original mechanisms) at rest
with small current and parameter steps, the numerical check of the linearisation.
"""
from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass

import arbor
import numpy as np
from arbor import units as U

from gradgen.errors import GradgenError
from gradgen.homeostasis.run import homeostatic_manifest
from gradgen.targets.arbor.decor import CellSpec, membrane_of
from gradgen.targets.arbor.model import GradientModel


class StabilityWarning(UserWarning):
    """α or λ lie where homeostatic learning oscillates or diverges."""


@dataclass(frozen=True)
class StabilityReport:
    """The linearised loop: rates in /ms, α in the hub's units (1/(ms·mV²) for θ/scale)."""

    a: float  # membrane relaxation rate −∂F/∂V at rest (/ms)
    kappa: float  # loop gain Σ s_k² F_k² / (a + λ)
    alpha: float
    lam: float
    dt: float

    @property
    def alpha_oscillation(self) -> float:
        """Above this α the linearised loop oscillates (damped)."""
        return self.a**2 / (4.0 * self.kappa)

    @property
    def alpha_divergence(self) -> float:
        """Above this α the time-stepped loop diverges."""
        return self.a / (self.kappa * self.dt)

    @property
    def study_bound(self) -> float:
        """λ² + λ·g/C as quoted by the study (its own formulation; for comparison)."""
        return self.lam**2 + self.lam * self.a

    @property
    def alpha_max(self) -> float:
        """The largest α that converges without oscillating."""
        return self.alpha_oscillation

    def problems(self) -> list[str]:
        out = []
        if self.alpha >= self.alpha_divergence:
            out.append(f"alpha {self.alpha:.3g} >= {self.alpha_divergence:.3g}: the learning loop diverges "
                       f"at dt {self.dt:g} ms (lower alpha or dt)")
        elif self.alpha >= self.alpha_oscillation:
            out.append(f"alpha {self.alpha:.3g} >= {self.alpha_oscillation:.3g}: the learning loop oscillates "
                       "around the target (lower alpha for monotone convergence)")
        if self.lam <= 0:
            out.append("lambda = 0: sensitivities of a spiking cell grow without bound (use lambda > 0)")
        return out

    def summary(self) -> str:
        return (f"linearised loop: a = {self.a:.4g}/ms, kappa = {self.kappa:.4g}; alpha = {self.alpha:.3g}, "
                f"oscillates above {self.alpha_oscillation:.3g}, diverges above {self.alpha_divergence:.3g} "
                f"(dt {self.dt:g} ms); study's bound lambda^2 + lambda*g/C = {self.study_bound:.3g}")

    def warn(self) -> "StabilityReport":
        """Emit a :class:`StabilityWarning` per problem; returns self."""
        for text in self.problems():
            warnings.warn(text, StabilityWarning, stacklevel=2)
        return self


def passive_report(i_ext: float, cm: float, e_leak: float, v_target: float, scale: float,
                   alpha: float, lam: float, dt: float) -> StabilityReport:
    """Analytic loop for a passive cell driven by ``i_ext`` (mA/cm², inward positive) that
    learns its leak g (S/cm²) towards ``v_target``, linearised at the learnt equilibrium
    g* = i_ext/(V* − E): F = (1000/cm)(−g(V − E) + i_ext), a = 1000 g*/cm, F_g = −(1000/cm)(V* − E).
    """
    k = 1000.0 / cm
    a = k * i_ext / (v_target - e_leak)
    f_theta = -k * (v_target - e_leak)
    return StabilityReport(a, scale**2 * f_theta**2 / (a + lam), alpha, lam, dt)


def measured_report(model: GradientModel, spec: CellSpec, site: str, dt: float,
                    t_rest: float = 300.0, rel_step: float = 1e-3, current_nA: float = 1e-4) -> StabilityReport:
    """Measure a and F_k on the original cell at rest (V at ``site`` after ``t_rest`` ms),
    with θ at its start values (the loop near its start; near the target it may differ).

    a = G/C from a DC step of ``current_nA`` (G the input conductance at ``site``, C the
    cell's capacitance: exact on one CV, a lumped value on a cable); F_k = a·dV_rest/dθ_k
    from central steps of ``rel_step``·θ_k. Raises if the cell is not at rest.
    """
    manifest = homeostatic_manifest(model)
    config = manifest.homeostatic
    start = manifest.defaults
    scale = [config["scale"].get(name, abs(value) or 1.0) for name, value in start.items()]

    def rest(values: dict[str, float], extra_nA: float = 0.0) -> float:
        decor = copy.copy(spec.decor)
        decor.places = list(spec.decor.places)
        if extra_nA:
            decor.place(site, arbor.i_clamp(0 * U.ms, 1e9 * U.ms, extra_nA * U.nA))
        cell = CellSpec(spec.morphology, decor, spec.labels, spec.cv_policy)
        v = model.simulate(cell, [site], t_rest, dt, gradients=False, values=values, sample_dt=dt).v[0]
        tail = v[-int(20.0 / dt):]
        if np.ptp(tail) > 1e-3:
            raise GradgenError(f"the cell is not at rest after {t_rest} ms (V varies by {np.ptp(tail):.3g} mV "
                               "over the last 20 ms): the resting-point linearisation does not apply",
                               hint="check stability on a silent configuration, or lengthen t_rest")
        return float(v[-1])

    dv = (rest(start, current_nA) - rest(start, -current_nA)) / (2 * current_nA)  # mV/nA = MΩ
    area_cm2 = sum(p.area_um2 for p in model.geometry(spec).equivalent.pieces) * 1e-8
    cm = membrane_of(spec, arbor.neuron_cable_properties()).cm
    a = 1.0 / (dv * 1e6 * cm * 1e-6 * area_cm2) / 1000.0  # 1/(R·C) in /ms
    gains = []
    for (name, value), s in zip(start.items(), scale):
        h = rel_step * (abs(value) or 1.0)
        dvdtheta = (rest({**start, name: value + h}) - rest({**start, name: value - h})) / (2 * h)
        gains.append((s * a * dvdtheta) ** 2)
    lam = config["lambda"]
    return StabilityReport(a, sum(gains) / (a + lam), config["alpha"], lam, dt)


def check_before_run(model: GradientModel, spec: CellSpec, site: str, dt: float) -> StabilityReport | None:
    """The stability check for a voltage target (warns); None for a rate target, whose
    error is not defined at a resting point."""
    if homeostatic_manifest(model).homeostatic["target"]["kind"] != "voltage":
        return None
    return measured_report(model, spec, site, dt).warn()
